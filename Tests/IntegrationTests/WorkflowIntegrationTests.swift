import AgentKernel
import Agents
import Foundation
import Testing

/// A step module for tests: one action, counts how often each (workflow, step) really ran.
struct CountingStep: StepRunner {
    let name: String
    let action: String
    let counter: Locked<[String: Int]>
    var delay: Duration = .zero
    var actions: [String] { [action] }

    func run(_ invocation: StepInvocation) async throws -> StepOutcome {
        counter.withLock { $0["\(invocation.workflowID)#\(invocation.step.id)", default: 0] += 1 }
        if delay > .zero { try await Task.sleep(for: delay) }
        return StepOutcome(outputs: ["ran_on": .string(name), "thread": .string(currentThreadName())])
    }
}

/// The calling thread's name as the OS has it (the I/O threads' are "xmpp LOCAL"). A plain
/// function: `Thread.current` is unavailable in async code.
func currentThreadName() -> String { Thread.current.name ?? "" }

/// Writes a file into its step's workspace, then succeeds or fails; remembers the workspace.
struct WorkspaceStep: StepRunner {
    let name = "workspace"
    let action: String
    let fails: Bool
    let seen: Locked<[String: URL]>
    var actions: [String] { [action] }

    func run(_ invocation: StepInvocation) async throws -> StepOutcome {
        let workspace = invocation.workspace
        try "scratch".write(to: workspace.appendingPathComponent("scratch.txt"), atomically: true, encoding: .utf8)
        seen.withLock { $0[invocation.step.id] = workspace }
        if fails { throw StepFailure("failing on purpose") }
        return StepOutcome()
    }
}

/// Fails its first `failures` runs of each workflow, then succeeds; counts the runs.
struct FlakyStep: StepRunner {
    let name = "flaky"
    let action: String
    let failures: Int
    let runs: Locked<[String: Int]>
    var actions: [String] { [action] }

    func run(_ invocation: StepInvocation) async throws -> StepOutcome {
        let run = runs.withLock { runs -> Int in
            runs[invocation.workflowID, default: 0] += 1
            return runs[invocation.workflowID]!
        }
        if run <= failures { throw StepFailure("failure \(run) of \(failures), on purpose") }
        return StepOutcome()
    }
}

extension TestCluster {
    func startAgent(_ user: String, steps: [any AgentModule], trusted: [String] = ["ops@baton.test", "*@baton.test"],
                    spool: String? = nil, workflows: String? = nil, concurrency: Int? = nil, resource: String? = nil) async throws -> RunningAgent {
        try await account(user)
        var settings = settings(user, modules: [], trusted: trusted)
        if let resource { settings.connection.jid = "\(user)@\(server.domain)/\(resource)" }
        if let concurrency { settings.concurrency = concurrency }
        settings.spoolDirectory = spool
        if let workflows { settings.workflowsDirectory = workflows }
        return try await RunningAgent(try Agent(settings: settings, modules: steps))
    }
}

/// Polls until `condition` holds or `seconds` pass.
func eventually(_ seconds: Double, _ condition: () throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        try? await Task.sleep(for: .milliseconds(100))
    }
    return try condition()
}

func finished(_ agent: Agent, _ id: String) throws -> WorkflowDocument? {
    try agent.engine.journal.entries(workflow: id).first { $0.state == .finished }?.document
}

@Suite(.serialized) final class WorkflowIntegrationTests {
    let cluster: TestCluster
    init() async throws { cluster = try await TestCluster() }

    func pipeline(_ actions: [String], name: String = "pipe") -> WorkflowDocument {
        WorkflowDocument(name: name, steps: actions.enumerated().map { .init(id: "s\($0.offset + 1)", action: $0.element) })
    }

    @Test func fiveAgentPipelineCompletes() async throws {
        let counter = Locked<[String: Int]>([:])
        var agents: [RunningAgent] = []
        for i in 1...5 {
            agents.append(try await cluster.startAgent("pipe\(i)", steps: [CountingStep(name: "pipe\(i)", action: "t.s\(i)", counter: counter)]))
        }
        let everyone: @Sendable ([AgentDirectory.Peer]) -> Bool = { peers in (1...5).allSatisfy { i in peers.contains { $0.online && $0.description.actions == ["t.s\(i)"] } } }
        #expect(await agents[0].agent.directory.wait(timeout: 10, until: everyone))
        let document = try agents[0].agent.engine.submit(pipeline((1...5).map { "t.s\($0)" }), by: "ops@baton.test/test")
        #expect(try await eventually(30) { try finished(agents[4].agent, document.id) != nil })
        let done = try #require(try finished(agents[4].agent, document.id))
        #expect(done.status == .completed)
        #expect(done.trail.map(\.agent) == (1...5).map { "pipe\($0)@baton.test/agent" })
        #expect(done.trail.allSatisfy { $0.status == "done" })
        #expect(done.context["s3"]?["ran_on"] == .string("pipe3"))
        // Steps run on the global pool, never on an agent's I/O thread ("xmpp LOCAL"), which
        // the engine's own work prefers: a long step there would leave the agent deaf.
        let threads = (1...5).compactMap { done.context["s\($0)"]?["thread"]?.string }
        #expect(threads.count == 5 && threads.allSatisfy { !$0.hasPrefix("xmpp ") }, "\(threads)")
        #expect(counter.value.count == 5 && counter.value.values.allSatisfy { $0 == 1 })
        for agent in agents { try await agent.stop() }
    }

    @Test func aStepsWorkspaceGoesWhenItSucceedsAndStaysWhenItFails() async throws {
        let seen = Locked<[String: URL]>([:])
        let agent = try await cluster.startAgent("scratcher", steps: [
            WorkspaceStep(action: "t.keep", fails: false, seen: seen), WorkspaceStep(action: "t.break", fails: true, seen: seen)])
        #expect(await agent.agent.directory.wait(timeout: 10) { $0.contains { $0.online && $0.description.actions.contains("t.break") } })
        let document = try agent.agent.engine.submit(pipeline(["t.keep", "t.break"]), by: "ops@baton.test/test")
        #expect(try await eventually(20) { try finished(agent.agent, document.id) != nil })
        #expect(try finished(agent.agent, document.id)?.status == .failed)
        let kept = try #require(seen.value["s2"]), removed = try #require(seen.value["s1"])
        #expect(!FileManager.default.fileExists(atPath: removed.path), "a succeeded step's workspace is removed")
        #expect(FileManager.default.fileExists(atPath: kept.appendingPathComponent("scratch.txt").path), "a failed step's workspace stays")
        #expect(kept.path.hasPrefix(cluster.server.dir.path + "/state-scratcher/work/\(document.id)/"))
        try await agent.stop()
    }

    /// A cancel used to end the entry while its step waited for a slot; the waiting task then
    /// took the slot, overwrote the end with `running` and ran the step.
    @Test func aWorkflowCancelledWhileItsStepWaitsForASlotNeverRunsIt() async throws {
        let counter = Locked<[String: Int]>([:])
        let agent = try await cluster.startAgent("single", steps: [CountingStep(name: "single", action: "t.slow", counter: counter, delay: .seconds(2))],
                                                 concurrency: 1)
        #expect(await agent.agent.directory.wait(timeout: 10) { $0.contains { $0.online && $0.description.actions.contains("t.slow") } })
        let first = try agent.agent.engine.submit(pipeline(["t.slow"]), by: "ops@baton.test/test")
        #expect(try await eventually(10) { counter.value["\(first.id)#s1"] == 1 })
        let second = try agent.agent.engine.submit(pipeline(["t.slow"]), by: "ops@baton.test/test")
        // Its step is accepted and waits for the one slot.
        #expect(try await eventually(10) { try agent.agent.engine.journal.entries(workflow: second.id).first?.state == .accepted })
        // "cancelled" if it came between the entry's write and its task's start.
        let answer = try agent.agent.engine.cancel(String(second.id.prefix(8)), by: "ops@baton.test/test")
        #expect(answer == "cancelling (step about to start)" || answer == "cancelled", "\(answer ?? "nil")")
        #expect(try await eventually(20) { try finished(agent.agent, first.id) != nil && finished(agent.agent, second.id) != nil })
        #expect(try finished(agent.agent, first.id)?.status == .completed)
        #expect(try finished(agent.agent, second.id)?.status == .cancelled)
        #expect(counter.value["\(second.id)#s1"] == nil, "the cancelled workflow's step never ran")
        #expect(try agent.agent.engine.cancel(second.id, by: "ops@baton.test/test") == "already cancelled")
        try await agent.stop()
    }

    /// A cancel left to the task holding the workflow was only in memory: after a restart of
    /// the agent, the workflow ran on as if never cancelled.
    @Test func aCancelLeftToATaskSurvivesARestart() async throws {
        let counter = Locked<[String: Int]>([:])
        func start() async throws -> RunningAgent {
            let agent = try await cluster.startAgent("restarter", steps: [CountingStep(name: "restarter", action: "t.long", counter: counter, delay: .seconds(2))],
                                                     concurrency: 1)
            #expect(await agent.agent.directory.wait(timeout: 10) { $0.contains { $0.online && $0.description.actions.contains("t.long") } })
            return agent
        }
        var agent = try await start()
        let first = try agent.agent.engine.submit(pipeline(["t.long"]), by: "ops@baton.test/test")
        #expect(try await eventually(10) { counter.value["\(first.id)#s1"] == 1 })
        let second = try agent.agent.engine.submit(pipeline(["t.long"]), by: "ops@baton.test/test")
        #expect(try await eventually(10) { try agent.agent.engine.journal.entries(workflow: second.id).first?.state == .accepted })
        try await Task.sleep(for: .milliseconds(200))
        #expect(try agent.agent.engine.cancel(second.id, by: "ops@baton.test/test") == "cancelling (step about to start)")
        // Stopped before the slot frees (the first step ends with the stop): the second never started.
        try await agent.stop()
        #expect(counter.value["\(second.id)#s1"] == nil)
        #expect(try agent.agent.engine.journal.entries(workflow: second.id).first?.state == .accepted, "still to be cancelled at the restart")
        agent = try await start()
        #expect(try await eventually(15) { try finished(agent.agent, second.id) != nil })
        #expect(try finished(agent.agent, second.id)?.status == .cancelled)
        #expect(counter.value["\(second.id)#s1"] == nil, "the cancelled step never ran, before or after the restart")
        #expect(try agent.agent.engine.journal.records(prefix: WorkflowEngine.cancelRecordPrefix).isEmpty, "the request is cleared once done")
        try await agent.stop()
    }

    /// An agent that refuses a hand-off (the sender is not in its `trusted`) was sent the whole
    /// document again five times a second, for as long as the workflow stayed parked.
    @Test func aRefusedWorkflowIsTriedAgainLessAndLessOften() async throws {
        let sender = try await cluster.startAgent("hopeful", steps: [])
        let refuser = try await cluster.startAgent("picky", steps: [CountingStep(name: "picky", action: "t.picky", counter: Locked([:]))],
                                                   trusted: ["ops@baton.test"])
        #expect(await sender.agent.directory.wait(timeout: 10) { $0.contains { $0.online && $0.description.actions.contains("t.picky") } })
        let refusals = Locked<[ContinuousClock.Instant]>([])
        sender.agent.engine.onRefusal { refusal in
            if refusal.error.condition == .forbidden { refusals.withLock { $0.append(.now) } }
        }
        let document = try sender.agent.engine.submit(pipeline(["t.picky"]), by: "ops@baton.test/test")
        #expect(try await eventually(10) { !refusals.value.isEmpty })
        try await Task.sleep(for: .seconds(6.5))
        let times = refusals.value
        // First try, then about 1 s and 3 s later (the next is due at ~7 s): where it used to be
        // 30 or more (every 200 ms), or 6 with a wait that did not grow.
        #expect((2...4).contains(times.count), "\(times.count) refusals in ~6.5 s")
        if times.count >= 3 {
            #expect(times[2] - times[1] > times[1] - times[0], "each wait longer than the last: \(times)")
        }
        let entry = try #require(try sender.agent.engine.journal.entries(workflow: document.id).first)
        #expect(entry.state == .parked && entry.document.reason?.contains("forbidden") == true, "\(entry.state) \(entry.document.reason ?? "")")
        try await sender.stop()
        try await refuser.stop()
    }

    @Test func failedStepsAreRetriedWithinTheirBudget() async throws {
        let runs = Locked<[String: Int]>([:])
        let agent = try await cluster.startAgent("flaky", steps: [FlakyStep(action: "t.flaky", failures: 2, runs: runs)])
        #expect(await agent.agent.directory.wait(timeout: 10) { $0.contains { $0.online && $0.description.actions.contains("t.flaky") } })
        var enough = pipeline(["t.flaky"])
        enough.onFailure = .init(retries: 2)
        var tooFew = pipeline(["t.flaky"])
        tooFew.onFailure = .init(retries: 1)
        let recovered = try agent.agent.engine.submit(enough, by: "ops@baton.test/test")
        let failed = try agent.agent.engine.submit(tooFew, by: "ops@baton.test/test")
        #expect(try await eventually(20) { try finished(agent.agent, recovered.id) != nil && finished(agent.agent, failed.id) != nil })

        let done = try #require(try finished(agent.agent, recovered.id))
        #expect(done.status == .completed)
        #expect(done.trail.map(\.attempt) == [1, 2, 3])
        #expect(done.trail.map(\.status) == ["failed", "failed", "done"])
        #expect(done.attempts["s1"] == 3)
        let gaveUp = try #require(try finished(agent.agent, failed.id))
        #expect(gaveUp.status == .failed)
        #expect(gaveUp.trail.map(\.attempt) == [1, 2])
        #expect(gaveUp.reason?.contains("failure 2 of 2, on purpose") == true)
        #expect(runs.value[recovered.id] == 3 && runs.value[failed.id] == 2)
        try await agent.stop()

        // Failed attempts are not runs cut short by a crash: more of them than
        // `maximumInterruptedRuns` still retry while the budget lasts.
        let flakier = try await cluster.startAgent("flakier", steps: [FlakyStep(action: "t.flakier", failures: 5, runs: runs)])
        #expect(await flakier.agent.directory.wait(timeout: 10) { $0.contains { $0.online && $0.description.actions.contains("t.flakier") } })
        var patient = pipeline(["t.flakier"])
        patient.onFailure = .init(retries: 5)
        let persisted = try flakier.agent.engine.submit(patient, by: "ops@baton.test/test")
        #expect(try await eventually(20) { try finished(flakier.agent, persisted.id) != nil })
        let last = try #require(try finished(flakier.agent, persisted.id))
        #expect(last.status == .completed, "\(last.reason ?? "")")
        #expect(last.trail.map(\.attempt) == [1, 2, 3, 4, 5, 6])
        try await flakier.stop()
    }

    @Test func aStepThatKeepsCrashingItsAgentIsNotStartedForEver() async throws {
        // The journal as an agent leaves it after its step was cut short 4 times (one workflow)
        // and 3 times (another): each restart finds the step `running`, its attempt recorded.
        let stateDirectory = cluster.server.dir.path + "/state-crashy"
        let poisoned = pipeline(["t.crashy"], name: "poisoned").submitted(by: "ops@baton.test/test")
        let unlucky = pipeline(["t.crashy"], name: "unlucky").submitted(by: "ops@baton.test/test")
        do {
            let journal = try Journal(path: stateDirectory + "/journal.sqlite")
            for (document, attempts) in [(poisoned, 4), (unlucky, 3)] {
                #expect(try journal.accept(document, seq: 0))
                try journal.markRunning(document.id, seq: 0, attempt: attempts)
            }
        }
        let counter = Locked<[String: Int]>([:])
        let agent = try await cluster.startAgent("crashy", steps: [CountingStep(name: "crashy", action: "t.crashy", counter: counter)])
        #expect(try await eventually(20) { try finished(agent.agent, poisoned.id) != nil && finished(agent.agent, unlucky.id) != nil })
        let gaveUp = try #require(try finished(agent.agent, poisoned.id))
        #expect(gaveUp.status == .failed)
        #expect(gaveUp.reason == "step s1 was cut short 4 times (crashy stopped while it ran); not starting it again")
        #expect(counter.value["\(poisoned.id)#s1"] == nil)
        let ranAgain = try #require(try finished(agent.agent, unlucky.id))
        #expect(ranAgain.status == .completed && ranAgain.trail.map(\.attempt) == [4])
        #expect(counter.value["\(unlucky.id)#s1"] == 1)
        try await agent.stop()
    }

    /// A module whose start fails leaves the agent running without it: its journal's work (here a
    /// parked workflow, retried by the engine's pump) still goes on.
    @Test func aModuleThatFailsToStartDoesNotStopTheEngine() async throws {
        struct BrokenModule: AgentModule {
            let name = "broken"
            func start(_ agent: AgentContext) async throws { throw CLIFailure("its licence server is down") }
        }
        let counter = Locked<[String: Int]>([:])
        try await cluster.account("stubborn")
        let settings = cluster.settings("stubborn", modules: [], trusted: ["ops@baton.test", "*@baton.test"])
        let agent = try Agent(settings: settings, modules: [BrokenModule(), CountingStep(name: "stubborn", action: "t.mine", counter: counter)])
        let run = Task { try await agent.run() }
        #expect(await agent.directory.wait(timeout: 15) { $0.contains { $0.online && $0.jid == "stubborn@baton.test/agent" } })
        let document = try agent.engine.submit(pipeline(["t.mine", "t.theirs"]), by: "ops@baton.test/test")
        #expect(try await eventually(10) { try agent.engine.journal.entries(workflow: document.id).first?.state == .parked })
        let helper = try await cluster.startAgent("helper", steps: [CountingStep(name: "helper", action: "t.theirs", counter: counter)])
        #expect(try await eventually(20) { try finished(helper.agent, document.id)?.status == .completed })
        await agent.shutdown()
        _ = try? await run.value
        try await helper.stop()
    }

    @Test func parkedWorkflowMovesOnWhenACapableAgentJoins() async throws {
        let counter = Locked<[String: Int]>([:])
        let first = try await cluster.startAgent("early", steps: [CountingStep(name: "early", action: "t.first", counter: counter)])
        let document = try first.agent.engine.submit(pipeline(["t.first", "t.later"]), by: "ops@baton.test/test")
        #expect(try await eventually(10) { try first.agent.engine.journal.entries(workflow: document.id).first?.state == .parked })
        let parked = try #require(try first.agent.engine.journal.entries(workflow: document.id).first)
        #expect(parked.document.reason == "no agent offers t.later")
        let late = try await cluster.startAgent("late", steps: [CountingStep(name: "late", action: "t.later", counter: counter)])
        #expect(try await eventually(20) { try finished(late.agent, document.id)?.status == .completed })
        #expect(counter.value["\(document.id)#s1"] == 1 && counter.value["\(document.id)#s2"] == 1)
        try await first.stop()
        try await late.stop()
    }

    @Test func lostAcknowledgementDoesNotRunTheStepTwice() async throws {
        let counter = Locked<[String: Int]>([:])
        let sender = try await cluster.startAgent("sender", steps: [CountingStep(name: "sender", action: "t.one", counter: counter)])
        let receiver = try await cluster.startAgent("receiver", steps: [CountingStep(name: "receiver", action: "t.two", counter: counter)])
        #expect(await sender.agent.directory.wait(timeout: 10) { $0.contains { $0.online && $0.description.actions == ["t.two"] } })
        receiver.agent.engine.ackDropper.withLock { $0 = 1 }
        let document = try sender.agent.engine.submit(pipeline(["t.one", "t.two"]), by: "ops@baton.test/test")
        // The first hand-off is stored but unanswered; the sender asks again after its timeout.
        #expect(try await eventually(40) { try finished(receiver.agent, document.id)?.status == .completed })
        #expect(try await eventually(10) { try sender.agent.engine.journal.entries(workflow: document.id).first?.state == .handed })
        #expect(counter.value["\(document.id)#s2"] == 1)
        try await sender.stop()
        try await receiver.stop()
    }

    /// The receiver stored the hand-off, its answer was lost, and it went offline: the server
    /// then answered the resend with service-unavailable. That used to count as a refusal, so
    /// the workflow went to another agent as well and the step ran twice.
    @Test func aReceiverThatMayHoldTheWorkflowIsWaitedForNotBypassed() async throws {
        let counter = Locked<[String: Int]>([:])
        let sender = try await cluster.startAgent("origin", steps: [])
        func startHolder() async throws -> RunningAgent {
            try await cluster.startAgent("holder", steps: [CountingStep(name: "holder", action: "t.held", counter: counter, delay: .seconds(4))])
        }
        var holder = try await startHolder()
        #expect(await sender.agent.directory.wait(timeout: 10) { $0.contains { $0.online && $0.description.actions == ["t.held"] } })
        holder.agent.engine.ackDropper.withLock { $0 = 1 }
        let document = try sender.agent.engine.submit(pipeline(["t.held"]), by: "ops@baton.test/test")
        // Stored at the holder (its step has begun), unanswered; the holder then stops.
        #expect(try await eventually(10) { counter.value["\(document.id)#s1"] == 1 })
        try await holder.stop()
        // Another agent offering the action is online when the sender's resend fails.
        let other = try await cluster.startAgent("bystander", steps: [CountingStep(name: "bystander", action: "t.held", counter: counter)])
        #expect(try await eventually(30) {
            let entry = try sender.agent.engine.journal.entries(workflow: document.id).first
            return entry?.state == .parked && entry?.target == "holder@baton.test/agent"
        })
        #expect(counter.value["\(document.id)#s1"] == 1, "nobody else ran it")
        // The holder comes back; the sender's resend is answered as a duplicate.
        holder = try await startHolder()
        #expect(try await eventually(30) { try finished(holder.agent, document.id)?.status == .completed })
        #expect(try await eventually(15) { try sender.agent.engine.journal.entries(workflow: document.id).first?.state == .handed })
        // A graceful stop lets the step finish: one run, the holder's.
        #expect(counter.value["\(document.id)#s1"] == 1, "\(counter.value)")
        #expect(try other.agent.engine.journal.entries(workflow: document.id).isEmpty, "the bystander never took it")
        try await sender.stop()
        try await holder.stop()
        try await other.stop()
    }

    /// `<prefix>-holder` stores a hand-off from `<prefix>-origin` but its answer is lost; it
    /// stops while `<prefix>-bystander`, offering the same action, is online, then comes back
    /// as `restart` starts it. The resend must reach the holder alone: handed to
    /// `expectedTarget`, the step run once, the bystander never given it.
    private func resendReachesOnlyTheHolder(_ prefix: String,
                                            start: (_ name: String, _ step: CountingStep) async throws -> RunningAgent,
                                            restart: (_ name: String, _ step: CountingStep) async throws -> RunningAgent,
                                            expectedTarget: String) async throws {
        let counter = Locked<[String: Int]>([:])
        let action = "t.\(prefix)"
        let sender = try await cluster.startAgent("\(prefix)-origin", steps: [])
        let step = CountingStep(name: "holder", action: action, counter: counter, delay: .seconds(2))
        var holder = try await start("\(prefix)-holder", step)
        #expect(await sender.agent.directory.wait(timeout: 10) { $0.contains { $0.online && $0.description.actions == [action] } })
        holder.agent.engine.ackDropper.withLock { $0 = 1 }
        let document = try sender.agent.engine.submit(pipeline([action]), by: "ops@baton.test/test")
        #expect(try await eventually(10) { counter.value["\(document.id)#s1"] == 1 })
        try await holder.stop()
        let other = try await cluster.startAgent("\(prefix)-bystander", steps: [CountingStep(name: "bystander", action: action, counter: counter)])
        #expect(try await eventually(30) { try sender.agent.engine.journal.entries(workflow: document.id).first?.state == .parked })
        holder = try await restart("\(prefix)-holder", step)
        #expect(try await eventually(30) { try sender.agent.engine.journal.entries(workflow: document.id).first?.state == .handed })
        #expect(try sender.agent.engine.journal.entries(workflow: document.id).first?.target == expectedTarget)
        #expect(counter.value["\(document.id)#s1"] == 1, "\(counter.value)")
        #expect(try other.agent.engine.journal.entries(workflow: document.id).isEmpty, "the bystander never took it")
        try await sender.stop()
        try await holder.stop()
        try await other.stop()
    }

    /// A receiver that stored a hand-off answers a resend of it "duplicate" even when it would
    /// now refuse the sender (here: no longer trusted after a restart). A refusal would tell the
    /// sender it was never stored, and the step would run a second time elsewhere.
    @Test func aReceiverThatNowRefusesStillAcknowledgesWhatItStored() async throws {
        try await resendReachesOnlyTheHolder("fickle",
            start: { name, step in try await cluster.startAgent(name, steps: [step], trusted: ["ops@baton.test", "*@baton.test"]) },
            // Back, but trusting only ops: the sender's resend would be forbidden.
            restart: { name, step in try await cluster.startAgent(name, steps: [step], trusted: ["ops@baton.test"]) },
            expectedTarget: "fickle-holder@baton.test/agent")
    }

    /// The agent that may hold a hand-off comes back under another resource (one not fixed in
    /// its configuration): it is still that agent, found by its bare JID, and the resend goes
    /// there — not to another agent, and not waited for under the old resource for ever.
    @Test func aPinnedHandOffFollowsItsAgentToANewResource() async throws {
        try await resendReachesOnlyTheHolder("moving",
            start: { name, step in try await cluster.startAgent(name, steps: [step], resource: "agent") },
            restart: { name, step in try await cluster.startAgent(name, steps: [step], resource: "elsewhere") },
            expectedTarget: "moving-holder@baton.test/elsewhere")
    }

    @Test func aHandOffWaitingForAGoneAgentIsCancelledOnlyWhenForced() async throws {
        let counter = Locked<[String: Int]>([:])
        let sender = try await cluster.startAgent("waiter", steps: [])
        let gone = try await cluster.startAgent("gone", steps: [CountingStep(name: "gone", action: "t.gone", counter: counter, delay: .seconds(1))])
        #expect(await sender.agent.directory.wait(timeout: 10) { $0.contains { $0.online && $0.description.actions == ["t.gone"] } })
        gone.agent.engine.ackDropper.withLock { $0 = 1 }
        let document = try sender.agent.engine.submit(pipeline(["t.gone"]), by: "ops@baton.test/test")
        #expect(try await eventually(10) { counter.value["\(document.id)#s1"] == 1 })
        try await gone.stop()
        #expect(try await eventually(30) { try sender.agent.engine.journal.entries(workflow: document.id).first?.state == .parked })
        let waiting = try sender.agent.engine.cancel(document.id, by: "ops@baton.test/test")
        #expect(waiting?.hasPrefix("cancelling (waiting for gone@baton.test/agent") == true, "\(waiting ?? "nil")")
        try await Task.sleep(for: .milliseconds(500))
        #expect(try sender.agent.engine.journal.entries(workflow: document.id).first?.state == .parked, "still waiting for the agent")
        let forced = try sender.agent.engine.cancel(document.id, by: "ops@baton.test/test", force: true)
        #expect(forced == "cancelled (forced; gone@baton.test/agent may still hold a copy)", "\(forced ?? "nil")")
        #expect(try finished(sender.agent, document.id)?.status == .cancelled)
        try await sender.stop()
    }

    @Test func agentKilledMidStepIsRestartedAndStepRecordedOnce() async throws {
        let log = cluster.server.dir.appendingPathComponent("steps.log").path
        let counter = Locked<[String: Int]>([:])
        let tail = try await cluster.startAgent("tail", steps: [CountingStep(name: "tail", action: "t.tail", counter: counter)])
        try await cluster.account("worker")
        let config = try cluster.agentConfigFile("worker", modules: ["shell"])
        func spawnWorker() throws -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Products.path("agentd"))
            process.arguments = ["--config", config]
            process.standardError = FileHandle(forWritingAtPath: "/dev/null")
            try process.run()
            return process
        }
        var worker = try spawnWorker()
        #expect(await tail.agent.directory.wait(timeout: 15) { $0.contains { $0.online && $0.description.actions.contains("shell.run") } })
        // hop (here) → work (the agentd process) → finish2 (here): the worker receives by hand-off.
        let document = try tail.agent.engine.submit(WorkflowDocument(name: "crash", steps: [
            .init(id: "hop", action: "t.tail"),
            .init(id: "work", action: "shell.run", with: ["command": .string("echo start >> \(log); sleep 3; echo end >> \(log)")]),
            .init(id: "finish2", action: "t.tail"),
        ]), by: "ops@baton.test/test")
        // Kill the worker while its step runs (after "start", before "end").
        #expect(await eventually(20) { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("start") })
        kill(worker.processIdentifier, SIGKILL)
        worker.waitUntilExit()
        #expect(((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("end") == false)
        worker = try spawnWorker()
        #expect(try await eventually(40) { try finished(tail.agent, document.id)?.status == .completed })
        let done = try #require(try finished(tail.agent, document.id))
        #expect(done.trail.filter { $0.step == "work" }.count == 1)
        // The killed attempt is remembered: the rerun is attempt 2.
        #expect(done.trail.first { $0.step == "work" }?.attempt == 2)
        #expect(done.attempts["work"] == 2)
        #expect(done.trail.map(\.step) == ["hop", "work", "finish2"])
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(lines.filter { $0 == "start" }.count == 2)  // at-least-once: the killed attempt and the rerun
        #expect(lines.filter { $0 == "end" }.count == 1)
        worker.terminate()
        worker.waitUntilExit()
        try await tail.stop()
    }

    @Test func spoolFilesAreTakenOnceAndBadOnesRejected() async throws {
        let spool = cluster.server.dir.appendingPathComponent("spool")
        let incoming = spool.appendingPathComponent("incoming")
        try FileManager.default.createDirectory(at: incoming, withIntermediateDirectories: true)
        let counter = Locked<[String: Int]>([:])
        let a = try await cluster.startAgent("spool-a", steps: [CountingStep(name: "spool-a", action: "t.spool", counter: counter)], spool: spool.path)
        let b = try await cluster.startAgent("spool-b", steps: [CountingStep(name: "spool-b", action: "t.spool", counter: counter)], spool: spool.path)
        for i in 0..<20 {
            let text = "workflow: spooled-\(i)\nsteps:\n  - { id: only, action: t.spool }\n"
            // Write under a dot-name, then rename: watchers never see half a file.
            try text.write(to: incoming.appendingPathComponent(".w\(i).yaml"), atomically: true, encoding: .utf8)
            try FileManager.default.moveItem(at: incoming.appendingPathComponent(".w\(i).yaml"), to: incoming.appendingPathComponent("w\(i).yaml"))
        }
        try "workflow: broken\nsteps: [ { id: x, action: t.spool }\n".write(to: incoming.appendingPathComponent("malformed.yaml"), atomically: true, encoding: .utf8)
        try "workflow: cut\nsteps:\n  - { id: x, act".write(to: incoming.appendingPathComponent("truncated.yaml"), atomically: true, encoding: .utf8)
        try Data(repeating: 0x61, count: WorkflowParser.maximumBytes + 1).write(to: incoming.appendingPathComponent("huge.yaml"))
        try Data([0x77, 0x6f, 0xff, 0xfe, 0x0a]).write(to: incoming.appendingPathComponent("latin.yaml"))
        try "workflow: nosteps\n".write(to: incoming.appendingPathComponent("nosteps.yaml"), atomically: true, encoding: .utf8)

        let accepted = spool.appendingPathComponent("accepted"), rejected = spool.appendingPathComponent("rejected")
        func count(_ dir: URL) -> Int { ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).count }
        #expect(await eventually(20) { count(accepted) == 20 && count(rejected) == 10 })
        #expect(try await eventually(20) { counter.value.values.reduce(0, +) == 20 })
        #expect(counter.value.count == 20 && counter.value.values.allSatisfy { $0 == 1 })
        #expect(count(incoming) == 0)
        func reason(_ name: String) throws -> String { try String(contentsOf: rejected.appendingPathComponent(name + ".error"), encoding: .utf8) }
        #expect(try reason("malformed.yaml").contains("malformed.yaml"))
        #expect(try reason("malformed.yaml").contains("line"))
        #expect(try reason("truncated.yaml").contains("line"))
        #expect(try reason("huge.yaml").contains("limit"))
        #expect(try reason("latin.yaml").contains("not UTF-8"))
        #expect(try reason("nosteps.yaml").contains("'steps' must be a non-empty list"))
        try await a.stop()
        try await b.stop()
    }

    @Test func untrustedSubmitIsForbiddenAndNothingRuns() async throws {
        let counter = Locked<[String: Int]>([:])
        let agent = try await cluster.startAgent("careful", steps: [CountingStep(name: "careful", action: "t.x", counter: counter)],
                                                 trusted: ["ops@baton.test"])
        try cluster.server.register(user: "mallory", password: "pw-mallory")
        let mallory = try await cluster.connect("mallory")
        let client = ControlClient(connection: mallory, pubsubService: "pubsub.baton.test")
        let error = await #expect(throws: StanzaError.self) {
            try await client.run(agent.jid, node: "submit", values: ["yaml": ["workflow: evil\nsteps:\n  - { action: t.x }\n"]])
        }
        #expect(error?.condition == .forbidden)
        // A hand-off straight from an untrusted JID is refused too.
        var document = WorkflowDocument(name: "evil", steps: [.init(id: "a", action: "t.x")]).submitted(by: "mallory@baton.test")
        document.cursor = 0
        let handoff = await #expect(throws: StanzaError.self) {
            try await mallory.request(Stanza.iq(.set, to: agent.jid, payload: try HandoffStanzas.handoff(document)))
        }
        #expect(handoff?.condition == .forbidden)
        try await Task.sleep(for: .milliseconds(300))
        #expect(counter.value.isEmpty)
        #expect(try agent.agent.engine.journal.recent().isEmpty)
        // Where a workflow is, anyone may ask; its document (params, outputs) is for trusted JIDs.
        let mine = try agent.agent.engine.submit(WorkflowDocument(name: "private", steps: [.init(id: "a", action: "t.x")],
                                                                  params: ["token": .string("t0p")]), by: "ops@baton.test/t")
        let seen = try await client.run(agent.jid, node: "where", values: ["id": [mine.id]])
        #expect(seen.form?.items.first?["id"] == mine.id)
        #expect(seen.form?.values("document").isEmpty == true)
        await mallory.close()
        try await agent.stop()
    }

    @Test func chatCommandsHelpSubmitAndWhere() async throws {
        let workflows = cluster.server.dir.appendingPathComponent("workflows")
        try FileManager.default.createDirectory(at: workflows, withIntermediateDirectories: true)
        try "workflow: chatty\nsteps:\n  - { id: one, action: t.chat }\n".write(to: workflows.appendingPathComponent("chatty.yaml"), atomically: true, encoding: .utf8)
        let counter = Locked<[String: Int]>([:])
        let agent = try await cluster.startAgent("talker", steps: [CountingStep(name: "talker", action: "t.chat", counter: counter)],
                                                 trusted: ["ops@baton.test"], workflows: workflows.path)
        try cluster.server.register(user: "ops", password: "pw-ops")
        try cluster.server.register(user: "stranger", password: "pw-stranger")
        let ops = try await cluster.connect("ops"), stranger = try await cluster.connect("stranger")
        let heard = Locked<[String]>([]), strangerHeard = Locked<[String]>([])
        let listeners = [(ops, heard), (stranger, strangerHeard)].map { connection, sink in
            Task {
                for await event in connection.events {
                    if case .stanza(let s) = event, s.name == "message", let body = s.child("body")?.text { sink.withLock { $0.append(body) } }
                }
            }
        }
        func say(_ text: String, from connection: XMPPConnection = ops) { connection.send(Stanza.message(to: agent.jid, body: text)) }
        say("help")
        #expect(await eventually(10) { heard.value.contains { $0.contains("submit NAME") && $0.contains("wf ID") } })
        say("submit chatty tag=v2")
        #expect(await eventually(10) { heard.value.contains { $0.hasPrefix("Submitted chatty as ") } })
        let id = try #require(heard.value.first { $0.hasPrefix("Submitted chatty as ") }?.split(separator: " ")[3]).description
        #expect(try await eventually(10) { try finished(agent.agent, id)?.status == .completed })
        #expect(try finished(agent.agent, id)?.params == ["tag": .string("v2")])
        // The submitter is told of each step by chat.
        #expect(await eventually(10) { heard.value.contains { $0.contains("[chatty \(id.prefix(4))] t.chat on talker@baton.test/agent done") } })
        say("wf \(id.prefix(6))")
        #expect(await eventually(10) { heard.value.contains { $0.contains("chatty \(id.prefix(4)): step 1/1") && $0.contains("completed") } })
        // Never answered: Baton's own lines (marked), a room's chatter, server headlines. A
        // command the server kept while the agent was away is answered, not run.
        var marked = Stanza.message(to: agent.jid, body: "help")
        marked.nodes.append(.element(XMLElement("automated", xmlns: NS.baton)))
        ops.send(marked)
        ops.send(Stanza.message(to: agent.jid, body: "help", type: "groupchat"))
        ops.send(Stanza.message(to: agent.jid, body: "help", type: "headline"))
        var delayed = Stanza.message(to: agent.jid, body: "submit chatty")
        delayed.nodes.append(.element(XMLElement("delay", xmlns: NS.delay, ["stamp": "2026-11-28T10:00:00Z"])))
        ops.send(delayed)
        #expect(await eventually(10) { heard.value.contains { $0.hasPrefix("Not run: 'submit chatty' was sent at 2026-11-28T10:00:00Z") } })
        say("frobnicate")
        #expect(await eventually(10) { heard.value.contains { $0.contains("Unknown command 'frobnicate'") } })
        say("submit chatty", from: stranger)
        #expect(await eventually(10) { strangerHeard.value.contains { $0.contains("not allowed") } })
        // Told once: an auto-responder must not keep us talking.
        say("submit chatty", from: stranger)
        say("help", from: stranger)
        #expect(await eventually(2) { strangerHeard.value.count > 1 } == false)
        #expect(heard.value.filter { $0.hasPrefix("Commands of") }.count == 1)
        #expect(counter.value.count == 1)
        listeners.forEach { $0.cancel() }
        await ops.close()
        await stranger.close()
        try await agent.stop()
    }

    @Test func timeLimitEndsAWorkflowWhoseStepRunsTooLong() async throws {
        let counter = Locked<[String: Int]>([:])
        let agent = try await cluster.startAgent("slow", steps: [CountingStep(name: "slow", action: "t.slow", counter: counter, delay: .seconds(30))])
        var plan = WorkflowDocument(name: "hurry", steps: [.init(id: "wait", action: "t.slow")])
        plan.timeLimit = 1
        let document = try agent.agent.engine.submit(plan, by: "ops@baton.test/t")
        #expect(try await eventually(15) { try finished(agent.agent, document.id) != nil })
        let done = try #require(try finished(agent.agent, document.id))
        #expect(done.status == .failed)
        #expect(done.reason == "time limit of 1 s exceeded during step wait")
        try await agent.stop()
    }

    @Test func submitCommandAcceptsYAMLAndReportsErrorsPrecisely() async throws {
        let counter = Locked<[String: Int]>([:])
        let agent = try await cluster.startAgent("front", steps: [CountingStep(name: "front", action: "t.front", counter: counter)])
        try cluster.server.register(user: "ops", password: "pw-ops")
        let ops = try await cluster.connect("ops")
        let client = ControlClient(connection: ops, pubsubService: "pubsub.baton.test")
        let ok = try await client.run(agent.jid, node: "submit", values: ["yaml": ["workflow: fine\nparams: { a: 1 }\nsteps:\n  - { id: a, action: t.front }\n"],
                                                                          "params": ["channel=stable\n\nkeep=3"]])
        let id = try #require(ok.form?["id"])
        #expect(try await eventually(10) { try finished(agent.agent, id)?.status == .completed })
        #expect(try finished(agent.agent, id)?.params == ["a": .number(1), "channel": .string("stable"), "keep": .number(3)])
        let badParam = await #expect(throws: StanzaError.self) {
            try await client.run(agent.jid, node: "submit", values: ["yaml": ["workflow: fine\nsteps:\n  - { id: a, action: t.front }\n"], "params": ["stable"]])
        }
        #expect(badParam?.condition == .badRequest && badParam?.text == "parameter 'stable': expected KEY=VALUE")
        let bad = await #expect(throws: StanzaError.self) {
            try await client.run(agent.jid, node: "submit", values: ["yaml": ["workflow: x\nsteps:\n  - { id: a, acton: t.front }\n"]])
        }
        #expect(bad?.condition == .badRequest)
        #expect(bad?.text?.contains("3:") == true && bad?.text?.contains("acton") == true)
        let unknown = await #expect(throws: StanzaError.self) { try await client.run(agent.jid, node: "submit", values: ["workflow": ["nope"]]) }
        #expect(unknown?.condition == .badRequest || unknown?.condition == .itemNotFound)
        await ops.close()
        try await agent.stop()
    }
}
