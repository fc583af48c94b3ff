import AgentKernel
import Foundation

/// `wf submit --watch`: prints one line per step as the events come in, a line when the
/// workflow waits for an agent, and a summary at the end.
struct WorkflowWatcher {
    enum Result { case finished(WorkflowWatch.Outcome), interrupted, connectionLost, timedOut }

    let session: Session
    let workflowID: String
    let listener: WorkflowEventFeed.Listener
    let since: Date
    /// With no event for this long, the agents are asked directly: events are fire-and-forget
    /// and a lost `completed` must not leave us waiting forever.
    var quietPoll: TimeInterval = 10
    /// A step running longer than this gets a line saying so, and another at each such interval:
    /// a build of many minutes must not look like a hang.
    var stillRunningEvery: TimeInterval = 30
    /// Watching ends after this long, the workflow unfinished (nil: until it ends).
    var timeout: TimeInterval?

    private enum Input: Sendable { case event(WorkflowEvent), tick, interrupt, feedEnded }

    func run() async -> Result {
        let (inputs, sink) = AsyncStream.makeStream(of: Input.self)
        let forward = Task { [listener] in
            for await event in listener.events { sink.yield(.event(event)) }
            // The feed ends its listeners when the connection is lost (or we stop it, below).
            sink.yield(.feedEnded)
        }
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                sink.yield(.tick)
            }
        }
        defer {
            forward.cancel()
            ticker.cancel()
            listener.stop()
        }
        return await Interrupts.during({ sink.yield(.interrupt) }) {
            var watch = WorkflowWatch(workflow: workflowID)
            var lastHeard = Date()
            // The step that started last and has not ended, and when we last said so.
            var running: (event: WorkflowEvent, started: Date, said: Date)?
            for await input in inputs {
                switch input {
                case .event(let event):
                    guard event.workflow == workflowID else { continue }
                    lastHeard = Date()
                    switch event.kind {
                    case .started: running = (event, Date(), Date())
                    case .done, .failed, .cancelled, .completed, .parked: running = nil
                    default: break
                    }
                    guard let update = watch.absorb(event) else { continue }
                    if case .finished(let outcome, let last) = update {
                        await finish(outcome, last: last, watch: watch)
                        return .finished(outcome)
                    }
                    print(render(update))
                case .tick:
                    if let timeout, Date().timeIntervalSince(since) >= timeout { return .timedOut }
                    if let step = running, Date().timeIntervalSince(step.said) >= stillRunningEvery {
                        running?.said = Date()
                        print(stillRunning(step.event, for: Date().timeIntervalSince(step.started)))
                    }
                    guard Date().timeIntervalSince(lastHeard) > quietPoll else { continue }
                    lastHeard = Date()
                    if let document = try? await session.workflows.locate(workflowID).latestDocument,
                       let outcome = WorkflowWatch.outcome(of: document) {
                        await finish(outcome, last: nil, watch: watch, document: document)
                        return .finished(outcome)
                    }
                case .interrupt:
                    return .interrupted
                case .feedEnded:
                    return .connectionLost
                }
            }
            return .interrupted
        }
    }

    private func stillRunning(_ event: WorkflowEvent, for seconds: TimeInterval) -> String {
        "  \(event.position.map { "[\($0)] " } ?? "")\(event.step ?? "?") \(event.action ?? "") on \(event.agent): running for \(Self.seconds(seconds))"
    }

    private func render(_ update: WorkflowWatch.Update) -> String {
        switch update {
        case .step(let event):
            let step = "\(event.position.map { "[\($0)] " } ?? "")\(event.step ?? "?") \(event.action ?? "")"
            var line = "  \(step) on \(event.agent): \(event.kind.rawValue)"
            if let elapsed = event.elapsed { line += " in \(Self.seconds(elapsed))" }
            // Our clock, not the event's: its time crossed the wire in whole seconds.
            line += " (at +\(Self.seconds(Date().timeIntervalSince(since))))"
            if event.kind == .failed, let message = event.message { line += ": \(message)" }
            return line
        case .retrying(let event):
            return "  \(event.step ?? "?") will be retried: \(event.message ?? "")"
        case .waiting(let event):
            return "  waiting: \(event.message ?? "parked") — it resumes when such an agent comes online (ctrl-C detaches)"
        case .finished(let outcome, _):
            return "  \(outcome.rawValue)"
        }
    }

    /// Prints lines for steps whose event never came (from the final document), then the summary.
    private func finish(_ outcome: WorkflowWatch.Outcome, last: WorkflowEvent?, watch: WorkflowWatch, document known: WorkflowDocument? = nil) async {
        var document = known
        if document == nil, !(outcome == .completed && watch.allStepsDone) {
            document = try? await session.workflows.locate(workflowID).latestDocument
        }
        if let document {
            var reported = watch.reportedSteps
            for entry in document.trail {
                if reported[entry.step, default: 0] > 0 { reported[entry.step]! -= 1; continue }
                let position = (document.steps.firstIndex { $0.id == entry.step }).map { "[\($0 + 1)/\(document.steps.count)] " } ?? ""
                var line = "  \(position)\(entry.step) \(entry.action) on \(entry.agent): \(entry.status)"
                if let finished = entry.finished { line += " in \(Self.seconds(finished.timeIntervalSince(entry.started)))" }
                if let error = entry.error { line += ": \(error)" }
                print(line)
            }
        }
        let name = document.map { "\($0.name) \($0.id)" } ?? last.map { "\($0.name) \($0.workflow)" } ?? workflowID
        let elapsed = Self.seconds(Date().timeIntervalSince(since))
        switch outcome {
        case .completed:
            let steps = document?.steps.count ?? watch.totalSteps
            print("\(name) completed" + (steps.map { ": \($0) step\($0 == 1 ? "" : "s")" } ?? "") + " in \(elapsed)")
        default:
            // What the failed step said last: usually why, without a second command.
            if let failed = document?.trail.last(where: { $0.status == "failed" }), let tail = Render.logTail(of: failed, indent: "  ") {
                print(tail)
            }
            let reason = document?.reason ?? last?.message ?? "no reason given"
            print("\(name) \(outcome.rawValue) after \(elapsed): \(reason)")
        }
    }

    static func seconds(_ value: TimeInterval) -> String { String(format: "%.2fs", value) }
}
