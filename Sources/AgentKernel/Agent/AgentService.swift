import ServiceLifecycle

/// An agent as a swift-service-lifecycle `Service`: run it in a `ServiceGroup` with
/// `gracefulShutdownSignals: [.sigterm, .sigint]` and a signal becomes `Agent.shutdown()` —
/// modules stopped, directory item retracted, unavailable presence, stream closed — after
/// which `run()` returns. Work held stays in the journal for the next start.
public struct AgentService: Service {
    public let agent: Agent

    public init(_ agent: Agent) { self.agent = agent }

    public func run() async throws {
        let stopping = Locked<Task<Void, Never>?>(nil)
        try await withGracefulShutdownHandler {
            try await agent.run()
        } onGracefulShutdown: { [agent] in
            stopping.withLock { $0 = Task { await agent.shutdown() } }
        }
        // `run` returns once the stream is closed, which `shutdown` does before its last
        // steps: let them finish before the process ends.
        await stopping.value?.value
    }
}
