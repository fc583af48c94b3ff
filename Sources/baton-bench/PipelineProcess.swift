import AgentKernel
import Foundation
import ServiceLifecycle

/// One pipeline agent in a process of its own (phase f): an agent as agentd runs it, with the
/// benchmark's no-op step, so the hand-off numbers can be compared with every agent sharing one
/// process and one thread pool (phase e).
enum PipelineProcess {
    static func serve(user: String, action: String, port: Int, stateDirectory: String, concurrency: Int) async throws {
        let settings = Bench.agentSettings(user, port: port, stateDirectory: stateDirectory, concurrency: concurrency)
        let agent = try Agent(settings: settings, modules: [BenchStep(action: action)])
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: AgentService(agent))], gracefulShutdownSignals: [.sigterm], logger: agent.logger))
        // The benchmark holds our stdin: when it ends, however it ends, we shut down the same
        // way as on SIGTERM.
        Thread.detachNewThread {
            var byte: UInt8 = 0
            while read(STDIN_FILENO, &byte, 1) > 0 {}
            Task { await group.triggerGracefulShutdown() }
        }
        try await group.run()
    }
}
