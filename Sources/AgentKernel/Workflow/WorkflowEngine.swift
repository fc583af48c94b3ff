import Foundation
import Logging
import Synchronization

/// Runs this agent's part of every workflow it holds and hands each one on — with custody:
/// nothing leaves the journal until the next holder has said it stored the document.
public final class WorkflowEngine: Sendable {
    public let journal: Journal
    let connection: XMPPConnection
    let directory: AgentDirectory
    let runners: [String: any StepRunner]
    let settings: AgentSettings
    let logger: Logger
    let events: EventReporter
    let limiter: ConcurrencyLimiter
    let me: @Sendable () -> String
    let loadChanged: @Sendable (Int) -> Void
    /// Test hook: answer nothing to this many hand-offs after storing them (a lost acknowledgement).
    public let ackDropper = Mutex(0)

    private struct Scheduling {
        var busy: Set<String> = []
        var cancelRequested: Set<String> = []
        var running: [String: Task<StepOutcome, Error>] = [:]
        /// Parked entries: when to try routing each again (see `park`).
        var parkedRetry: [String: (delay: Duration, at: ContinuousClock.Instant)] = [:]
    }
    /// The longest wait between two tries of a parked workflow whose agents keep refusing it.
    static let maximumParkedRetryDelay = Duration.seconds(60)
    private let scheduling = Mutex(Scheduling())
    /// How many times a step may be cut short by its agent's crash before the workflow fails.
    static let maximumInterruptedRuns = 3
    private let endObservers = Observers<WorkflowDocument>()
    private let handoffObservers = Observers<Handoff>()
    private let custodyObservers = Observers<Custody>()
    private let refusalObservers = Observers<Refusal>()

    /// A hand-off the receiver answered with an error (it did not take the workflow).
    public struct Refusal: Sendable {
        public var workflow: String
        public var target: String
        public var error: StanzaError
    }

    /// One completed hand-off, as the sender saw it.
    public struct Handoff: Sendable {
        public var workflow: String
        /// The step the receiver is to run (0-based).
        public var seq: Int
        public var target: String
        /// Size of the document sent (JSON, UTF-8).
        public var bytes: Int
        /// When the sender began it (before journaling it).
        public var started: ContinuousClock.Instant
        /// From journaling the hand-off to journaling it done: encode, IQ, the receiver's
        /// synced store, its answer.
        public var duration: Duration
    }

    /// A document this agent took custody of: stored and synced, about to be acknowledged.
    public struct Custody: Sendable {
        public var workflow: String
        /// The step this agent is to run (0-based).
        public var seq: Int
        public var from: String
        public var stored: ContinuousClock.Instant
    }

    init(journal: Journal, connection: XMPPConnection, directory: AgentDirectory, runners: [any StepRunner],
         settings: AgentSettings, me: @escaping @Sendable () -> String, loadChanged: @escaping @Sendable (Int) -> Void) {
        self.journal = journal
        self.connection = connection
        self.directory = directory
        var byAction: [String: any StepRunner] = [:]
        for runner in runners { for action in runner.actions { byAction[action] = runner } }
        self.runners = byAction
        self.settings = settings
        self.me = me
        self.loadChanged = loadChanged
        logger = BatonLog.logger(agent: settings.name, module: "workflow")
        events = EventReporter(connection: connection, service: settings.pubsubService, logger: logger)
        limiter = ConcurrencyLimiter(settings.concurrency)
    }

    // MARK: - Ways in

    /// Stamps a new workflow and takes custody of it; the first hand-off follows at once.
    /// A given `id` makes submission idempotent (the spool derives it from the claimed file).
    public func submit(_ authored: WorkflowDocument, by submitter: String, id: String? = nil) throws -> WorkflowDocument {
        let document = authored.submitted(by: submitter, id: id ?? WorkflowDocument.newID())
        guard try journal.accept(document, seq: -1, state: .routing) else { return document }
        logger.info("accepted new workflow \(document.shortName) from \(submitter)")
        events.report(WorkflowEvent(.submitted, document: document, agent: me(), message: Self.count(document.steps.count, "step")), to: document)
        schedule(document, seq: -1, state: .routing)
        return document
    }

    /// Stores a handed-over document (synced), calls `acknowledge` with whether it is new
    /// (false: a resend of one already here), and only then starts its step.
    ///
    /// Acknowledging first matters on a loaded machine: a step started before the answer left
    /// competes with it for the CPU, and the sender waits longer (baton-bench, five alternating
    /// runs: hand-off p50 1.67 → 1.56 ms). `json` is the document's text as it arrived, stored as is.
    public func receive(_ document: WorkflowDocument, json: String? = nil, from sender: String,
                        acknowledge: (_ isNew: Bool) -> Void) throws {
        guard runners[document.steps[document.cursor].action] != nil else {
            throw StanzaError(.featureNotImplemented, "\(settings.name) does not run '\(document.steps[document.cursor].action)'")
        }
        let isNew = try journal.accept(document, json: json, seq: document.cursor)
        if isNew {
            custodyObservers.notify(Custody(workflow: document.id, seq: document.cursor, from: sender, stored: .now))
        }
        acknowledge(isNew)
        if isNew {
            logger.info("took custody of \(document.shortName) step \(document.cursor + 1) from \(sender)")
            schedule(document, seq: document.cursor, state: .accepted)
        } else {
            logger.info("duplicate hand-off of \(document.shortName) step \(document.cursor + 1) from \(sender): already held")
        }
    }

    /// Whether the hand-off `element` names a (workflow, seq) already in the journal.
    func holds(_ element: XMLElement?) -> Bool {
        guard let workflow = element?["workflow"], let seq = element?["seq"].flatMap({ Int($0) }) else { return false }
        return (try? journal.state(workflow, seq: seq)) != nil
    }

    /// Cancels a workflow held here; returns the entry's state or nil if not held here.
    ///
    /// An entry no task is working on is ended here and now. One that a task holds — its step
    /// waiting for a slot or running, or its hand-off under way — is left to that task, which
    /// looks for the request at each point where it could go on: ending it from here would be
    /// overwritten by the task's next write, and the workflow would carry on.
    ///
    /// `force` also ends, here, a workflow whose hand-off is waiting for an agent that may have
    /// stored it (pinned): for when that agent is gone for good. Whoever forces it vouches that
    /// the agent will not run the step.
    public func cancel(_ workflow: String, by who: String, force: Bool = false) throws -> String? {
        guard let entry = try journal.entries(workflow: workflow).first else { return nil }
        switch entry.state {
        case .handed: return "handed to \(entry.target ?? "?")"
        case .finished: return "already \(entry.document.status.rawValue)"
        default: break
        }
        let id = entry.document.id, k = key(id, entry.seq)
        // Kept in the journal until the workflow ends here or the cancel reaches its holder: a
        // cancel left to a task (or to a target's answer) must survive a restart of this agent.
        try journal.setRecord(Self.cancelRecordPrefix + id, json: JSONValue.string(who).jsonText)
        let idle = scheduling.withLock { s -> Bool in
            s.cancelRequested.insert(id)
            s.running[k]?.cancel()
            // Taking the entry as busy keeps the pump from starting a task on it meanwhile.
            return s.busy.insert(k).inserted
        }
        guard idle else {
            let busy: String
            switch entry.state {
            case .running: busy = "cancelling (step running)"
            case .handing, .routing: busy = "cancelling (being handed on; cancelled where it arrives if already sent)"
            case .parked where entry.target != nil: busy = "cancelling (waiting for \(entry.target ?? "?"), which may hold it, to answer)"
            default: busy = "cancelling (step about to start)"
            }
            // Force acts only on an entry at rest; one that is being handed on is settled first.
            return force ? busy + "; not forced: a hand-off attempt is under way, force again in a few seconds" : busy
        }
        var release = true
        defer { if release { scheduling.withLock { _ = $0.busy.remove(k) } } }
        // Read again now that no task can start on it: one may have finished just before.
        guard let current = try journal.entry(id, seq: entry.seq) else { return nil }
        switch current.state {
        case .handed:
            // Handed on just now: the cancel follows it.
            passOnCancel(id, seq: current.seq)
            return "handed to \(current.target ?? "?"); the cancel is passed on"
        case .finished:
            clearCancelRecord(id)
            return "already \(current.document.status.rawValue)"
        case .handing where current.target != nil && !force, .parked where current.target != nil && !force:
            // It may be stored at the target: settle that first, then the cancel goes there
            // (or, if the target says it never took it, it is cancelled here).
            release = false
            scheduling.withLock { _ = $0.busy.remove(k) }
            schedule(workflow: id, seq: current.seq)
            return "cancelling (waiting for \(current.target ?? "?"), which may hold it, to answer; force ends it here)"
        default:
            let forced = force && current.target != nil && (current.state == .handing || current.state == .parked)
            try finish(current, status: .cancelled, reason: forced ? "cancelled by \(who), forced while waiting for \(current.target ?? "?")" : "cancelled by \(who)")
            return forced ? "cancelled (forced; \(current.target ?? "?") may still hold a copy)" : "cancelled"
        }
    }

    /// Journal records of cancels not yet carried out (key: prefix + workflow id).
    public static let cancelRecordPrefix = "workflow.cancel/"

    /// Cancels requested before a restart: pending again, passed on, or done with.
    private func restoreCancelRequests() {
        for (key, _) in (try? journal.records(prefix: Self.cancelRecordPrefix)) ?? [] {
            let id = String(key.dropFirst(Self.cancelRecordPrefix.count))
            guard let latest = try? journal.entries(workflow: id).first, latest.document.id == id else {
                try? journal.setRecord(key, json: nil)
                continue
            }
            switch latest.state {
            case .finished: try? journal.setRecord(key, json: nil)
            case .handed:
                // Handed on before the cancel could be passed on: pass it on now.
                if let target = latest.target, target != "self" { forwardCancel(of: latest.document, to: target) } else { try? journal.setRecord(key, json: nil) }
            default: scheduling.withLock { _ = $0.cancelRequested.insert(id) }
            }
        }
    }

    private func isCancelRequested(_ workflow: String) -> Bool { scheduling.withLock { $0.cancelRequested.contains(workflow) } }

    /// Resumes everything the journal holds (after a crash or restart) and keeps retrying
    /// parked work until `stop`.
    func run() async {
        restoreCancelRequests()
        do {
            for entry in try journal.entries(in: [.accepted, .running, .routing, .handing, .parked]) {
                if entry.state != .parked { logger.info("resuming \(entry.document.shortName) (\(entry.state.rawValue))") }
                schedule(entry)
            }
        } catch {
            logger.error("cannot read the journal: \(error)")
        }
        var lastPrune = ContinuousClock.now
        var lastOnline = Set(await directory.all.filter(\.online).map(\.jid))
        while !Task.isCancelled {
            // Hand-offs that no task is working on (their connection dropped) are retried at
            // once; parked work waits until an agent offering its next action is online.
            let idle = { (keys: [(workflow: String, seq: Int)]) in
                self.scheduling.withLock { s in keys.filter { !s.busy.contains(self.key($0.workflow, $0.seq)) } }
            }
            let parked = (try? journal.entries(in: [.parked])) ?? []
            let actions = Set(parked.compactMap { $0.document.currentStep?.action })
            if idle((try? journal.keys(in: [.handing, .routing])) ?? []).isEmpty {
                // At most a second: a workflow parked meanwhile is due for its first retry then.
                _ = await directory.wait(timeout: 1) { peers in
                    peers.contains { peer in peer.online && actions.contains { peer.description.actions.contains($0) } }
                }
            }
            if Task.isCancelled { break }
            // A parked workflow is tried again when its wait is over, or at once when an agent
            // comes online (one that could take it, or the one it waits for, may be among them).
            let online = Set(await directory.all.filter(\.online).map(\.jid))
            if !online.isSubset(of: lastOnline) { scheduling.withLock { $0.parkedRetry.removeAll() } }
            lastOnline = online
            let parkedKeys = Set(parked.map { key($0.document.id, $0.seq) }), now = ContinuousClock.now
            scheduling.withLock { s in s.parkedRetry = s.parkedRetry.filter { parkedKeys.contains($0.key) || $0.value.at > now } }
            for (workflow, seq) in idle((try? journal.keys(in: [.parked, .handing, .routing])) ?? []) {
                let k = key(workflow, seq)
                if parkedKeys.contains(k), let at = scheduling.withLock({ $0.parkedRetry[k]?.at }), at > now { continue }
                schedule(workflow: workflow, seq: seq)
            }
            if ContinuousClock.now - lastPrune > .seconds(10) {
                try? journal.prune()
                lastPrune = .now
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Calls `observer` with every workflow that ends on this agent (completed, failed, cancelled,
    /// or parked after a failed step), once its end is in the journal.
    public func onEnd(_ observer: @escaping @Sendable (WorkflowDocument) -> Void) {
        endObservers.add(observer)
    }

    /// Calls `observer` after every hand-off this agent completes.
    public func onHandoff(_ observer: @escaping @Sendable (Handoff) -> Void) {
        handoffObservers.add(observer)
    }

    /// Calls `observer` whenever this agent has stored a new hand-off, before it answers.
    public func onCustody(_ observer: @escaping @Sendable (Custody) -> Void) {
        custodyObservers.add(observer)
    }

    /// Calls `observer` whenever an agent refuses a hand-off from this one.
    public func onRefusal(_ observer: @escaping @Sendable (Refusal) -> Void) {
        refusalObservers.add(observer)
    }

    private func ended(_ document: WorkflowDocument) {
        if isCancelRequested(document.id) { clearCancelRecord(document.id) }
        endObservers.notify(document)
    }

    /// The journal's record of a cancel, once it has nowhere left to go. The request itself
    /// stays in memory: a task scheduled before the end must still see it.
    private func clearCancelRecord(_ workflow: String) {
        try? journal.setRecord(Self.cancelRecordPrefix + workflow, json: nil)
    }

    /// If (workflow, seq) has been handed to another agent, the pending cancel goes there.
    private func passOnCancel(_ workflow: String, seq: Int) {
        guard let entry = try? journal.entry(workflow, seq: seq), entry.state == .handed,
              let target = entry.target, target != "self",
              // Not yet passed on (the record goes once the receiver has it).
              (try? journal.records(prefix: Self.cancelRecordPrefix + workflow))?.isEmpty == false else { return }
        forwardCancel(of: entry.document, to: target)
    }

    /// Ends the event publisher (called on shutdown, after the engine's pump is cancelled).
    func stop() { events.finish() }

    // MARK: - Scheduling

    /// "1 step", "6 steps".
    static func count(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }

    private func key(_ workflow: String, _ seq: Int) -> String { "\(workflow)#\(seq)" }

    /// Runs or routes an entry taken fresh from the journal.
    private func schedule(_ entry: Journal.Entry) { schedule(workflow: entry.document.id, seq: entry.seq, current: entry) }

    /// Runs or routes `document` at `seq`, just written to the journal in `state`.
    private func schedule(_ document: WorkflowDocument, seq: Int, state: Journal.State) {
        schedule(Journal.Entry(document: document, seq: seq, state: state, target: nil, updated: Date()))
    }

    private func schedule(workflow: String, seq: Int, current: Journal.Entry? = nil) {
        let k = key(workflow, seq)
        guard scheduling.withLock({ $0.busy.insert(k).inserted }) else { return }
        loadChanged(scheduling.withLock { $0.busy.count })
        // On the connection's I/O thread: journal writes, encoding and the hand-off's IQ and
        // reply then cost no thread switch (see `XMPPConnection.executor`). The step itself
        // runs in a task of its own, on the global pool.
        Task(executorPreference: connection.executor) { [self] in
            defer {
                let cancelPending = scheduling.withLock { s -> Bool in
                    _ = s.busy.remove(k)
                    return s.cancelRequested.contains(workflow)
                }
                loadChanged(scheduling.withLock { $0.busy.count })
                // A cancel that came while this task handed the workflow on follows it.
                if cancelPending { passOnCancel(workflow, seq: seq) }
            }
            do {
                // Re-read unless the caller holds the entry as just stored: the state may have
                // moved on between the scheduling and this task. And re-read if a cancel came: it
                // may have ended the entry between its write and the scheduling (it found the
                // entry idle), and the stale copy would be routed or run all the same — seen as a
                // submitted workflow cancelled at once, then kept here and run.
                let fresh = isCancelRequested(workflow) ? nil : current
                guard let entry = try fresh ?? journal.entry(workflow, seq: seq) else { return }
                switch entry.state {
                case .accepted, .running:
                    var next: Journal.Entry? = entry
                    while let current = next { next = try await runStep(current) }
                case .routing, .handing, .parked: try await route(entry)
                case .handed, .finished: return
                }
            } catch {
                logger.error("workflow \(workflow) step \(seq + 1): \(error)")
            }
        }
    }

    // MARK: - Running a step

    /// Runs the entry's step and journals its result; returns the entry again when the step
    /// failed and is to be retried (by the same task, which keeps the entry marked busy).
    private func runStep(_ entry: Journal.Entry) async throws -> Journal.Entry? {
        var document = entry.document
        if isCancelRequested(document.id), try journal.state(document.id, seq: entry.seq) != .finished {
            try finish(entry, status: .cancelled, reason: "cancelled before step \(document.currentStep?.id ?? "?")")
            return nil
        }
        guard let step = document.currentStep, let runner = runners[step.action] else {
            try park(entry, reason: "this agent cannot run '\(document.currentStep?.action ?? "?")'", wasParked: entry.state == .parked)
            return nil
        }
        await limiter.acquire()
        defer { Task { await limiter.release() } }
        // The entry this task was given may be stale by now (e.g. cancelled while the task
        // waited for its slot): only an entry still waiting for its step is run.
        // (A cancel that ended the entry itself, before this task started, shows here too.)
        guard let state = try journal.state(document.id, seq: entry.seq), state.stepPending else { return nil }
        if isCancelRequested(document.id) {
            try finish(entry, status: .cancelled, reason: "cancelled before step \(step.id)")
            return nil
        }
        if let deadline = document.deadline, deadline <= Date() {
            try finish(entry, status: .failed, reason: "time limit of \(Int(document.timeLimit ?? 0)) s exceeded before step \(step.id)")
            return nil
        }
        // Checked where documents come in (parser, hand-off); checked again here because the
        // ids become the workspace's path, which is removed once the step succeeds.
        guard WorkflowDocument.isName(document.id), WorkflowDocument.isName(step.id) else {
            try finish(entry, status: .failed, reason: "step id '\(step.id)' or workflow id '\(document.id)' is not a plain name")
            return nil
        }
        let attempt = (document.attempts[step.id] ?? 0) + 1
        // Attempts that left no trail entry were cut short by a crash of this agent. A crash is
        // not the step's failure (it does not spend `retries`), but a step that keeps taking its
        // agent down must not be started for ever.
        let interrupted = attempt - 1 - document.trail.filter { $0.step == step.id }.count
        if interrupted > Self.maximumInterruptedRuns {
            try finish(entry, status: .failed,
                       reason: "step \(step.id) was cut short \(interrupted) times (\(settings.name) stopped while it ran); not starting it again")
            return nil
        }
        document.attempts[step.id] = attempt
        try journal.markRunning(document.id, seq: entry.seq, attempt: attempt)
        events.report(WorkflowEvent(.started, document: document, agent: me(), step: step,
                                    message: attempt > 1 ? "attempt \(attempt)" : nil), to: document)
        let workspace = URL(fileURLWithPath: settings.stateDirectory).appendingPathComponent("work/\(document.id)/\(step.id)")
        let invocation = StepInvocation(
            workflowID: document.id, workflowName: document.name, step: step, params: document.params,
            context: document.context, earlierSteps: document.steps.prefix(document.cursor).map(\.id), attempt: attempt, trail: document.trail, submitter: document.submitter, workspace: workspace,
            logger: BatonLog.logger(agent: settings.name, module: runner.name),
            progress: { [events, me, progressDocument = document] text in
                events.report(WorkflowEvent(.progress, document: progressDocument, agent: me(), step: step, message: text), to: progressDocument)
            })
        let started = Date()
        // On the global pool, whatever executor this task prefers (the connection's I/O
        // thread): a step may compute or block for minutes.
        let task = Task(executorPreference: globalConcurrentExecutor) { try await runner.run(invocation) }
        scheduling.withLock { s in
            s.running[key(document.id, entry.seq)] = task
            // A cancel that came between the check above and now found no task to stop.
            if s.cancelRequested.contains(document.id) { task.cancel() }
        }
        // The workflow's time limit also bounds the step: past it, the step is cancelled.
        let overtime = Locked(false)
        let limitWatch = document.deadline.map { deadline in
            Task {
                try await Task.sleep(for: .milliseconds(max(0, Int(deadline.timeIntervalSinceNow * 1000))))
                overtime.withLock { $0 = true }
                task.cancel()
            }
        }
        let result = await task.result
        limitWatch?.cancel()
        scheduling.withLock { _ = $0.running.removeValue(forKey: key(document.id, entry.seq)) }
        let elapsed = Date().timeIntervalSince(started)
        var trail = WorkflowDocument.TrailEntry(step: step.id, action: step.action, agent: me(), attempt: attempt, started: started,
                                                finished: Date(), status: "done", outputs: [:])
        switch result {
        case .success(let outcome) where isCancelRequested(document.id):
            // The step finished despite the request (it did not stop when cancelled): keep its
            // result in the trail, but go no further.
            trail.outputs = outcome.outputs
            trail.logTail = outcome.logTail
            document.trail.append(trail)
            try finish(Journal.Entry(document: document, seq: entry.seq, state: .running, target: nil, updated: Date()),
                       status: .cancelled, reason: "cancelled while \(step.id) was running")
        case .success(let outcome):
            trail.outputs = outcome.outputs
            trail.logTail = outcome.logTail
            document.trail.append(trail)
            document.context[step.id] = outcome.outputs
            document.cursor += 1
            await removeWorkspace(workspace)
            events.report(WorkflowEvent(.done, document: document, agent: me(), step: step, elapsed: elapsed), to: document)
            if document.cursor >= document.steps.count {
                document.status = .completed
                try journal.update(document, seq: entry.seq, state: .finished)
                events.report(WorkflowEvent(.completed, document: document, agent: me(),
                                            message: "\(Self.count(document.steps.count, "step")) in \(WorkflowEvent.tenths(Date().timeIntervalSince(document.submitted)))s"), to: document)
                ended(document)
                return nil
            }
            // Every way out of `route` (hand-off pending, kept here, parked) first journals the
            // document with this result, before any message leaves: from then on the step is
            // never run again. A crash before that write reruns the step (at-least-once), so
            // no separate `routing` write is needed — it would cost every hop a transaction.
            try await route(Journal.Entry(document: document, seq: entry.seq, state: .routing, target: nil, updated: Date()))
        case .failure(let error):
            let cancelled = scheduling.withLock { $0.cancelRequested.contains(document.id) }
            trail.status = cancelled ? "cancelled" : "failed"
            trail.error = cancelled ? "cancelled" : "\(error)"
            trail.logTail = (error as? StepFailure)?.logTail
            document.trail.append(trail)
            if cancelled {
                try finish(Journal.Entry(document: document, seq: entry.seq, state: .running, target: nil, updated: Date()),
                           status: .cancelled, reason: "cancelled while \(step.id) was running")
                return nil
            }
            if overtime.value {
                try finish(Journal.Entry(document: document, seq: entry.seq, state: .running, target: nil, updated: Date()),
                           status: .failed, reason: "time limit of \(Int(document.timeLimit ?? 0)) s exceeded during step \(step.id)")
                return nil
            }
            events.report(WorkflowEvent(.failed, document: document, agent: me(), step: step, elapsed: elapsed, message: "\(error)"), to: document)
            // Only failures spend `retries`: an attempt cut short by this agent's crash left no
            // trail entry and does not count (see `maximumInterruptedRuns` for those).
            let failures = document.trail.filter { $0.step == step.id && $0.status == "failed" }.count
            if failures <= document.onFailure.retries {
                try journal.update(document, seq: entry.seq, state: .accepted)
                events.report(WorkflowEvent(.retrying, document: document, agent: me(), step: step,
                                            message: "retry \(failures) of \(document.onFailure.retries)"), to: document, chat: false)
                return Journal.Entry(document: document, seq: entry.seq, state: .accepted, target: nil, updated: Date())
            }
            let current = Journal.Entry(document: document, seq: entry.seq, state: .running, target: nil, updated: Date())
            if document.onFailure.then == .park {
                document.status = .parked
                document.reason = "step \(step.id) failed: \(error)"
                try journal.update(document, seq: entry.seq, state: .finished)
                events.report(WorkflowEvent(.parked, document: document, agent: me(), step: step, message: document.reason), to: document)
                ended(document)
            } else {
                try finish(current, status: .failed, reason: "step \(step.id) failed: \(error)")
            }
        }
        return nil
    }

    private func finish(_ entry: Journal.Entry, status: WorkflowDocument.Status, reason: String) throws {
        var document = entry.document
        document.status = status
        document.reason = reason
        try journal.update(document, seq: entry.seq, state: .finished)
        let kind: WorkflowEvent.Kind = status == .cancelled ? .cancelled : .failed
        events.report(WorkflowEvent(kind, document: document, agent: me(), message: reason), to: document)
        ended(document)
    }

    /// Drops a succeeded step's workspace (and the workflow's directory once empty): its
    /// products are in the artifact store or the step's outputs by now. Should the agent crash
    /// before the result is journaled, the rerun simply gets a fresh workspace.
    private func removeWorkspace(_ workspace: URL) async {
        guard FileManager.default.fileExists(atPath: workspace.path) else { return }
        // On the global pool: a build's workspace can take seconds to delete, and this task
        // may be on the connection's I/O thread.
        await Task(executorPreference: globalConcurrentExecutor) {
            let manager = FileManager.default
            try? manager.removeItem(at: workspace)
            let parent = workspace.deletingLastPathComponent()
            if (try? manager.contentsOfDirectory(atPath: parent.path))?.isEmpty == true { try? manager.removeItem(at: parent) }
        }.value
    }

    // MARK: - Handing on

    private func route(_ entry: Journal.Entry) async throws {
        guard let step = entry.document.currentStep else { return }
        // Ended (e.g. cancelled) since this task was scheduled with it: nothing to hand on.
        guard let state = try journal.state(entry.document.id, seq: entry.seq), state != .finished, state != .handed else { return }
        // A hand-off that may have reached its target — sent, and no answer that says either
        // way: a timeout, a lost connection, a crash — stays with that target until it answers.
        // Sent to anyone else, the step could run on two agents.
        if let target = entry.target, entry.state == .handing || entry.state == .parked {
            try await resolve(entry, with: target)
            return
        }
        if isCancelRequested(entry.document.id) {
            try finish(entry, status: .cancelled, reason: "cancelled before step \(step.id) was handed on")
            return
        }
        let wasParked = entry.state == .parked
        let candidates = await directory.candidates(for: step.action, key: entry.document.id).map(\.jid)
        guard !candidates.isEmpty else {
            try park(entry, reason: "no agent offers \(step.action)", wasParked: wasParked)
            return
        }
        var refusals: [String] = []
        for target in candidates {
            if target == me() {
                try journal.handToSelf(entry.document, from: entry.seq)
                events.report(WorkflowEvent(.handoff, document: entry.document, agent: me(), step: step, message: "kept here"), to: entry.document, chat: false)
                schedule(entry.document, seq: entry.document.cursor, state: .accepted)
                return
            }
            switch try await handOff(entry, to: target, resending: false) {
            case .handed, .interrupted: return
            case .refused(let why): refusals.append(why)
            case .unanswered(let why):
                try park(Journal.Entry(document: entry.document, seq: entry.seq, state: .handing, target: target, updated: Date()),
                         reason: why, wasParked: wasParked)
                return
            }
        }
        try park(Journal.Entry(document: entry.document, seq: entry.seq, state: .handing, target: nil, updated: Date()),
                 reason: "every agent offering \(step.action) refused it: \(refusals.joined(separator: "; "))", wasParked: wasParked)
    }

    /// Settles a hand-off that `target` may hold: only `target` is asked (it dedups), until it
    /// answers. Only its own refusal frees the workflow for another agent.
    private func resolve(_ entry: Journal.Entry, with pinned: String) async throws {
        let wasParked = entry.state == .parked
        // The same agent back under another resource (one not fixed in its config) is still it.
        let bare = JID(pinned)?.bare
        let online = await directory.all.filter { $0.online }
        guard let target = online.first(where: { $0.jid == pinned })?.jid ?? online.first(where: { JID($0.jid)?.bare == bare })?.jid else {
            try park(entry, reason: "waiting for \(pinned), which may have stored it (offline)", wasParked: wasParked)
            return
        }
        var entry = entry
        entry.target = target
        switch try await handOff(entry, to: target, resending: true) {
        case .handed, .interrupted: return
        case .unanswered(let why): try park(entry, reason: why, wasParked: wasParked)
        case .refused(let why):
            logger.info("\(entry.document.shortName): \(why); routing it anew")
            try await route(Journal.Entry(document: entry.document, seq: entry.seq, state: .routing, target: nil, updated: Date()))
        }
    }

    private enum HandoffOutcome {
        case handed
        /// The target itself said no: it did not store the document.
        case refused(String)
        /// It may have stored it: ask it again later, and no one else.
        case unanswered(String)
        /// Our own connection is down: the entry stays `handing`; the pump retries.
        case interrupted
    }

    /// One hand-off of `entry`'s document to `target`: journaled `handing` first, then up to
    /// three IQs. `resending`: an earlier call may already have delivered it.
    private func handOff(_ entry: Journal.Entry, to target: String, resending: Bool) async throws -> HandoffOutcome {
        var document = entry.document
        guard let step = document.currentStep else { return .handed }
        document.status = .running
        document.reason = nil
        let started = ContinuousClock.now
        let json = try document.json()
        // A resend leaves the entry as it is (`handing` or `parked`, with this target) until
        // the target answers: a parked one keeps its place in the retry schedule.
        if !resending { try journal.update(document, json: json, seq: entry.seq, state: .handing, target: target) }
        let handoff = try HandoffStanzas.handoff(document, json: json)
        var delivered = resending
        for attempt in 1...3 {
            do {
                _ = try await connection.request(Stanza.iq(.set, to: target, payload: handoff), timeout: 10)
                if resending {
                    try journal.update(document, json: json, seq: entry.seq, state: .handed, target: target)
                } else {
                    try journal.update(document.id, seq: entry.seq, state: .handed, target: target)
                }
                let record = Handoff(workflow: document.id, seq: document.cursor, target: target, bytes: json.utf8.count,
                                     started: started, duration: .now - started)
                handoffObservers.notify(record)
                logger.info("handed \(document.shortName) step \(document.cursor + 1) (\(step.action)) to \(target) in \(String(format: "%.2f", record.duration / .milliseconds(1))) ms")
                events.report(WorkflowEvent(.handoff, document: document, agent: target, step: step, message: "from \(me())"), to: document, chat: false)
                return .handed
            } catch let error as StanzaError {
                refusalObservers.notify(Refusal(workflow: document.id, target: target, error: error))
                // Before anything may have arrived, any error means it was not stored. After,
                // only the receiver's own refusals say so: the server answers for an agent
                // that went offline (service-unavailable) whether or not it stored it first.
                if error.isReceiversRefusal || (!delivered && error.condition.meansNotDelivered) { return .refused("\(target): \(error)") }
                return .unanswered("\(target) may have stored it and now answers \(error); asking it again")
            } catch ConnectionError.timeout {
                delivered = true
                logger.warning("no answer from \(target) for \(document.shortName) (try \(attempt) of 3)")
            } catch {
                logger.warning("hand-off of \(document.shortName) to \(target) interrupted: \(error)")
                return .interrupted
            }
        }
        return .unanswered("no answer from \(target), which may have stored it; asking it again")
    }

    /// A cancel that arrived while the hand-off was under way: the receiver holds the workflow
    /// now, so the request goes there (this agent is trusted by it: it just took our hand-off).
    private func forwardCancel(of document: WorkflowDocument, to target: String) {
        let control = ControlClient(connection: connection, pubsubService: settings.pubsubService)
        let logger = logger, journal = journal, key = Self.cancelRecordPrefix + document.id
        Task {
            var target = target
            // It follows the workflow if that agent has handed it on meanwhile (a few hops at
            // most: a cancel is faster than steps), and tries again if the agent is unreachable;
            // what is still undelivered then is retried at this agent's next start.
            for attempt in 1...6 {
                do {
                    let outcome = try await control.run(target, node: "cancel", values: ["id": [document.id]])
                    let said = outcome.form?["outcome"] ?? "done"
                    if let next = said.firstMatch(of: /^handed to (\S+)/)?.1, next != "self" {
                        logger.info("cancel of \(document.shortName): \(target) handed it to \(next); following it")
                        target = String(next)
                        continue
                    }
                    logger.info("cancel of \(document.shortName) passed on to \(target): \(said)")
                    try? journal.setRecord(key, json: nil)
                    return
                } catch {
                    logger.warning("cancel of \(document.shortName) could not be passed on to \(target) (try \(attempt)): \(error)")
                    try? await Task.sleep(for: .seconds(2 * attempt))
                }
            }
        }
    }

    /// Parks `entry` (journaled `parked`, target kept) and sets when it is tried again.
    ///
    /// `wasParked`: the entry was parked before this try. Parked again for the same reason, it
    /// waits twice as long as before (1 s, 2 s, … 60 s) and nobody is told again: an agent that
    /// refuses the hand-off (e.g. the sender is not in its `trusted`) would otherwise be sent the
    /// whole document, and the submitter a chat line, every second for as long as it lasts.
    private func park(_ entry: Journal.Entry, reason: String, wasParked: Bool) throws {
        var document = entry.document
        let k = key(document.id, entry.seq)
        let again = wasParked && document.status == .parked && document.reason == reason
        scheduling.withLock { s in
            let delay = again ? min((s.parkedRetry[k]?.delay ?? .milliseconds(500)) * 2, Self.maximumParkedRetryDelay) : .seconds(1)
            s.parkedRetry[k] = (delay, .now + delay)
        }
        document.status = .parked
        document.reason = reason
        // The same parking as before: rewritten only if a hand-off attempt changed the row
        // (a write per retry would also make it look just changed in `wf list`).
        if again, try journal.state(document.id, seq: entry.seq) == .parked { return }
        // The target stays: a parked hand-off that may have reached it is resolved with it alone.
        try journal.update(document, seq: entry.seq, state: .parked, target: entry.target)
        if !wasParked {
            logger.warning("parked \(document.shortName): \(reason)")
            events.report(WorkflowEvent(.parked, document: document, agent: me(), step: document.currentStep, message: reason), to: document)
        }
    }
}

/// At most `limit` steps at once on this agent.
actor ConcurrencyLimiter {
    private var available: Int
    private var waiters: [CheckedContinuation<Void, Never>] = []
    init(_ limit: Int) { available = max(1, limit) }

    func acquire() async {
        if available > 0 {
            available -= 1
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty { available += 1 } else { waiters.removeFirst().resume() }
    }
}

/// Callbacks registered for one kind of engine news, called in order of registration.
final class Observers<Value: Sendable>: Sendable {
    private let list = Mutex<[@Sendable (Value) -> Void]>([])
    func add(_ observer: @escaping @Sendable (Value) -> Void) { list.withLock { $0.append(observer) } }
    func notify(_ value: Value) { for observer in list.withLock({ $0 }) { observer(value) } }
}
