import Foundation

/// Runs a recipe's post script inside the image being built (its root directory, writable).
/// The build agent passes a container-runtime implementation (the launcher, on runc); without
/// one, `NamespaceChrootRunner` is used.
public protocol PostScriptRunner: Sendable {
    /// Returns the script's exit status and combined output.
    func run(script: String, name: String, root: URL, environment: [String: String], timeout: Double) throws -> (status: Int32, output: String)
}

/// Runs no post script, saying why: where no container runtime works and the operator has
/// not allowed the chroot fallback.
public struct RefusingPostScripts: PostScriptRunner {
    public struct Refusal: Error, CustomStringConvertible {
        public let description: String
    }

    public let reason: String
    public init(reason: String) { self.reason = reason }

    public func run(script: String, name: String, root: URL, environment: [String: String], timeout: Double) throws -> (status: Int32, output: String) {
        throw Refusal(description: "post script \(name) not run: \(reason)")
    }
}

/// Fresh mount/pid/net/uts/ipc namespaces and chroot: no network, nothing leaks to the host.
/// But the script runs as the host's root in a chroot, which root can leave: it is the fallback
/// only where the operator allows it (`post_scripts_chroot: true`).
public struct NamespaceChrootRunner: PostScriptRunner {
    public init() {}
    public func run(script: String, name: String, root: URL, environment: [String: String], timeout: Double) throws -> (status: Int32, output: String) {
        let out = try Tool.run(["unshare", "--mount", "--uts", "--ipc", "--net", "--pid", "--fork",
                                "chroot", root.path, "/bin/sh", "-e", "-c", script],
                               env: environment, timeout: timeout, checkStatus: false)
        return (out.status, out.stdoutString + out.stderrString)
    }
}
