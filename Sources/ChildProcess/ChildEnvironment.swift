import Foundation

/// The environment a child process inherits from an agent: the agent's own, less its secrets.
/// Tools, shell.run commands and post scripts run whatever a recipe or a workflow says; the
/// agent's XMPP password (`BATON_PASSWORD`, one way to give it) reached every one of them.
public enum ChildEnvironment {
    /// Variables no child gets.
    public static let secrets: Set<String> = ["BATON_PASSWORD"]

    /// This process's environment without `secrets`.
    public static var inherited: [String: String] {
        ProcessInfo.processInfo.environment.filter { !secrets.contains($0.key) }
    }
}
