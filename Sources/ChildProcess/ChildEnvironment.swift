import Foundation

/// The environment a child process inherits from an agent: the agent's own, less its secrets.
/// Tools, shell.run commands and post scripts run whatever a recipe or a workflow says; the
/// agent's XMPP password (`BATON_PASSWORD`, one way to give it) reached every one of them.
public enum ChildEnvironment {
    /// Variables no child gets.
    public static let secrets: Set<String> = ["BATON_PASSWORD"]

    /// Removes `secrets` from this process's environment, their values overwritten first:
    /// `unsetenv` only unlinks the entry, and the bytes stay in the block the process started
    /// with, which `/proc/PID/environ` shows to every process of the same user — a step's
    /// command could read the password there (`cat /proc/$PPID/environ`).
    public static func forgetSecrets() {
        for name in secrets {
            if let value = getenv(name) { memset(value, 0, strlen(value)) }
            unsetenv(name)
        }
    }

    /// This process's environment without `secrets`.
    public static var inherited: [String: String] {
        ProcessInfo.processInfo.environment.filter { !secrets.contains($0.key) }
    }
}
