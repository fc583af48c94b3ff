import Foundation
import Logging
import Synchronization

/// One running agent: a JID, its modules, its peers. Connects, answers IQs (disco, commands,
/// ping, version and what modules register), takes chat commands, and keeps its item on
/// `baton/agents` and its view of the other agents current across reconnects.
public final class Agent: Sendable {
    public static let agentsNode = "baton/agents"

    public let settings: AgentSettings
    public let connection: XMPPConnection
    public let directory = AgentDirectory()
    public let logger: Logger
    public let modules: [any AgentModule]
    public let commandService: AdHocCommandService
    public let engine: WorkflowEngine
    let pubsub: PubSubClient
    private let router: Mutex<IQRouter>
    private let state = Mutex(State())
    private let loadPublisher: LoadPublisher
    private let engineTask = Mutex<Task<Void, Never>?>(nil)
    private let spoolTask = Mutex<Task<Void, Never>?>(nil)

    private struct State {
        var boundJID: String?
        var greeted: Set<String> = []
        var load = 0
        /// A republication of the load is on its way (it publishes the load current then).
        var loadPublishPending = false
        /// The load in the last description published (nil: none yet).
        var publishedLoad: Int?
        var modulesStarted = false
        var shuttingDown = false
        /// When each untrusted JID was last told it may not command us.
        var refused: [String: ContinuousClock.Instant] = [:]
    }

    /// How often an untrusted JID is told so.
    static let refusalInterval: Duration = .seconds(600)

    /// Opens the agent's journal in `settings.stateDirectory`; throws if it cannot.
    public init(settings: AgentSettings, modules: [any AgentModule]) throws {
        self.settings = settings
        logger = BatonLog.logger(agent: settings.name, module: "kernel")
        let connection = XMPPConnection(settings: settings.connection, logger: BatonLog.logger(agent: settings.name, module: "xmpp"))
        self.connection = connection
        pubsub = PubSubClient(connection: connection, service: settings.pubsubService)
        let journal = try Journal(path: settings.stateDirectory + "/journal.sqlite")
        let directory = self.directory
        let boundJID = Locked<String?>(nil)
        let loadSink = Locked(LoadSink())
        engine = WorkflowEngine(journal: journal, connection: connection, directory: directory,
                                runners: modules.compactMap { $0 as? any StepRunner }, settings: settings,
                                me: { boundJID.withLock { $0 } ?? settings.jid },
                                loadChanged: { load in loadSink.withLock { $0.call }?(load) })
        var all: [any AgentModule] = []
        let kernel = KernelModule()
        all.append(kernel)
        all.append(WorkflowModule(engine: engine, settings: settings))
        all += modules
        self.modules = all
        commandService = AdHocCommandService(commands: all.flatMap(\.commands))
        router = Mutex(IQRouter())
        loadPublisher = LoadPublisher()
        boundJIDSink = boundJID
        kernel.attach(to: self)
        loadSink.withLock { $0.call = { [weak self] load in self?.setLoad(load) } }
        installKernelHandlers()
    }
    private let boundJIDSink: Locked<String?>
    /// Where the engine reports load changes, bound once `self` exists. A struct, not a bare
    /// function type in the lock: see `Locked`.
    private struct LoadSink: Sendable { var call: (@Sendable (Int) -> Void)? }

    /// The full JID once online (the configured resource, or the one the server bound).
    public var jid: String { state.withLock { $0.boundJID } ?? settings.jid }
    public var actions: [String] { Array(Set(modules.flatMap(\.actions))).sorted() }
    public var load: Int { state.withLock { $0.load } }

    public var context: AgentContext {
        AgentContext(agentName: settings.name, jid: jid, connection: connection, directory: directory, settings: settings,
                     logger: logger, journal: engine.journal)
    }

    /// Lets a module or the workflow engine answer its own IQ payloads.
    public func on(_ type: Stanza.IQType, _ name: String, _ namespace: String, _ handler: @escaping IQRouter.Handler) {
        router.withLock { $0.on(type, name, namespace, handler) }
    }

    /// Registers a handler that answers before its work is over (see `IQRouter.AnsweringHandler`).
    public func on(_ type: Stanza.IQType, _ name: String, _ namespace: String, answering handler: @escaping IQRouter.AnsweringHandler) {
        router.withLock { $0.on(type, name, namespace, answering: handler) }
    }

    /// Connects (throwing a clear `ConnectionError` if the first attempt fails), then serves until
    /// `shutdown()`. A connection lost later is re-established with back-off.
    public func run(onOnline: (@Sendable () -> Void)? = nil) async throws {
        try await connection.connect(reconnect: true)
        try await withThrowingDiscardingTaskGroup { group in
            for await event in connection.events {
                switch event {
                case .online(let jid):
                    group.addTask {
                        do {
                            try await self.cameOnline(jid)
                            onOnline?()
                        } catch let error as AgentStartFailure {
                            // Announced and serving; what failed to start says why, and how to mend it.
                            self.logger.error("serving without some of its parts: \(error)")
                        } catch {
                            self.logger.error("could not announce myself: \(error)")
                        }
                    }
                case .offline:
                    state.withLock { $0.greeted.removeAll() }
                    await directory.markAllOffline()
                case .stanza(let stanza):
                    group.addTask { await self.handle(stanza) }
                }
            }
        }
        // The stream is closed for good (shutdown): leave the database file complete, so that
        // a copy of it taken now needs no WAL. Here rather than in `shutdown`, which runs
        // beside this and could be cut short when the process ends after `run` returns.
        do {
            try engine.journal.checkpoint()
        } catch {
            logger.warning("journal not checkpointed (its WAL keeps the latest commits): \(error)")
        }
    }

    /// Stops modules, retracts the directory item, says unavailable and closes the stream.
    public func shutdown() async {
        guard state.withLock({ s -> Bool in defer { s.shuttingDown = true }; return !s.shuttingDown }) else { return }
        spoolTask.withLock { $0?.cancel() }
        engineTask.withLock { $0?.cancel() }
        engine.stop()
        for module in modules.reversed() { await module.stop() }
        do {
            try await pubsub.retract(node: Self.agentsNode, id: jid)
        } catch {
            logger.warning("could not retract the directory item: \(error)")
        }
        await connection.close(sending: [Stanza.presence(type: "unavailable")])
        logger.info("stopped")
    }

    /// Changes the advertised load (work in progress). `LoadPublisher.settle` after a change, the
    /// load then current is republished if it differs from what was last published: a step of
    /// a few milliseconds (load up, then down) costs no publish at all, where each publish is
    /// sent by the server to every agent (baton-bench: hand-off p99 about 7 → 4 ms without
    /// those). Steps worth balancing last far longer than that. One pending republication
    /// covers every change meanwhile, instead of a task per change.
    public func setLoad(_ load: Int) {
        let mustRequest = state.withLock { s -> Bool in
            guard s.load != load else { return false }
            s.load = load
            defer { s.loadPublishPending = true }
            return !s.loadPublishPending
        }
        guard mustRequest else { return }
        Task {
            await loadPublisher.request { [self] in
                // Cleared before the load is read: a change from here on asks again.
                let changed = state.withLock { s -> Bool in
                    s.loadPublishPending = false
                    return s.load != s.publishedLoad
                }
                if changed { try? await publishDescription() }
            }
        }
    }

    // MARK: - Coming online

    private func cameOnline(_ bound: String) async throws {
        state.withLock { $0.boundJID = bound; $0.greeted.removeAll() }
        boundJIDSink.withLock { $0 = bound }
        // A resource that asked for its roster is one the server passes contact requests to
        // (RFC 6121 §3.1.3), including those that waited while we were away. The answer
        // itself is not needed.
        connection.send(Stanza.iq(.get, to: nil, payload: XMLElement("query", xmlns: NS.roster)))
        connection.send(Stanza.presence())
        await directory.setOnline(bound, true)
        do {
            try await pubsub.subscribe(node: Self.agentsNode, jid: bound)
            for (id, payload) in try await pubsub.items(node: Self.agentsNode) {
                if let description = AgentDescription(jid: id, element: payload) { await learn(description) }
            }
            try await publishDescription()
        } catch let error as StanzaError where error.condition == .forbidden || error.condition == .itemNotFound {
            // Still serve commands and hand-offs; only discovery is missing. Say how to fix it.
            logger.error("cannot use node \(Self.agentsNode) on \(settings.pubsubService) (\(error)): the pubsub admin must run 'agentctl directory init' once and 'agentctl directory enroll \(JID(bound)?.bare ?? bound)'; until then no peer can find this agent")
        } catch {
            // A slow or failing pubsub service must not keep the journal's work from resuming
            // (below): discovery catches up when peers announce themselves.
            logger.error("discovery on \(settings.pubsubService) failed: \(error); peers will be learnt as they announce themselves")
        }
        let mustStart = state.withLock { s -> Bool in defer { s.modulesStarted = true }; return !s.modulesStarted }
        if mustStart {
            // Modules first (a step resumed before its module is ready would fail), but the
            // engine starts whatever they do: what the journal holds must not stay stuck.
            var failures: [String] = []
            for module in modules {
                do { try await module.start(context) } catch { failures.append("module \(module.name) did not start: \(error)") }
            }
            engineTask.withLock { $0 = Task { await engine.run() } }
            if let spool = settings.spoolDirectory {
                let engine = engine
                // Like a module's, a spool that cannot be watched (another agent of this name
                // watches it, its directories cannot be made) fails the start, which is logged,
                // and the agent serves on without it.
                do {
                    let watcher = try SpoolWatcher(directory: spool, agentName: settings.name, submitter: { [weak self] in self?.jid ?? "" },
                                                   submit: { try engine.submit($0, by: $1, id: $2) })
                    spoolTask.withLock { $0 = Task { await watcher.run() } }
                } catch {
                    failures.append(error is SpoolNameInUse ? "\(error)" : "spool \(spool) is not watched: \(error)")
                }
            }
            if !failures.isEmpty { throw AgentStartFailure(failures: failures) }
        }
        logger.info("announced on \(settings.pubsubService) node \(Self.agentsNode) with actions \(actions.joined(separator: ", "))")
    }

    public var description: AgentDescription {
        AgentDescription(jid: jid, name: settings.name, version: SoftwareVersion.version, actions: actions,
                         load: load, concurrency: settings.concurrency)
    }

    private func publishDescription() async throws {
        let description = self.description
        try await pubsub.publish(node: Self.agentsNode, id: jid, payload: description.element)
        state.withLock { $0.publishedLoad = description.load }
        // Known to its own directory at once, not when the server's notification of this item
        // comes back: a workflow submitted right after the start found no agent for an action
        // the agent runs itself, and was parked for a second (its time limit could run out).
        await directory.update(description)
    }

    /// Records a peer and, the first time, sends it directed presence: it then knows we are
    /// here, answers with its own, and the server tells it when we go away (RFC 6121 §4.6).
    private func learn(_ description: AgentDescription) async {
        await directory.update(description)
        greet(description.jid)
    }

    /// A greeting asks the peer for its presence in return (`<greeting xmlns='urn:baton:agent:0'/>`):
    /// after our stream was resumed (XEP-0198) the server never told the peer we had gone, so a
    /// peer that answered only agents it had seen leave would stay offline in our directory.
    private func greet(_ peer: String) {
        guard peer != jid else { return }
        let isNew = state.withLock { $0.greeted.insert(peer).inserted }
        if isNew { connection.send(Self.greeting(to: peer)) }
    }

    static func greeting(to peer: String) -> XMLElement {
        XMLElement("presence", ["to": peer], children: [XMLElement("greeting", xmlns: NS.baton)])
    }

    // MARK: - Incoming stanzas

    private func handle(_ stanza: XMLElement) async {
        switch stanza.name {
        case "iq":
            await router.withLock({ $0 }).handle(stanza) { [connection] reply in connection.send(reply) }
        case "presence":
            if stanza.type == "subscribe", let from = stanza.from {
                // Someone adds the agent to their contacts (a chat client's "add contact"):
                // a trusted JID then sees it online and can run its commands from the roster;
                // anyone else is told no at once rather than left pending.
                let answer = settings.trusts(from) ? "subscribed" : "unsubscribed"
                logger.info("\(answer == "subscribed" ? "accepted" : "refused") the contact request of \(from)")
                connection.send(Stanza.presence(type: answer, to: JID(from)?.bare ?? from))
                return
            }
            guard let from = stanza.from, from != jid, JID(from)?.resource != nil else { return }
            switch stanza.type {
            case nil:
                let wasOnline = await directory.peer(from)?.online ?? false
                await directory.setOnline(from, true)
                if stanza.child("greeting", xmlns: NS.baton) != nil || !wasOnline {
                    // Asked for it, or it may have come back after we greeted its old session
                    // (the greeting then went nowhere): answer so it learns we are here. A plain
                    // presence, which asks for nothing back: two agents never loop.
                    state.withLock { _ = $0.greeted.insert(from) }
                    connection.send(Stanza.presence(to: from))
                } else {
                    greet(from)
                }
            case "unavailable":
                state.withLock { _ = $0.greeted.remove(from) }
                await directory.setOnline(from, false)
            default: break
            }
        case "message":
            if let event = PubSubClient.event(in: stanza, from: settings.pubsubService) {
                guard event.node == Self.agentsNode else { return }
                for (id, payload) in event.published {
                    if let description = AgentDescription(jid: id, element: payload) { await learn(description) }
                }
                for id in event.retracted { await directory.remove(id) }
            } else if ChatCommands.isCommand(stanza), let body = stanza.child("body")?.text, let from = stanza.from,
                      await directory.peer(from) == nil, JID(from)?.bare != JID(jid)?.bare {
                // Chat from other agents is never answered either, marked or not.
                let answer: String
                if let sent = ChatCommands.delayedSince(stanza) {
                    answer = "Not run: '\(body.prefix(80))' was sent at \(sent), while I was offline. Send it again if it still holds."
                } else if !settings.trusts(from) {
                    // Said once in a while: an untrusted auto-responder would otherwise keep
                    // the two of us talking.
                    let now = ContinuousClock.now
                    let due = state.withLock { s -> Bool in
                        if let last = s.refused[from], now - last < Self.refusalInterval { return false }
                        if s.refused.count > 1000 { s.refused.removeAll() }
                        s.refused[from] = now
                        return true
                    }
                    guard due else { return }
                    answer = ChatCommands.refusal(of: from, by: settings.name)
                } else {
                    answer = await ChatCommands.answer(body, from: from, agent: self)
                }
                connection.send(ChatCommands.message(to: from, body: answer))
            }
        default:
            break
        }
    }

    /// The handlers hold the agent `unowned`: the router is the agent's own and only `handle`
    /// (the agent alive) calls it. Held strongly, every agent kept itself alive for ever, and
    /// with it its journal's open files — a test process ran out of descriptors.
    private func installKernelHandlers() {
        on(.get, "query", NS.discoInfo) { [unowned self] iq, _ in
            let node = iq.firstChild?["node"]
            if node == NS.commands { return Disco.info(name: "Commands of \(settings.name)", features: [NS.commands], node: node) }
            if let node {
                guard let command = commandService.command(node) else { throw StanzaError(.itemNotFound, "no node '\(node)'") }
                return Disco.info(name: command.name, features: [NS.commands, NS.dataForms], node: node)
            }
            let features = [NS.discoInfo, NS.discoItems, NS.commands, NS.dataForms, NS.ping, NS.version, NS.baton]
                + modules.flatMap(\.features) + actions.map(Disco.actionFeature)
            return Disco.info(name: "Baton agent \(settings.name)", features: features)
        }
        on(.get, "query", NS.discoItems) { [unowned self] iq, _ in
            let node = iq.firstChild?["node"]
            guard node == NS.commands else { return Disco.items(node: node, items: []) }
            return Disco.items(node: node, items: commandService.commands.map { (jid, $0.node, $0.name) })
        }
        on(.set, "command", NS.commands) { [unowned self] iq, from in
            try await commandService.handle(iq.firstChild!, from: from, trusted: settings.trusts(from))
        }
        on(.get, "ping", NS.ping) { _, _ in nil }
        // Hand-offs are taken on the connection's I/O thread: the synced store is what the
        // sender waits for, and the answer leaves as soon as it is done. Weak: the connection
        // may outlive the agent (tasks still hold it); a hand-off then gets no answer, and its
        // sender asks again later, as after any lost answer.
        connection.answerDirectly(.set, "handoff", NS.batonWorkflow) { [weak self] iq in self?.takeHandoff(iq) }
        on(.get, "query", NS.version) { _, _ in SoftwareVersion.query }
    }
}

extension Agent {
    /// Takes custody of a handed-over workflow (stored, synced) and returns the answer: a
    /// result, or the error that says it was not stored. Runs on the connection's I/O thread
    /// (see `XMPPConnection.answerDirectly`); the step starts once the answer is on its way.
    func takeHandoff(_ iq: XMLElement) -> XMLElement? {
        let from = iq.from ?? ""
        var reply: XMLElement?
        do {
            guard settings.trusts(from) else {
                throw StanzaError(.forbidden, "\(JID(from)?.bare ?? from) may not hand work to \(settings.name)")
            }
            let (document, json) = try HandoffStanzas.document(in: iq.firstChild!)
            try engine.receive(document, json: json, from: from) { isNew in
                // The test hook for a lost acknowledgement: stored, but no answer.
                guard !engine.ackDropper.withLock({ n -> Bool in defer { n = max(0, n - 1) }; return n > 0 }) else { return }
                reply = Stanza.result(for: iq, payload: HandoffStanzas.accepted(duplicate: !isNew))
            }
        } catch let error as StanzaError where error.isReceiversRefusal && engine.holds(iq.firstChild) {
            // A copy stored before is acknowledged, not refused: should this agent's trust or
            // actions have changed since, a refusal would tell the sender it was never
            // stored, and the step would run a second time elsewhere.
            reply = Stanza.result(for: iq, payload: HandoffStanzas.accepted(duplicate: true))
        } catch {
            reply = StanzaError.reply(to: iq, for: error)
        }
        return reply
    }
}

/// Runs a load republication once the load has settled: `settle` after the first request, all
/// requests meanwhile covered by that one.
actor LoadPublisher {
    static let settle = Duration.milliseconds(500)
    private var scheduled = false

    func request(_ publish: @escaping @Sendable () async -> Void) async {
        guard !scheduled else { return }
        scheduled = true
        try? await Task.sleep(for: Self.settle)
        scheduled = false
        await publish()
    }
}

/// Modules whose `start` failed; the agent runs on (its journal's work included) without them.
struct AgentStartFailure: Error, CustomStringConvertible {
    let failures: [String]
    var description: String { failures.joined(separator: "; ") }
}
