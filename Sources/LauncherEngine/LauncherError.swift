import Foundation

/// Every failure the engine reports. Each case names the field, file or
/// instance at fault so the XMPP layer can relay the description verbatim.
public enum LauncherError: Error, Equatable, Sendable, CustomStringConvertible, LocalizedError {
    case malformedConfig(format: String, detail: String)
    case missingField(String)
    case mistypedField(String, expected: String)
    case invalidField(String, reason: String)
    case invalidMountSpec(String, reason: String)
    case duplicateConfig(String)
    case unknownConfig(String)
    case unknownInstance(String)
    case imageNotFound(String)
    case corruptImage(String, detail: String)
    case startupScriptMissing(String)
    case startupExited(instance: String, status: String, log: String)
    case unknownOwner(String)
    case unsafeMountPoint(String, reason: String)
    case mountFailed(String, errno: Int32)
    case runtimeUnavailable(String)
    case runtimeFailed(command: String, status: Int32, output: String)
    case timedOut(seconds: Double)
    case ioFailure(String)

    public var description: String {
        switch self {
        case let .malformedConfig(format, detail): return "configuration is not valid \(format): \(detail)"
        case let .missingField(f): return "configuration field '\(f)' is missing"
        case let .mistypedField(f, expected): return "configuration field '\(f)' must be \(expected)"
        case let .invalidField(f, reason): return "configuration field '\(f)' is invalid: \(reason)"
        case let .invalidMountSpec(spec, reason): return "mount '\(spec)' is invalid: \(reason)"
        case let .duplicateConfig(key): return "configuration \(key) already exists with different content"
        case let .unknownConfig(key): return "no configuration \(key) has been uploaded"
        case let .unknownInstance(name): return "no instance named '\(name)'"
        case let .imageNotFound(path): return "image '\(path)' does not exist"
        case let .corruptImage(path, detail): return "image '\(path)' could not be unpacked: \(detail)"
        case let .startupScriptMissing(path): return "startup_script '\(path)' does not exist or is not executable in the container"
        case let .startupExited(name, status, log):
            return "startup script of \(name) exited immediately (\(status)); log: \(log.isEmpty ? "<empty>" : log)"
        case let .unknownOwner(owner): return "startup_owner '\(owner)' is not in the image's /etc/passwd"
        case let .unsafeMountPoint(path, reason): return "mount point '\(path)' is unsafe: \(reason)"
        case let .mountFailed(target, e): return "mount of '\(target)' failed: \(String(cString: strerror(e)))"
        case let .runtimeUnavailable(why): return "no working OCI runtime: \(why)"
        case let .runtimeFailed(cmd, status, out): return "'\(cmd)' failed with status \(status): \(out)"
        case let .timedOut(s): return "command timed out after \(s) s"
        case let .ioFailure(what): return what
        }
    }

    public var errorDescription: String? { description }
}
