import Foundation

/// What `launch` hands back: the instance name plus anything the host
/// could not honour (e.g. a limit whose cgroup controller is missing).
public struct LaunchResult: Sendable, Equatable {
    public let instance: String
    public let warnings: [String]
}

/// One row of `list`.
public struct InstanceInfo: Sendable, Equatable {
    public enum Status: String, Sendable { case running, dead }
    public let name: String
    public let config: String
    public let pid: Int32?
    public let uptime: TimeInterval
    public let status: Status

    /// "web-1.01-ab12cd34 config=web 1.01 pid=1234 uptime=12s running"
    public var line: String {
        "\(name) config=\(config) pid=\(pid.map(String.init) ?? "-") uptime=\(Int(uptime))s \(status.rawValue)"
    }
}

/// Root filesystem for `runOnce`: an image path, or an uploaded config
/// (its base image, mounts, owner and env are used).
public enum RunOnceImage: Sendable {
    case path(String)
    case config(name: String, major: String, minor: String)
}

public struct RunOnceResult: Sendable {
    public let exitStatus: Int32
    public let output: String
    /// Contents of each requested path that existed as a regular file.
    public let files: [String: Data]
    public let timedOut: Bool
}
