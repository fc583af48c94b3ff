import AgentKernel

/// A command of a shell context: `usage` and `summary` are what `?` and `help` show.
struct ShellCommand: Sendable {
    let name: String
    let usage: String
    let summary: String
    let run: @Sendable (ShellState, [String]) async throws -> Void

    init(_ name: String, _ usage: String, _ summary: String, run: @escaping @Sendable (ShellState, [String]) async throws -> Void) {
        self.name = name
        self.usage = usage
        self.summary = summary
        self.run = run
    }
}

/// A context (`xmpp/`, `wf/`, `ctr/`): a name and its commands.
struct ShellContext: Sendable {
    let name: String
    let summary: String
    let commands: [ShellCommand]

    func command(_ name: String) -> ShellCommand? { commands.first { $0.name == name } }
}

/// What commands share across a session: the connection and the context-specific settings.
final class ShellState: Sendable {
    let session: Session
    /// The container launcher `ctr/` commands go to (`use JID`).
    let containerLauncher = Locked<String?>(nil)

    init(session: Session) { self.session = session }

    var operations: WorkflowOperations { WorkflowOperations(session: session) }
}

/// A failure already explained by what the command printed (a watched workflow that failed):
/// counted for the exit status, not repeated.
struct AlreadyReported: Error {}
