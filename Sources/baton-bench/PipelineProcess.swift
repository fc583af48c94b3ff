import AgentKernel
import Foundation
import ProsodySandbox
import ServiceLifecycle

/// One pipeline agent in a process of its own (phase f): an agent as agentd runs it, with the
/// benchmark's no-op step, so the hand-off numbers can be compared with every agent sharing one
/// process and one thread pool (phase e).
enum PipelineProcess {
    static func serve(user: String, action: String, port: Int, stateDirectory: String, concurrency: Int) async throws {
        let domain = ProsodyServer.domain
        let connection = ConnectionSettings(jid: "\(user)@\(domain)/agent", password: Bench.password(user), host: "127.0.0.1",
                                            port: UInt16(port), tls: .trustAny, connectTimeout: 5)
        let settings = AgentSettings(name: user, connection: connection, modules: [], trusted: ["*@\(domain)"],
                                     concurrency: concurrency, stateDirectory: stateDirectory)
        let agent = try Agent(settings: settings, modules: [BenchStep(action: action)])
        // The benchmark holds our stdin: when it ends, however it ends, so do we.
        Thread.detachNewThread {
            var byte: UInt8 = 0
            while read(STDIN_FILENO, &byte, 1) > 0 {}
            Task { await agent.shutdown() }
        }
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: AgentService(agent))], gracefulShutdownSignals: [.sigterm], logger: agent.logger))
        try await group.run()
    }
}
