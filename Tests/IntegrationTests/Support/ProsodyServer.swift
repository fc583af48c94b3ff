import Foundation

/// A throwaway Prosody (domain `baton.test`, c2s on 127.0.0.1, pubsub at `pubsub.baton.test`)
/// driven through `scripts/prosody-sandbox`. Everything lives in `dir`, a fresh temp directory,
/// which is deleted on deinit unless `BATON_KEEP_PROSODY=1` (to read `prosody.log` afterwards).
/// If the test process dies first, the script's watchdog stops the server within a second.
final class ProsodyServer: @unchecked Sendable {
    struct ScriptError: Error, CustomStringConvertible {
        let arguments: [String]
        let status: Int32
        let stderr: String
        var description: String {
            "prosody-sandbox \(arguments.joined(separator: " ")) exited \(status): \(stderr)"
        }
    }

    /// scripts/prosody-sandbox, found from this file: Tests/IntegrationTests/Support/ -> repo root.
    static let script = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .appendingPathComponent("../../../scripts/prosody-sandbox").standardized
    /// The slixmpp client used as a third-party XMPP client (run with /usr/bin/python3).
    static let xmppClient = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().appendingPathComponent("xmpp_client.py")

    let host = "127.0.0.1"
    let domain = "baton.test"
    let pubsubService = "pubsub.baton.test"
    let dir: URL
    let port: Int
    var logFile: URL { dir.appendingPathComponent("prosody.log") }

    // Serialises start/stop/register: tests may call them from several tasks.
    private let lock = NSLock()
    private var running = true

    private init(dir: URL, port: Int) {
        self.dir = dir
        self.port = port
    }

    /// Starts a server in a new temp directory on a free port.
    static func start() throws -> ProsodyServer {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("baton-prosody-\(UUID().uuidString)")
        let out = try run(["start", dir.path])
        guard let port = value(of: "port", in: out).flatMap({ Int($0) }) else {
            throw ScriptError(arguments: ["start", dir.path], status: 0, stderr: "no port= in: \(out)")
        }
        return ProsodyServer(dir: dir, port: port)
    }

    func register(user: String, password: String) throws {
        try register([(user, password)])
    }

    /// Registers several accounts with one script call.
    func register(_ accounts: [(user: String, password: String)]) throws {
        guard !accounts.isEmpty else { return }
        lock.lock(); defer { lock.unlock() }
        _ = try Self.run(["register", dir.path] + accounts.flatMap { [$0.user, $0.password] })
    }

    /// Stops the server; idempotent. The data stays until deinit.
    func stop() {
        lock.lock(); defer { lock.unlock() }
        guard running else { return }
        _ = try? Self.run(["stop", dir.path])
        running = false
    }

    /// Stops and starts again on the same port with the same accounts and pubsub data.
    func restart() throws {
        lock.lock(); defer { lock.unlock() }
        _ = try Self.run(["restart", dir.path])
        running = true
    }

    deinit {
        if running { _ = try? Self.run(["stop", dir.path]) }
        if ProcessInfo.processInfo.environment["BATON_KEEP_PROSODY"] != "1" {
            try? FileManager.default.removeItem(at: dir)
        }
    }

    /// The script's stdout; throws with its stderr on a non-zero exit.
    @discardableResult
    private static func run(_ arguments: [String]) throws -> String {
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
        try process.run()
        // Sequential reads are safe: the script writes a few lines at most (the server's own
        // output goes to DIR/console.log, so it does not hold these pipes open).
        let out = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let err = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
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
