import AgentKernel
import Agents
import ChildProcess
import Foundation
import ProsodySandbox
import Synchronization

final class Counter: Sendable {
    private let value = Mutex(0)
    func next() -> Int { value.withLock { n -> Int in defer { n += 1 }; return n } }
}

/// A step that returns at once: one distinct action per pipeline agent.
struct BenchStep: StepRunner {
    let name = "bench"
    let action: String
    var actions: [String] { [action] }
    func run(_ invocation: StepInvocation) async throws -> StepOutcome { StepOutcome() }
}

struct Report: Sendable {
    var fsync: Sample
    var bareRTT: Sample
    var batonRTT: Sample
    var bareThroughput: Double
    var batonThroughput: Double
    var bareThroughputRTT: Sample
    var batonThroughputRTT: Sample
    var discovery: Sample
    var discoveryMisses: Int
    var startToOnline: Sample
    var rssMB: Sample
    /// The 5-agent pipeline with every agent in this process (one shared thread pool).
    var inProcess: HandoffResult?
    /// Bare libstrophe round trip of a ping carrying as many bytes as the median hand-off.
    var bareLargeRTT = Sample([])
    /// Bare hand-offs of the median document: Baton's IQ and journal writes, nothing else.
    var bareHandoff = Sample([])
    /// Its journal writes, each timed alone.
    var bareHandoffWrites: JournalWriteSamples?
    var largePayloadBytes = 0
    /// The same with the middle four agents as processes of their own.
    var acrossProcesses: HandoffResult?
    /// Extra findings printed under the table.
    var notes: [String] = []
}

final class Bench: Sendable {
    let sandbox: ProsodyServer
    let config: BenchConfig
    static let adminPassword = "admin-secret"
    private let agents = Mutex<[RunningAgent]>([])
    let notes = Mutex<[String]>([])

    init(sandbox: ProsodyServer, config: BenchConfig) {
        self.sandbox = sandbox
        self.config = config
    }

    var pipelineUsers: [String] { (0...5).map { "wf\($0)" } }
    var agentUsers: [String] { ["ping-b", "obs", "daemon"] + pipelineUsers }

    func password(_ user: String) -> String { Self.password(user) }
    static func password(_ user: String) -> String { user == "admin" ? adminPassword : "pw-\(user)" }

    func connectionSettings(_ user: String, resource: String) -> ConnectionSettings {
        Self.connectionSettings(user, resource: resource, port: sandbox.port)
    }

    static func connectionSettings(_ user: String, resource: String, port: Int) -> ConnectionSettings {
        ConnectionSettings(jid: "\(user)@\(ProsodyServer.domain)/\(resource)", password: password(user), host: "127.0.0.1",
                           port: UInt16(port), tls: .trustAny, connectTimeout: 5)
    }

    /// A benchmark agent's settings, here or in a pipeline process (`PipelineProcess`).
    static func agentSettings(_ user: String, port: Int, stateDirectory: String, concurrency: Int) -> AgentSettings {
        AgentSettings(name: user, connection: connectionSettings(user, resource: "agent", port: port), modules: [],
                      trusted: ["*@\(ProsodyServer.domain)"], concurrency: concurrency, stateDirectory: stateDirectory)
    }

    func stateDirectory(_ user: String) -> String { sandbox.dir.path + "/state-\(user)" }

    func connect(_ user: String, resource: String = "bench") async throws -> XMPPConnection {
        let connection = XMPPConnection(settings: connectionSettings(user, resource: resource),
                                        logger: BatonLog.logger(agent: user, module: "bench"))
        try await connection.connect(reconnect: false)
        return connection
    }

    func startAgent(_ user: String, modules: [any AgentModule], concurrency: Int = 1) async throws -> RunningAgent {
        let settings = Self.agentSettings(user, port: sandbox.port, stateDirectory: stateDirectory(user), concurrency: concurrency)
        let running = try await RunningAgent(try Agent(settings: settings, modules: modules))
        agents.withLock { $0.append(running) }
        return running
    }

    func stop(_ agent: RunningAgent) async {
        agents.withLock { $0.removeAll { $0 === agent } }
        await agent.stop()
    }

    func stopAgents() async {
        let all = agents.withLock { a -> [RunningAgent] in defer { a.removeAll() }; return a }
        await withTaskGroup(of: Void.self) { group in
            for agent in all { group.addTask { await agent.stop() } }
        }
    }

    // MARK: - Everything

    func runAll() async throws -> Report {
        let users = ["admin", "ping-a", "bare-a", "bare-b"] + agentUsers
        try sandbox.register(users.map { ($0, password($0)) })
        let admin = try await connect("admin", resource: "setup")
        let directoryAdmin = DirectoryAdmin(connection: admin, service: sandbox.pubsubService)
        try await directoryAdmin.prepare()
        try await directoryAdmin.enroll(agentUsers.map { "\($0)@\(sandbox.domain)" })
        if config.eventsMaxItems != nil || config.eventsNoPersist {
            var fields: [DataForm.Field] = [.init("FORM_TYPE", type: .hidden, values: ["http://jabber.org/protocol/pubsub#node_config"])]
            if let maxItems = config.eventsMaxItems { fields.append(.init("pubsub#max_items", values: [String(maxItems)])) }
            if config.eventsNoPersist { fields.append(.init("pubsub#persist_items", values: ["false"])) }
            let form = DataForm(.submit, fields: fields)
            _ = try await admin.request(Stanza.iq(.set, to: sandbox.pubsubService, payload: XMLElement(
                "pubsub", xmlns: NS.pubsubOwner, children: [XMLElement("configure", ["node": "baton/events"], children: [form.element])])))
            notes.withLock { $0.append("experiment: baton/events reconfigured: " + fields.dropFirst().map { "\($0.variable ?? "")=\($0.values.joined())" }.joined(separator: ", ")) }
        }
        await admin.close()
        log("accounts registered, nodes created, \(agentUsers.count) agents enrolled")

        let fsync = Sample(try fsyncTimes(in: sandbox.dir.path + "/state-fsync", count: 200))
        log(String(format: "fsync p50 %.3f ms", fsync.p50))
        let none = Sample([])
        var report = Report(fsync: fsync, bareRTT: none, batonRTT: none, bareThroughput: .nan, batonThroughput: .nan,
                            bareThroughputRTT: none, batonThroughputRTT: none, discovery: none, discoveryMisses: 0,
                            startToOnline: none, rssMB: none)

        // (a) + (b): bare libstrophe and Baton. The round trips alternate in blocks, so a change
        // in the machine's load during the run falls on both alike; then each one's throughput.
        // ping-a stays online as the workflows' submitter (it receives their chat lines).
        let pinger = try await connect("ping-a")
        let drain = Task { for await _ in pinger.events {} }
        defer { drain.cancel() }
        var answering: RunningAgent?
        if config.runs("a") || config.runs("b") {
            let agent = try await startAgent("ping-b", modules: [NoopModule()])
            answering = agent
            var bareRTTs: [Double] = [], batonRTTs: [Double] = []
            let perBlock = max(1, config.pings / Self.latencyBlocks)
            for _ in 0..<Self.latencyBlocks {
                bareRTTs += try await bareLatency(pings: perBlock).sorted
                batonRTTs += try await batonLatency(pinger, target: agent.jid, count: perBlock)
            }
            report.bareRTT = Sample(bareRTTs)
            report.batonRTT = Sample(batonRTTs)
            log(String(format: "round trips in %d alternating blocks: bare p50 %.3f ms p99 %.3f ms; baton p50 %.3f ms p99 %.3f ms",
                       Self.latencyBlocks, report.bareRTT.p50, report.bareRTT.p99, report.batonRTT.p50, report.batonRTT.p99))
            (report.bareThroughput, report.bareThroughputRTT) = try await bareThroughput()
            (report.batonThroughput, report.batonThroughputRTT) = try await batonThroughput(pinger, target: agent.jid)
        }

        var observer: RunningAgent?
        if config.runs("c") || config.runs("d") {
            observer = try await startAgent("obs", modules: [NoopModule()])
        }
        // (c): discovery; ping-b publishes, obs watches.
        if config.runs("c"), let observer {
            let publisher: RunningAgent
            if let answering { publisher = answering } else { publisher = try await startAgent("ping-b", modules: [NoopModule()]) }
            answering = publisher
            (report.discovery, report.discoveryMisses) = try await discoveryLatency(publisher: publisher, observer: observer)
        }
        if let answering { await stop(answering) }

        // (d): agentd start-to-online and RSS, watched by obs.
        if config.runs("d"), let observer {
            (report.startToOnline, report.rssMB) = try await agentdStartup(observer: observer)
        }
        if let observer { await stop(observer) }

        // (e): workflow hand-offs.
        if config.runs("e") {
            let probe = try await connect("wf0", resource: "probe")
            let before = try await eventsPublishProbe(probe)
            let inProcess = try await handoffs(submitter: "ping-a@\(sandbox.domain)/bench", separateProcesses: false)
            report.inProcess = inProcess
            report.largePayloadBytes = inProcess.medianBytes
            report.bareLargeRTT = try await bareLatency(pings: min(1000, config.pings), pingText: String(repeating: "x", count: inProcess.medianBytes))
            if let model = inProcess.medianDocument {
                (report.bareHandoff, report.bareHandoffWrites) = try await bareHandoffs(like: model, count: max(200, config.rounds * 5))
            }
            let after = try await eventsPublishProbe(probe)
            await probe.close()
            notes.withLock {
                $0.append(String(format: "publish to baton/events (Prosody internal storage): p50 %.2f ms with %d items stored, %.2f ms with %d after the hand-off runs",
                                 before.p50, before.items, after.p50, after.items))
            }
        }
        if config.runs("f") {
            report.acrossProcesses = try await handoffs(submitter: "ping-a@\(sandbox.domain)/bench", separateProcesses: true)
        }
        report.notes = notes.withLock { $0 }
        await pinger.close()
        return report
    }

    /// Round trips of small publishes to baton/events, and how many items the node holds.
    func eventsPublishProbe(_ connection: XMPPConnection) async throws -> (p50: Double, items: Int) {
        let pubsub = PubSubClient(connection: connection, service: sandbox.pubsubService)
        let items = (try? await pubsub.items(node: "baton/events").count) ?? 0  // not persisted: no items to fetch
        var times: [Double] = []
        for i in 0..<20 {
            let start = monotonicNanos()
            try await pubsub.publish(node: "baton/events", id: "probe-\(UUID().uuidString.prefix(8))",
                                     payload: XMLElement("probe", xmlns: "urn:baton:bench:0", ["n": String(i)]))
            times.append(millis(since: start))
        }
        return (Sample(times).p50, items)
    }

    // MARK: - (a)/(b) bare libstrophe

    /// Blocks of round trips, alternating between bare libstrophe and Baton.
    static let latencyBlocks = 4

    /// One-at-a-time round trips (`pings` of them, after a warm-up), of pings carrying
    /// `pingText` if given.
    func bareLatency(pings: Int, pingText: String? = nil) async throws -> Sample {
        try await withBareBenchmark { bench in
            if let pingText { bench.pingText = pingText }
            _ = try bench.latency(count: min(200, pings))
            let latency = Sample(try bench.latency(count: pings).roundTripsMillis)
            if let pingText { log(String(format: "bare, %d-byte pings: RTT p50 %.3f ms", pingText.utf8.count, latency.p50)) }
            return latency
        }
    }

    /// Hand-offs of copies of `model` (each its own workflow id) between bare-a and bare-b,
    /// with journals of their own: the floor under Baton's hand-off (see
    /// `BareStropheBenchmark.handoffs`). A warm-up of 50 first.
    func bareHandoffs(like model: WorkflowDocument, count: Int) async throws -> (Sample, JournalWriteSamples) {
        let directory = sandbox.dir.path
        let run = try await withBareBenchmark { bench in
            let sender = try Journal(path: directory + "/state-bare-a/journal.sqlite")
            let receiver = try Journal(path: directory + "/state-bare-b/journal.sqlite")
            func copies(_ n: Int) -> [WorkflowDocument] {
                (0..<n).map { _ in var copy = model; copy.id = WorkflowDocument.newID(); return copy }
            }
            _ = try bench.handoffs(copies(50), sender: sender, receiver: receiver)
            return try bench.handoffs(copies(count), sender: sender, receiver: receiver)
        }
        let sample = Sample(run.roundTripsMillis)
        let writes = JournalWriteSamples(handing: Sample(run.journalMillis.handing), accept: Sample(run.journalMillis.accept),
                                         handed: Sample(run.journalMillis.handed))
        log(String(format: "bare hand-offs (libstrophe + Journal, one thread), %d-byte documents: p50 %.3f ms, p99 %.3f ms; "
                   + "journal p50: handing %.3f ms, synced accept %.3f ms, handed %.3f ms",
                   (try? model.json().utf8.count) ?? 0, sample.p50, sample.p99, writes.handing.p50, writes.accept.p50, writes.handed.p50))
        return (sample, writes)
    }

    /// The pipelined rate (`config.window` in flight) and its round trips.
    func bareThroughput() async throws -> (perSecond: Double, rtt: Sample) {
        let config = config
        return try await withBareBenchmark { bench in
            _ = try bench.pings(count: min(1000, config.throughputPings), window: config.window)
            let run = try bench.pings(count: config.throughputPings, window: config.window)
            log(String(format: "bare: %.0f IQ/s with %d in flight", run.perSecond, config.window))
            return (run.perSecond, Sample(run.roundTripsMillis))
        }
    }

    /// Connects bare-a and bare-b on a thread of their own, runs `body`, disconnects.
    private func withBareBenchmark<T: Sendable>(_ body: @escaping @Sendable (BareStropheBenchmark) throws -> T) async throws -> T {
        let host = sandbox.host, port = UInt16(sandbox.port), domain = sandbox.domain
        let a = BareStropheBenchmark.Account(jid: "bare-a@\(domain)/bench", password: password("bare-a"))
        let b = BareStropheBenchmark.Account(jid: "bare-b@\(domain)/bench", password: password("bare-b"))
        return try await onThread("bare libstrophe") {
            let bench = try BareStropheBenchmark(host: host, port: port, a: a, b: b)
            defer { bench.close() }
            return try body(bench)
        }
    }

    // MARK: - (a)/(b) Baton

    private func ping(_ target: String) -> XMLElement {
        Stanza.iq(.get, to: target, payload: XMLElement("ping", xmlns: NS.ping))
    }

    func batonLatency(_ connection: XMPPConnection, target: String, count: Int) async throws -> [Double] {
        for _ in 0..<min(200, count) { _ = try await connection.request(ping(target)) }
        var rtts: [Double] = []
        rtts.reserveCapacity(count)
        for _ in 0..<count {
            let start = monotonicNanos()
            _ = try await connection.request(ping(target))
            rtts.append(millis(since: start))
        }
        return rtts
    }

    func batonThroughput(_ connection: XMPPConnection, target: String) async throws -> (Double, Sample) {
        let stanza = ping(target)
        func burst(_ count: Int) async throws -> (seconds: Double, rtts: [Double]) {
            let next = Counter()
            let start = monotonicNanos()
            let rtts = try await withThrowingTaskGroup(of: [Double].self) { group in
                for _ in 0..<config.window {
                    group.addTask {
                        var mine: [Double] = []
                        while true {
                            let index = next.next()
                            guard index < count else { break }
                            let sent = monotonicNanos()
                            _ = try await connection.request(stanza)
                            mine.append(millis(since: sent))
                        }
                        return mine
                    }
                }
                var all: [Double] = []
                for try await part in group { all += part }
                return all
            }
            return (Double(monotonicNanos() - start) / 1e9, rtts)
        }
        _ = try await burst(min(1000, config.throughputPings))
        let (seconds, rtts) = try await burst(config.throughputPings)
        let rate = Double(rtts.count) / seconds
        log(String(format: "baton: %.0f IQ/s with %d in flight", rate, config.window))
        return (rate, Sample(rtts))
    }

    // MARK: - (c) discovery

    func discoveryLatency(publisher: RunningAgent, observer: RunningAgent) async throws -> (Sample, Int) {
        let jid = publisher.jid
        let pubsub = PubSubClient(connection: publisher.agent.connection, service: sandbox.pubsubService)
        guard await observer.agent.directory.wait(timeout: 10, until: { $0.contains { $0.jid == jid && $0.online } }) else {
            throw BenchFailure("observer never saw \(jid)")
        }
        var times: [Double] = []
        var misses = 0
        let base = publisher.agent.description
        for round in 0..<(config.rounds + 3) {
            var description = base
            description.load = 1000 + round
            let element = description.element
            let load = description.load
            let start = monotonicNanos()
            async let published: Void = pubsub.publish(node: Agent.agentsNode, id: jid, payload: element)
            let seen = await observer.agent.directory.wait(timeout: 5) { peers in
                peers.contains { $0.jid == jid && $0.description.load == load }
            }
            let elapsed = millis(since: start)
            try await published
            if round < 3 { continue }  // warm-up
            if seen { times.append(elapsed) } else { misses += 1 }
            try await Task.sleep(for: .milliseconds(10))
        }
        // Put the real description back.
        try await pubsub.publish(node: Agent.agentsNode, id: jid, payload: base.element)
        let sample = Sample(times)
        log(String(format: "discovery: p50 %.2f ms p99 %.2f ms (%d missed)", sample.p50, sample.p99, misses))
        return (sample, misses)
    }

    // MARK: - (d) agentd

    func agentdStartup(observer: RunningAgent) async throws -> (Sample, Sample) {
        guard FileManager.default.isExecutableFile(atPath: config.agentd) else {
            throw BenchFailure("no agentd at \(config.agentd) (build all products, or pass --agentd)")
        }
        let user = "daemon"
        let jid = "\(user)@\(sandbox.domain)/agent"
        let configPath = sandbox.dir.path + "/\(user).yaml"
        try """
        name: \(user)
        jid: \(jid)
        password: \(password(user))
        server: { host: \(sandbox.host), port: \(sandbox.port) }
        tls: { policy: trust-any }
        modules: [util]
        trusted: ["*@\(sandbox.domain)"]
        state_dir: \(sandbox.dir.path)/state-\(user)
        """.write(toFile: configPath, atomically: true, encoding: .utf8)
        let logPath = sandbox.dir.path + "/agentd.log"
        guard FileManager.default.createFile(atPath: logPath, contents: nil) else {
            throw BenchFailure("cannot create \(logPath)")
        }
        let logHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        defer { try? logHandle.close() }
        let directory = observer.agent.directory
        var times: [Double] = []
        var rss: [Double] = []
        var rssBreakdown: [(String, Int)] = []
        for run in 0..<config.agentdRuns {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: config.agentd)
            process.arguments = ["--config", configPath]
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = logHandle
            process.standardError = logHandle
            let start = monotonicNanos()
            try process.runWithCleanSignals()
            let pid = process.processIdentifier
            Cleanup.shared.adopt(child: pid, name: "agentd")
            let online = await directory.wait(timeout: 15) { $0.contains { $0.jid == jid && $0.online } }
            let elapsed = millis(since: start)
            var kilobytes: Int?
            if online {
                times.append(elapsed)
                try await Task.sleep(for: .seconds(1))  // idle
                kilobytes = residentKilobytes(of: pid)
                if let kilobytes { rss.append(Double(kilobytes) / 1024) }
                if run == config.agentdRuns - 1 { rssBreakdown = residentBreakdown(of: pid) }
            }
            await stopChild(process)  // SIGTERM: clean shutdown, retracts the item
            guard online else { throw BenchFailure("agentd run \(run + 1) not online within 15 s (see \(logPath))") }
            log(String(format: "agentd run %d: online after %.1f ms, RSS %.1f MB", run + 1, elapsed, Double(kilobytes ?? 0) / 1024))
            // The next run starts from a directory without the item.
            _ = await directory.wait(timeout: 10) { !$0.contains { $0.jid == jid } }
        }
        let top = rssBreakdown.prefix(10).map { "\($0.0) \(String(format: "%.1f", Double($0.1) / 1024))" }
        if !top.isEmpty { notes.withLock { $0.append("agentd RSS by mapping (MB): " + top.joined(separator: ", ")) } }
        return (Sample(times), Sample(rss))
    }

    /// SIGTERM, up to 10 s for a clean exit, then SIGKILL.
    private func stopChild(_ process: Process) async {
        let pid = process.processIdentifier
        process.terminate()
        if !(await waitForExit(process, timeout: 10)) {
            kill(pid, SIGKILL)
            _ = await waitForExit(process, timeout: 5)
        }
        Cleanup.shared.release(child: pid)
    }

    private func waitForExit(_ process: Process, timeout: Double) async -> Bool {
        let deadline = monotonicNanos() + UInt64(timeout * 1e9)
        while process.isRunning, monotonicNanos() < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        return !process.isRunning
    }

    // MARK: - (e) workflow hand-offs

    /// wf0 only submits; wf1…wf5 each run one step, so every step is a hand-off across the
    /// server. With `separateProcesses`, wf1…wf4 run as processes of their own (this binary in
    /// `--serve-agent` mode); wf0 and wf5 stay here to time hand-offs and ends.
    func handoffs(submitter: String, separateProcesses: Bool) async throws -> HandoffResult {
        let label = separateProcesses ? "workflow (separate processes)" : "workflow"
        var pipeline: [RunningAgent] = []
        // On an error, `Cleanup` kills the children it adopted; on success they stop below.
        var children: [Process] = []
        for (index, user) in pipelineUsers.enumerated() {
            if separateProcesses, index != 0, index != pipelineUsers.count - 1 {
                children.append(try startPipelineProcess(user, action: "bench.s\(index)"))
                continue
            }
            let modules: [any AgentModule] = index == 0 ? [] : [BenchStep(action: "bench.s\(index)")]
            pipeline.append(try await startAgent(user, modules: modules, concurrency: config.concurrency))
        }
        let jids = pipelineUsers.map { "\($0)@\(sandbox.domain)/agent" }
        for agent in pipeline {
            let others = jids.filter { $0 != agent.jid }
            guard await agent.agent.directory.wait(timeout: 15, until: { peers in
                others.allSatisfy { jid in peers.contains { $0.jid == jid && $0.online } }
            }) else { throw BenchFailure("pipeline agent \(agent.agent.settings.name) does not see all its peers") }
        }
        if separateProcesses {
            // The children find their peers the same way, unseen from here: give them a moment
            // (the warm-up rounds below absorb the rest).
            try await Task.sleep(for: .seconds(1))
        }
        let entry = pipeline[0].agent, last = pipeline[pipeline.count - 1].agent
        let document = WorkflowDocument(name: "bench", steps: (1...5).map { .init(id: "s\($0)", action: "bench.s\($0)") })

        // The last agent says when a workflow ends (after journaling it), with the time: no
        // polling of its journal, which would take CPU from the agents being measured.
        let endTimes = Mutex<[String: UInt64]>([:])
        // The single-workflow rounds wait on this instead of polling, which would wake a
        // thread every millisecond on the 2 cores the agents are being timed on.
        let (ends, endSignal) = AsyncStream.makeStream(of: String.self)
        last.engine.onEnd { document in
            let now = monotonicNanos()
            endTimes.withLock { $0[document.id] = now }
            endSignal.yield(document.id)
        }
        func endTime(_ id: String) -> UInt64? { endTimes.withLock { $0[id] } }
        // Each hand-off as its sender timed it: journal, IQ, the receiver's synced store, ack.
        // Custody moves when the receiver has synced the document (before its answer travels
        // back): timed from the sender's start where both ends are in this process.
        let handoffs = Mutex<[(handoff: WorkflowEngine.Handoff, journal: Journal)]>([])
        let custodyStored = Mutex<[String: ContinuousClock.Instant]>([:])
        let recording = Mutex(false)
        for agent in pipeline.dropLast() {
            let journal = agent.agent.engine.journal
            agent.agent.engine.onHandoff { handoff in
                guard recording.withLock({ $0 }) else { return }
                handoffs.withLock { $0.append((handoff, journal)) }
            }
        }
        for agent in pipeline.dropFirst() {
            agent.agent.engine.onCustody { custody in
                guard recording.withLock({ $0 }) else { return }
                custodyStored.withLock { $0["\(custody.workflow)#\(custody.seq)"] = custody.stored }
            }
        }

        // Hop latency: one workflow in flight at a time.
        // CPU spent in this process meanwhile: on 2 cores, work beside the hand-off (running
        // the step, events, the sender's bookkeeping) is what stretches it.
        let usageBefore = ProcessUsage.now()
        var e2e: [Double] = []
        for round in 0..<(config.rounds + 3) {
            recording.withLock { $0 = round >= 3 }
            let start = monotonicNanos()
            let submitted = try entry.engine.submit(document, by: submitter)
            let finished = try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    for await id in ends where id == submitted.id { return true }
                    return false
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(30))
                    return false
                }
                defer { group.cancelAll() }
                return try await group.next() ?? false
            }
            guard finished else { throw BenchFailure("workflow \(submitted.id) not finished within 30 s") }
            if round >= 3, let ended = endTime(submitted.id) { e2e.append(Double(ended - start) / 1e6) }
            try await Task.sleep(for: .milliseconds(20))
        }
        let perHop = ProcessUsage.now().minus(usageBefore).divided(by: Double((config.rounds + 3) * 5))
        recording.withLock { $0 = false }
        let e2eSample = Sample(e2e)
        let hop = Sample(e2e.map { $0 / 5 })
        let senders = handoffs.withLock { $0 }, timed = senders.map(\.handoff), stored = custodyStored.withLock { $0 }
        let handoff = Sample(timed.map { $0.duration / .milliseconds(1) })
        let custody = Sample(timed.compactMap { h in stored["\(h.workflow)#\(h.seq)"].map { ($0 - h.started) / .milliseconds(1) } })
        if custody.count > 0 {
            log(String(format: "%@: custody transfer (sender's start to receiver's synced store) p50 %.2f ms, p99 %.2f ms",
                       label, custody.p50, custody.p99))
        }
        log(String(format: "%@: end-to-end p50 %.2f ms (hop %.2f ms), p99 %.2f ms; hand-off p50 %.2f ms, p99 %.2f ms",
                   label, e2eSample.p50, hop.p50, e2eSample.p99, handoff.p50, handoff.p99))

        // Hand-off rate: many workflows in flight.
        let count = config.workflows
        let start = monotonicNanos()
        var pending: Set<String> = []
        for _ in 0..<count { pending.insert(try entry.engine.submit(document, by: submitter).id) }
        let submitSeconds = Double(monotonicNanos() - start) / 1e9
        let limit = max(60, min(180, Double(count) * 0.5))
        let deadline = start + UInt64(limit * 1e9)
        var lastProgress = (count: 0, at: monotonicNanos())
        while !pending.isEmpty {
            guard monotonicNanos() < deadline else {
                let parked = (try? entry.engine.journal.entries(in: [.parked]).count) ?? 0
                let message = "hand-off rate run stopped after \(Int(limit)) s: \(pending.count) of \(count) workflows unfinished (\(parked) parked at wf0); rate counts finished ones only"
                log(message)
                notes.withLock { $0.append(message) }
                break
            }
            try await Task.sleep(for: .milliseconds(20))
            for id in pending where endTime(id) != nil { pending.remove(id) }
            let done = count - pending.count
            if done != lastProgress.count, monotonicNanos() - lastProgress.at > 5_000_000_000 {
                log("  \(done)/\(count) workflows finished")
                lastProgress = (done, monotonicNanos())
            }
        }
        let lastEnd = endTimes.withLock { $0.values.max() } ?? monotonicNanos()
        let seconds = Double((pending.isEmpty ? lastEnd : monotonicNanos()) - start) / 1e9
        let rate = Double((count - pending.count) * 5) / seconds
        log(String(format: "%@: %d workflows (%d hand-offs) in %.2f s = %.0f hand-offs/s (submitting took %.2f s)",
                   label, count, count * 5, seconds, rate, submitSeconds))
        endSignal.finish()
        for agent in pipeline { await stop(agent) }
        for child in children { await stopChild(child) }
        let bySize = senders.sorted { $0.handoff.bytes < $1.handoff.bytes }
        let median = bySize.isEmpty ? nil : bySize[bySize.count / 2]
        // The sender's entry keeps the document exactly as it was handed (its receiver's has
        // moved on since).
        let medianDocument = try median.flatMap { sent in
            try sent.journal.entry(sent.handoff.workflow, seq: sent.handoff.seq - 1)?.document
        }
        return HandoffResult(hop: hop, handoff: handoff, custody: custody, e2e: e2eSample, rate: rate, workflows: count, seconds: seconds,
                             usagePerHop: separateProcesses ? nil : perHop,
                             timedSenders: pipeline.count - 1, medianBytes: median?.handoff.bytes ?? 0, medianDocument: medianDocument)
    }

    /// Starts `user` as a pipeline agent in a process of its own; it ends with SIGTERM or when
    /// this process goes away (its stdin closes).
    private func startPipelineProcess(_ user: String, action: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = ["--serve-agent", user, "--serve-action", action, "--serve-port", String(sandbox.port),
                             "--serve-state", stateDirectory(user), "--concurrency", String(config.concurrency),
                             "--log-level", BatonLog.level.rawValue]
        process.standardInput = Pipe()
        let logPath = sandbox.dir.path + "/\(user).log"
        guard FileManager.default.createFile(atPath: logPath, contents: nil) else {
            throw BenchFailure("cannot create \(logPath)")
        }
        let logHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = logHandle
        process.standardError = logHandle
        try process.runWithCleanSignals()
        Cleanup.shared.adopt(child: process.processIdentifier, name: user)
        return process
    }
}

/// The bare hand-off's journal writes (see `BareStropheBenchmark.JournalWrites`).
struct JournalWriteSamples {
    var handing: Sample
    var accept: Sample
    var handed: Sample
}

struct HandoffResult: Sendable {
    /// End-to-end time of a 5-step workflow over 5.
    var hop: Sample
    /// Each hand-off as its sender timed it (senders in this process only).
    var handoff: Sample
    /// From the sender's start to the receiver's synced store (both in this process).
    var custody: Sample
    var e2e: Sample
    var rate: Double
    var workflows: Int
    var seconds: Double
    /// CPU and thread switches of this process per hop, one workflow in flight (nil when some
    /// agents run as processes of their own).
    var usagePerHop: ProcessUsage?
    var timedSenders: Int
    /// Median size of the documents those hand-offs carried.
    var medianBytes: Int
    /// The document of that median hand-off, as its receiver stored it (the bare hand-off's model).
    var medianDocument: WorkflowDocument?
}

/// CPU time and voluntary context switches of this process (getrusage).
struct ProcessUsage: Sendable {
    var cpuMillis: Double
    var switches: Double

    static func now() -> ProcessUsage {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func millis(_ t: timeval) -> Double { Double(t.tv_sec) * 1e3 + Double(t.tv_usec) / 1e3 }
        return ProcessUsage(cpuMillis: millis(usage.ru_utime) + millis(usage.ru_stime), switches: Double(usage.ru_nvcsw))
    }

    func minus(_ other: ProcessUsage) -> ProcessUsage {
        ProcessUsage(cpuMillis: cpuMillis - other.cpuMillis, switches: switches - other.switches)
    }

    func divided(by count: Double) -> ProcessUsage {
        ProcessUsage(cpuMillis: cpuMillis / count, switches: switches / count)
    }
}
