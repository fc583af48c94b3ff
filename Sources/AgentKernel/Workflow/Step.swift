import ChildProcess
import Foundation
import Logging

/// Everything a module gets to run one step of a workflow.
public struct StepInvocation: Sendable {
    public let workflowID: String
    public let workflowName: String
    public let step: WorkflowDocument.Step
    public let params: [String: JSONValue]
    /// Outputs of earlier steps, by step id.
    public let context: [String: [String: JSONValue]]
    /// The ids of the steps before this one, in the workflow's order.
    public let earlierSteps: [String]
    public let attempt: Int
    /// What happened so far (for provenance, e.g. a release manifest).
    public let trail: [WorkflowDocument.TrailEntry]
    public let submitter: String
    private let workspaceURL: URL
    /// A directory of this step's own, created on first use (most steps never need one) and
    /// removed when the step succeeds (its products are in its outputs by then); a failed
    /// step's is kept for inspection.
    public var workspace: URL {
        try? FileManager.default.createDirectory(at: workspaceURL, withIntermediateDirectories: true)
        return workspaceURL
    }
    public let logger: Logger
    /// Progress for humans: goes to the events node and the submitter's chat.
    public let progress: @Sendable (String) -> Void

    init(workflowID: String, workflowName: String, step: WorkflowDocument.Step, params: [String: JSONValue],
         context: [String: [String: JSONValue]], earlierSteps: [String], attempt: Int, trail: [WorkflowDocument.TrailEntry], submitter: String,
         workspace: URL, logger: Logger, progress: @escaping @Sendable (String) -> Void) {
        self.workflowID = workflowID
        self.workflowName = workflowName
        self.step = step
        self.params = params
        self.context = context
        self.earlierSteps = earlierSteps
        self.attempt = attempt
        self.trail = trail
        self.submitter = submitter
        self.workspaceURL = workspace
        self.logger = logger
        self.progress = progress
    }

    /// The `with:` value of this step, else a workflow parameter of the same name.
    public func argument(_ name: String) -> JSONValue? { step.with[name] ?? params[name] }

    /// The most recent output called `name` among earlier steps: walked back from this step
    /// in the workflow's order (`context` alone, a dictionary, has none — which of two steps
    /// answered varied from one agent process to the next).
    public func earlierOutput(_ name: String) -> JSONValue? {
        earlierSteps.reversed().lazy.compactMap { context[$0]?[name] }.first
    }
}

/// Runs blocking work (tools, file systems) on a thread of its own, so the cooperative
/// thread pool that serves XMPP traffic never waits on it.
///
/// Cancelling the calling task (a workflow cancel, a time limit) kills the tool the work is
/// running (`Tool.run` and the VM tester watch `ThreadCancel.current`) and fails any it would
/// start next, so the work ends soon after with an error; it is still waited for, as the
/// thread may hold files the step's caller is about to clean up.
public func offloaded<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    let cancel = ThreadCancel()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try cancel.installed(work) }) }
        }
    } onCancel: {
        cancel.cancel()
    }
}

public struct StepOutcome: Sendable {
    public var outputs: [String: JSONValue]
    public var logTail: String?
    public init(outputs: [String: JSONValue] = [:], logTail: String? = nil) {
        self.outputs = outputs
        self.logTail = logTail
    }
}

/// A step that failed: the message goes into the trail and to the submitter.
public struct StepFailure: Error, Sendable, CustomStringConvertible {
    public let description: String
    public let logTail: String?
    public init(_ description: String, logTail: String? = nil) {
        self.description = description
        self.logTail = logTail
    }
}

/// A module that runs workflow steps.
public protocol StepRunner: AgentModule {
    func run(_ invocation: StepInvocation) async throws -> StepOutcome
}
