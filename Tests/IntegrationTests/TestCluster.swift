import AgentKernel
import Agents
import Foundation
import ProsodySandbox
import Testing

/// A Prosody of our own plus helpers to make accounts, agents and control clients on it.
final class TestCluster: Sendable {
    static let adminJID = "admin@baton.test"
    static let adminPassword = "admin-secret"
    let server: ProsodyServer

    init() async throws {
        server = try ProsodyServer.start()
        try server.register(user: "admin", password: Self.adminPassword)
        let admin = try await connect("admin", password: Self.adminPassword)
        try await DirectoryAdmin(connection: admin, service: "pubsub.\(server.domain)").prepare()
        await admin.close()
    }

    deinit { server.stop() }

    func connectionSettings(_ user: String, password: String? = nil, resource: String = "agent") -> ConnectionSettings {
        ConnectionSettings(jid: "\(user)@\(server.domain)/\(resource)", password: password ?? "pw-\(user)",
                           host: server.host, port: UInt16(server.port), tls: .trustAny, connectTimeout: 5)
    }

    func connect(_ user: String, password: String? = nil, resource: String = "client") async throws -> XMPPConnection {
        let connection = XMPPConnection(settings: connectionSettings(user, password: password, resource: resource),
                                        logger: BatonLog.logger(agent: user, module: "test"))
        try await connection.connect(reconnect: false)
        return connection
    }

    /// Registers `user` and enrolls it as a publisher on the Baton nodes.
    func account(_ user: String) async throws {
        try server.register(user: user, password: "pw-\(user)")
        let admin = try await connect("admin", password: Self.adminPassword, resource: "enroll-\(user)")
        try await DirectoryAdmin(connection: admin, service: "pubsub.\(server.domain)").enroll(["\(user)@\(server.domain)"])
        await admin.close()
    }

    func settings(_ user: String, modules: [String] = ["echo"], trusted: [String] = ["ops@baton.test"]) -> AgentSettings {
        AgentSettings(name: user, connection: connectionSettings(user), modules: modules, trusted: trusted,
                      stateDirectory: server.dir.path + "/state-\(user)")
    }

    /// Starts an in-process agent and waits until it has announced itself.
    func startAgent(_ user: String, modules: [String] = ["echo"], trusted: [String] = ["ops@baton.test"]) async throws -> RunningAgent {
        try await account(user)
        let settings = settings(user, modules: modules, trusted: trusted)
        let agent = try Agent(settings: settings, modules: try settings.modules.map { try ModuleCatalog.make($0, settings: settings) })
        return try await RunningAgent(agent)
    }

    /// Writes an agentd config file for `user` and returns its path.
    func agentConfigFile(_ user: String, modules: [String] = ["echo"]) throws -> String {
        let path = server.dir.path + "/\(user).yaml"
        try """
        name: \(user)
        jid: \(user)@\(server.domain)/agent
        password: pw-\(user)
        server: { host: \(server.host), port: \(server.port) }
        tls: { policy: trust-any }
        modules: [\(modules.joined(separator: ", "))]
        trusted: [ops@baton.test, "*@baton.test"]
        state_dir: \(server.dir.path)/state-\(user)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

/// An agent running in this process, stopped cleanly by `stop()`.
final class RunningAgent: Sendable {
    let agent: Agent
    let task: Task<Void, Error>

    init(_ agent: Agent) async throws {
        self.agent = agent
        let (online, signal) = AsyncStream.makeStream(of: Void.self)
        task = Task { try await agent.run(onOnline: { signal.yield() }) }
        let deadline = Task {
            try await Task.sleep(for: .seconds(30))
            signal.finish()
        }
        var iterator = online.makeAsyncIterator()
        let cameOnline = await iterator.next() != nil
        deadline.cancel()
        if !cameOnline {
            task.cancel()
            throw CLIFailure("agent \(agent.settings.name) did not come online within 30 s")
        }
    }

    var jid: String { agent.jid }

    func stop() async throws {
        await agent.shutdown()
        try await task.value
    }
}

struct CLIFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Paths of the built executables, next to the test bundle.
enum Products {
    /// `swift test` runs `.build/<triple>/debug/BatonPackageTests.xctest`; agentd is beside it.
    static var directory: URL { URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent() }
    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
}

/// `Support/tcp_relay.py` in a process of its own: a way to the server that a test can cut as a
/// lost network would, with no closing stanza from either end.
final class TCPRelay: Sendable {
    let port: Int
    private let process: Process

    /// Relays 127.0.0.1:`port` (any free one if 0) to 127.0.0.1:`target`.
    init(to target: Int, port: Int = 0) throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Support/tcp_relay.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [script, String(port), String(target)]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        // Its first line is the port it listens on, once it does.
        let reader = output.fileHandleForReading
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            line += chunk
        }
        try reader.close()
        guard let listening = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.terminate()
            process.waitUntilExit()
            throw CLIFailure("tcp_relay.py did not start: \(String(decoding: line, as: UTF8.self))")
        }
        self.port = listening
        self.process = process
    }

    /// Kills the relay: every connection through it is gone at once.
    func cut() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { if process.isRunning { cut() } }
}
