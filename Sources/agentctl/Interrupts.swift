import AgentKernel
import Foundation

/// Ctrl-C. Whoever is waiting on something long (a watch, a shell command) says what ctrl-C
/// means meanwhile; with nobody waiting, it ends agentctl with the usual 130.
enum Interrupts {
    /// In a struct, not as a bare function type in the lock: see `Locked`.
    private struct Handler: Sendable { var action: (@Sendable () -> Void)? }
    private static let handler = Locked(Handler())
    // Kept alive for the life of the process; only touched by `install`, once, at start-up.
    nonisolated(unsafe) private static var source: DispatchSourceSignal?

    static func install() {
        guard source == nil else { return }
        signal(SIGINT, SIG_IGN)  // the dispatch source below sees it instead
        let signalSource = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        signalSource.setEventHandler {
            if let action = handler.value.action { action() } else { exit(130) }
        }
        signalSource.resume()
        source = signalSource
    }

    /// Set for a script fed to the shell: ctrl-C then always ends agentctl (130). Stopping only
    /// the watch it was in would let the script go on to its next line — a release, say.
    static let alwaysEnds = Locked(false)

    /// Runs `body` with ctrl-C calling `onInterrupt` instead of the previous meaning.
    static func during<T>(_ onInterrupt: @escaping @Sendable () -> Void, _ body: () async throws -> T) async rethrows -> T {
        if alwaysEnds.value { return try await body() }
        let previous = handler.withLock { current -> Handler in
            defer { current.action = onInterrupt }
            return current
        }
        defer { handler.withLock { $0 = previous } }
        return try await body()
    }
}
