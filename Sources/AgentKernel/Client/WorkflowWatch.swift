import Foundation

/// Follows one workflow through its events: which ones are worth a line, and when and how it
/// ended. Pure bookkeeping, so the rules are testable without a server.
///
/// Events come from several agents through the pubsub service and each agent publishes them
/// from separate tasks, so two events of one agent may arrive swapped (`completed` before the
/// last `done`, `parked` before the `failed` that caused it). The rules below do not depend on
/// that order; the caller fills in step lines that never came from the final document.
public struct WorkflowWatch: Sendable {
    public enum Outcome: String, Sendable, Equatable {
        case completed, failed, cancelled
        /// `on_failure: { then: park }`: it stays held, failed step pending, until resubmitted.
        case parkedAfterFailure = "parked after failure"

        public var succeeded: Bool { self == .completed }
    }

    public enum Update: Sendable, Equatable {
        /// A step ended (done or failed).
        case step(WorkflowEvent)
        /// A failed step will be tried again.
        case retrying(WorkflowEvent)
        /// Parked because no agent runs the next action: it goes on when one comes.
        case waiting(WorkflowEvent)
        /// The workflow is over.
        case finished(Outcome, WorkflowEvent)
    }

    public let workflow: String
    public private(set) var outcome: Outcome?
    /// Steps (`id#attempt`… as `id`) whose ending has been reported, so gaps can be filled.
    public private(set) var reportedSteps: [String: Int] = [:]
    /// Steps seen done, and how many steps there are (from an event's `2/3` position).
    public private(set) var doneSteps: Set<String> = []
    public private(set) var totalSteps: Int?
    private var failedSteps: Set<String> = []
    private var waiting = false

    public init(workflow: String) { self.workflow = workflow }

    /// What `event` means for the watch, or nil if it is not about this workflow or not worth a line.
    public mutating func absorb(_ event: WorkflowEvent) -> Update? {
        guard event.workflow == workflow, outcome == nil else { return nil }
        if let total = event.position?.split(separator: "/").last.flatMap({ Int($0) }) { totalSteps = total }
        switch event.kind {
        case .done:
            waiting = false
            if let step = event.step {
                reportedSteps[step, default: 0] += 1
                doneSteps.insert(step)
            }
            return .step(event)
        case .failed where event.step != nil:
            failedSteps.insert(event.step!)
            reportedSteps[event.step!, default: 0] += 1
            return .step(event)
        case .failed:
            return finish(.failed, event)
        case .cancelled:
            return finish(.cancelled, event)
        case .completed:
            return finish(.completed, event)
        case .retrying:
            if let step = event.step { failedSteps.remove(step) }
            return .retrying(event)
        case .parked:
            // Parked after its step failed for good (then: park) — over; parked for want of an
            // agent — it resumes by itself when one appears.
            if Self.isFailureParking(event) || event.step.map(failedSteps.contains) == true {
                return finish(.parkedAfterFailure, event)
            }
            guard !waiting else { return nil }
            waiting = true
            return .waiting(event)
        case .started, .handoff:
            waiting = false
            return nil
        case .submitted, .progress:
            return nil
        }
    }

    /// Whether every step's `done` has been seen (so a `completed` needs nothing filled in).
    public var allStepsDone: Bool { totalSteps.map { doneSteps.count >= $0 } ?? false }

    /// The engine parks a failed step with the reason `step ID failed: …`.
    static func isFailureParking(_ event: WorkflowEvent) -> Bool {
        guard let step = event.step, let message = event.message else { return false }
        return message.hasPrefix("step \(step) failed")
    }

    /// How a finished document ended, for when the events were lost and the journal is asked.
    public static func outcome(of document: WorkflowDocument) -> Outcome? {
        switch document.status {
        case .completed: .completed
        case .failed: .failed
        case .cancelled: .cancelled
        case .parked: document.reason?.hasPrefix("step ") == true && document.reason?.contains(" failed") == true ? .parkedAfterFailure : nil
        case .running: nil
        }
    }

    private mutating func finish(_ outcome: Outcome, _ event: WorkflowEvent) -> Update {
        self.outcome = outcome
        return .finished(outcome, event)
    }
}
