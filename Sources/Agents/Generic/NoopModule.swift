import AgentKernel

/// `util.noop`: a step that does nothing and succeeds — for pipelines under test and for
/// measuring the cost of the hand-off itself.
public struct NoopModule: StepRunner {
    public let name = "util"
    public var actions: [String] { ["util.noop"] }
    public init() {}

    public func run(_ invocation: StepInvocation) async throws -> StepOutcome {
        StepOutcome(outputs: ["step": .string(invocation.step.id)])
    }
}
