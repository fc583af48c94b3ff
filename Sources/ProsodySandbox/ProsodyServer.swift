import ChildProcess
import Foundation

/// A throwaway Prosody (domain `baton.test`, c2s on 127.0.0.1, pubsub at `pubsub.baton.test`)
/// driven through `scripts/prosody-sandbox`, for the integration tests and `baton-bench`.
/// Everything lives in `dir`, a fresh temp directory, which is deleted on deinit (or by
/// `stopAndRemove`) unless `BATON_KEEP_PROSODY=1` (to read `prosody.log` afterwards). If the
/// owning process dies first, the script's watchdog stops the server within a second.
public final class ProsodyServer: @unchecked Sendable {
    public struct ScriptError: Error, CustomStringConvertible {
        public let arguments: [String]
        public let status: Int32
        public let stderr: String
        public var description: String {
            "prosody-sandbox \(arguments.joined(separator: " ")) exited \(status): \(stderr)"
        }
    }

    /// scripts/prosody-sandbox, found from this file: Sources/ProsodySandbox/ -> repo root.
    public static let defaultScript = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .appendingPathComponent("../../scripts/prosody-sandbox").standardized

    public static let domain = "baton.test"
    public let host = "127.0.0.1"
    public var domain: String { Self.domain }
    public var pubsubService: String { "pubsub.\(domain)" }
    public let script: URL
    public let dir: URL
    public let port: Int
    public var logFile: URL { dir.appendingPathComponent("prosody.log") }

    // Serialises start/stop/register: tests may call them from several tasks.
    private let lock = NSLock()
    private var running = true

    private init(script: URL, dir: URL, port: Int) {
        self.script = script
        self.dir = dir
        self.port = port
    }

    /// Starts a server in a new temp directory (named `prefix-…`) on a free port.
    public static func start(script: URL = defaultScript, prefix: String = "baton-prosody") throws -> ProsodyServer {
        guard FileManager.default.isExecutableFile(atPath: script.path) else {
            throw ScriptError(arguments: [], status: 127, stderr: "no executable prosody-sandbox script at \(script.path)")
        }
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
        let out = try run(script, ["start", dir.path])
        guard let port = value(of: "port", in: out).flatMap({ Int($0) }) else {
            throw ScriptError(arguments: ["start", dir.path], status: 0, stderr: "no port= in: \(out)")
        }
        return ProsodyServer(script: script, dir: dir, port: port)
    }

    public func register(user: String, password: String) throws {
        try register([(user, password)])
    }

    /// Registers several accounts with one script call.
    public func register(_ accounts: [(user: String, password: String)]) throws {
        guard !accounts.isEmpty else { return }
        lock.lock(); defer { lock.unlock() }
        _ = try Self.run(script, ["register", dir.path] + accounts.flatMap { [$0.user, $0.password] })
    }

    /// Stops the server; idempotent. The data stays until deinit.
    public func stop() {
        lock.lock(); defer { lock.unlock() }
        guard running else { return }
        _ = try? Self.run(script, ["stop", dir.path])
        running = false
    }

    /// Stops the server and deletes its directory now (for a process about to exit, where
    /// deinit may never run).
    public func stopAndRemove() {
        stop()
        removeDirectory()
    }

    /// Stops and starts again on the same port with the same accounts and pubsub data.
    public func restart() throws {
        lock.lock(); defer { lock.unlock() }
        _ = try Self.run(script, ["restart", dir.path])
        running = true
    }

    deinit {
        if running { _ = try? Self.run(script, ["stop", dir.path]) }
        removeDirectory()
    }

    private func removeDirectory() {
        if ProcessInfo.processInfo.environment["BATON_KEEP_PROSODY"] != "1" {
            try? FileManager.default.removeItem(at: dir)
        }
    }

    /// The script's stdout; throws with its stderr on a non-zero exit.
    @discardableResult
    private static func run(_ script: URL, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = script
        process.arguments = arguments
        let stdout = Pipe(), stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice
        // The script's watchdog stops the server if this process dies without calling stop().
        var environment = ProcessInfo.processInfo.environment
        environment["PROSODY_SANDBOX_OWNER"] = String(ProcessInfo.processInfo.processIdentifier)
        process.environment = environment
        try process.runWithCleanSignals()
        // Sequential reads are safe: the script writes a few lines at most (the server's own
        // output goes to DIR/console.log, so it does not hold these pipes open).
        let out = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let err = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        // Closed explicitly: Foundation's Process keeps its pipes, and their descriptors, alive.
        for pipe in [stdout, stderr] { try? pipe.fileHandleForReading.close() }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ScriptError(arguments: arguments, status: process.terminationStatus,
                              stderr: err.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return out
    }

    /// `key=value` line lookup in the script's output.
    private static func value(of key: String, in output: String) -> String? {
        output.split(separator: "\n").first { $0.hasPrefix(key + "=") }
            .map { String($0.dropFirst(key.count + 1)) }
    }
}
