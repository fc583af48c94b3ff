import AgentKernel
import Agents
import Foundation
import Synchronization
import Testing

/// The kernel against a real Prosody over libstrophe.
@Suite(.serialized) final class KernelIntegrationTests {
    let cluster: TestCluster

    init() async throws { cluster = try await TestCluster() }

    @Test func connectsAndRejectsWrongPasswordAndUnreachableServer() async throws {
        try cluster.server.register(user: "carol", password: "right")
        let ok = try await cluster.connect("carol", password: "right")
        await ok.close()

        let wrong = XMPPConnection(settings: cluster.connectionSettings("carol", password: "wrong"), logger: BatonLog.logger(agent: "t", module: "t"))
        let authError = await #expect(throws: ConnectionError.self) { try await wrong.connect(reconnect: false) }
        #expect(authError == .authenticationFailed(jid: "carol@baton.test/agent", server: "127.0.0.1:\(cluster.server.port)"))
        #expect(authError?.description.contains("carol@baton.test") == true)
        await wrong.close()

        var unreachableSettings = cluster.connectionSettings("carol", password: "right")
        unreachableSettings.port = 1  // nothing listens on port 1
        let nowhere = XMPPConnection(settings: unreachableSettings, logger: BatonLog.logger(agent: "t", module: "t"))
        let unreachable = await #expect(throws: ConnectionError.self) { try await nowhere.connect(reconnect: false) }
        guard case .unreachable(let jid, let server, _) = unreachable else {
            Issue.record("expected unreachable, got \(String(describing: unreachable))")
            return
        }
        #expect(jid == "carol@baton.test/agent" && server == "127.0.0.1:1")
        await nowhere.close()
    }

    @Test func verifyingTLSRefusesTheSelfSignedCertificate() async throws {
        try cluster.server.register(user: "tlsuser", password: "pw")
        var settings = cluster.connectionSettings("tlsuser", password: "pw")
        settings.tls = .verify
        let connection = XMPPConnection(settings: settings, logger: BatonLog.logger(agent: "t", module: "t"))
        let error = await #expect(throws: ConnectionError.self) { try await connection.connect(reconnect: false) }
        guard case .tlsFailed(let jid, _, _) = error else {
            Issue.record("expected a TLS failure, got \(String(describing: error))")
            return
        }
        #expect(jid == "tlsuser@baton.test/agent")
        await connection.close()
    }

    @Test func iqRoundTripsAndUnknownPayloads() async throws {
        let agent = try await cluster.startAgent("pinger")
        try cluster.server.register(user: "ops", password: "pw-ops")
        let ops = try await cluster.connect("ops")
        let client = ControlClient(connection: ops, pubsubService: "pubsub.baton.test")
        #expect(try await client.ping(agent.jid) >= 0)
        let version = try await ops.request(Stanza.iq(.get, to: agent.jid, payload: XMLElement("query", xmlns: NS.version)))
        #expect(version.child("query")?.child("name")?.text == SoftwareVersion.name)
        let unknown = await #expect(throws: StanzaError.self) {
            try await ops.request(Stanza.iq(.get, to: agent.jid, payload: XMLElement("nonsense", xmlns: "urn:example:nothing")))
        }
        #expect(unknown?.condition == .serviceUnavailable)
        let info = try await ops.request(Stanza.iq(.get, to: agent.jid, payload: XMLElement("query", xmlns: NS.discoInfo)))
        let query = try #require(info.child("query"))
        #expect(query.child("identity")?["category"] == "client" && query.child("identity")?["type"] == "bot")
        #expect(query.children("feature").contains { $0["var"] == Disco.actionFeature("demo.echo") })
        await ops.close()
        try await agent.stop()
    }

    /// A direct handler answers on the I/O thread, and its requests never reach `events`; a task
    /// that prefers the connection's executor runs on that thread, and still finishes once the
    /// thread has ended.
    @Test func directAnswersAndTheIOThreadExecutor() async throws {
        try cluster.server.register(user: "direct", password: "pw-direct")
        try cluster.server.register(user: "asker", password: "pw-asker")
        let direct = try await cluster.connect("direct")
        let asker = try await cluster.connect("asker")
        let answeredOn = Locked<(name: String, thread: pthread_t)?>(nil)
        direct.answerDirectly(.get, "probe", "urn:example:probe") { iq in
            answeredOn.withLock { $0 = (currentThreadName(), pthread_self()) }
            return Stanza.result(for: iq, payload: XMLElement("probe", xmlns: "urn:example:probe", ["answered": "yes"]))
        }
        let reply = try await asker.request(Stanza.iq(.get, to: "direct@baton.test/client", payload: XMLElement("probe", xmlns: "urn:example:probe")))
        #expect(reply.child("probe")?["answered"] == "yes")
        let ioThread = try #require(answeredOn.value)
        #expect(ioThread.name == "xmpp direct")
        // What reaches `events` up to a marker message sent after the request: no probe.
        asker.send(Stanza.message(to: "direct@baton.test/client", body: "marker"))
        var seen: [String] = []
        for await event in direct.events {
            guard case .stanza(let stanza) = event else { continue }
            seen.append(stanza.firstChild?.name ?? stanza.name)
            if stanza.child("body")?.text == "marker" { break }
        }
        #expect(!seen.contains("probe"))

        let ranOn = await withTaskExecutorPreference(direct.executor) { pthread_self() }
        #expect(ranOn == ioThread.thread)
        await direct.close()
        let afterClose = await withTaskExecutorPreference(direct.executor) { () async -> Int in
            await Task.yield()
            return 42
        }
        #expect(afterClose == 42)
        await asker.close()
    }

    @Test func commandsListExecuteAndValidate() async throws {
        let agent = try await cluster.startAgent("commander")
        try cluster.server.register(user: "ops", password: "pw-ops")
        let ops = try await cluster.connect("ops")
        let client = ControlClient(connection: ops, pubsubService: "pubsub.baton.test")
        let nodes = try await client.commands(of: agent.jid).map(\.node)
        #expect(Set(nodes).isSuperset(of: ["status", "modules", "ping", "echo"]))

        // Multi-stage: execute → form → next → form → complete.
        let first = try await client.run(agent.jid, node: "echo")
        #expect(first.status == "executing")
        let session = try #require(first.sessionID)
        let second = try await client.continue(agent.jid, node: "echo", sessionID: session, action: .next, values: ["text": ["hi"]])
        #expect(second.form?.fields.contains { $0.variable == "times" } == true)
        let done = try await client.continue(agent.jid, node: "echo", sessionID: session, action: .complete, values: ["times": ["2"], "shout": ["true"]])
        #expect(done.status == "completed")
        #expect(done.form?["text"] == "HI HI")

        let bad = await #expect(throws: StanzaError.self) { try await client.run(agent.jid, node: "echo", values: ["text": ["x"], "times": ["9"]]) }
        #expect(bad?.condition == .badRequest)
        #expect(bad?.text?.contains("times") == true)

        let status = try await client.run(agent.jid, node: "status")
        #expect(status.form?["agent"] == "commander")
        await ops.close()
        try await agent.stop()
    }

    @Test func untrustedJIDIsForbidden() async throws {
        let agent = try await cluster.startAgent("guarded")
        try cluster.server.register(user: "mallory", password: "pw-mallory")
        let mallory = try await cluster.connect("mallory")
        let client = ControlClient(connection: mallory, pubsubService: "pubsub.baton.test")
        let error = await #expect(throws: StanzaError.self) { try await client.run(agent.jid, node: "echo", values: ["text": ["x"]]) }
        #expect(error?.condition == .forbidden)
        #expect(error?.text?.contains("mallory@baton.test") == true)
        // Reading status stays open to everyone.
        #expect(try await client.run(agent.jid, node: "status").status == "completed")
        await mallory.close()
        try await agent.stop()
    }

    @Test func discoveryWithLateJoinerLeaverAndCrash() async throws {
        let a = try await cluster.startAgent("disco-a")
        let b = try await cluster.startAgent("disco-b")
        // A crashable agent in its own process.
        try await cluster.account("disco-c")
        let crashable = Process()
        crashable.executableURL = URL(fileURLWithPath: Products.path("agentd"))
        crashable.arguments = ["--config", try cluster.agentConfigFile("disco-c")]
        crashable.standardError = FileHandle.nullDevice
        // A password given by environment (the config's own wins) must not stay readable.
        let secret = "env-secret-\(UUID().uuidString)"
        crashable.environment = ProcessInfo.processInfo.environment.merging(["BATON_PASSWORD": secret]) { _, new in new }
        try crashable.run()
        let cJID = "disco-c@baton.test/agent"
        let allThree: @Sendable ([AgentDirectory.Peer]) -> Bool = { peers in
            ["disco-a@baton.test/agent", "disco-b@baton.test/agent", cJID].allSatisfy { jid in peers.contains { $0.jid == jid && $0.online } }
        }
        #expect(await a.agent.directory.wait(timeout: 15, until: allThree))
        #expect(await b.agent.directory.wait(timeout: 15, until: allThree))
        // Its children (and their children) could read it in /proc/PID/environ: gone there too.
        let environ = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(crashable.processIdentifier)/environ"))
        #expect(!String(decoding: environ, as: UTF8.self).contains(secret))
        #expect(String(decoding: environ, as: UTF8.self).contains("PATH="))

        // A late joiner appears in the running peers' views without restarting them.
        let d = try await cluster.startAgent("disco-d")
        let seesD: @Sendable ([AgentDirectory.Peer]) -> Bool = { $0.contains { $0.jid == "disco-d@baton.test/agent" && $0.online } }
        #expect(await a.agent.directory.wait(timeout: 10, until: seesD))
        #expect(await b.agent.directory.wait(timeout: 10, until: seesD))
        #expect(await d.agent.directory.wait(timeout: 10, until: allThree))

        // A clean leaver retracts its item.
        try await d.stop()
        #expect(await a.agent.directory.wait(timeout: 10) { !$0.contains { $0.jid == "disco-d@baton.test/agent" } })

        // A crashed agent (SIGKILL: no retraction) drops out through presence.
        kill(crashable.processIdentifier, SIGKILL)
        crashable.waitUntilExit()
        #expect(await a.agent.directory.wait(timeout: 30) { !($0.first { $0.jid == cJID }?.online ?? false) })
        #expect(await a.agent.directory.candidates(for: "demo.echo").map(\.jid).contains(cJID) == false)
        try await a.stop()
        try await b.stop()
    }

    @Test func loadChangesReachPeers() async throws {
        let a = try await cluster.startAgent("load-a")
        let b = try await cluster.startAgent("load-b")
        let aJID = "load-a@baton.test/agent"
        let loadOfA: @Sendable ([AgentDirectory.Peer]) -> Int? = { peers in peers.first { $0.jid == aJID && $0.online }?.description.load }
        #expect(await b.agent.directory.wait(timeout: 15) { loadOfA($0) == 0 })
        // A burst, as steps starting and ending make it: one republication, with the last value.
        for load in [1, 2, 3, 2, 1, 4] { a.agent.setLoad(load) }
        #expect(await b.agent.directory.wait(timeout: 5) { loadOfA($0) == 4 })
        // A change right after a republication still arrives, after it.
        a.agent.setLoad(0)
        #expect(await b.agent.directory.wait(timeout: 5) { loadOfA($0) == 0 })
        #expect(a.agent.load == 0)
        // A blip — up and back down before it settles, as a step of a few milliseconds makes
        // it — is never published, even after a quiet while (when a change used to go out at once).
        try await Task.sleep(for: .seconds(1))
        a.agent.setLoad(5)
        try await Task.sleep(for: .milliseconds(100))
        a.agent.setLoad(0)
        #expect(await b.agent.directory.wait(timeout: 2) { loadOfA($0) == 5 } == false)
        a.agent.setLoad(2)
        #expect(await b.agent.directory.wait(timeout: 5) { loadOfA($0) == 2 })
        try await a.stop()
        try await b.stop()
    }

    @Test func reconnectsAfterServerRestart() async throws {
        let a = try await cluster.startAgent("phoenix-a")
        let b = try await cluster.startAgent("phoenix-b")
        let bJID = b.jid
        #expect(await a.agent.directory.wait(timeout: 10) { $0.contains { $0.jid == bJID && $0.online } })
        try cluster.server.restart()
        // Both come back by themselves and find each other again.
        #expect(await a.agent.directory.wait(timeout: 30) { $0.contains { $0.jid == bJID && $0.online } })
        try cluster.server.register(user: "ops", password: "pw-ops")
        let ops = try await cluster.connect("ops")
        let client = ControlClient(connection: ops, pubsubService: "pubsub.baton.test")
        #expect(try await client.ping(a.jid) >= 0)
        let agents = try await client.agents()
        #expect(agents.filter(\.online).map(\.description.jid).contains(bJID))
        await ops.close()
        try await a.stop()
        try await b.stop()
    }

    /// A chat client's "add contact": a trusted JID is accepted and then sees the agent online;
    /// anyone else is refused at once.
    @Test func contactRequestsOfTrustedJIDsAreAccepted() async throws {
        let agent = try await cluster.startAgent("befriended")
        let bare = JID(agent.jid)!.bare
        for user in ["ops", "nobody"] { try cluster.server.register(user: user, password: "pw-\(user)") }
        let ops = try await cluster.connect("ops"), nobody = try await cluster.connect("nobody")
        func presences(of connection: XMPPConnection, from sender: String) -> Locked<[String]> {
            let seen = Locked<[String]>([])
            Task {
                for await event in connection.events {
                    if case .stanza(let s) = event, s.name == "presence", let from = s.from, JID(from)?.bare == sender {
                        seen.withLock { $0.append(s.type ?? "available") }
                    }
                }
            }
            return seen
        }
        let opsSaw = presences(of: ops, from: bare), nobodySaw = presences(of: nobody, from: bare)
        // As a chat client logs in: roster first (the server passes subscription answers only
        // to resources that asked for it), then presence.
        for connection in [ops, nobody] {
            _ = try await connection.request(Stanza.iq(.get, to: nil, payload: XMLElement("query", xmlns: NS.roster)))
            connection.send(Stanza.presence())
        }
        ops.send(Stanza.presence(type: "subscribe", to: bare))
        nobody.send(Stanza.presence(type: "subscribe", to: bare))
        #expect(await eventually(10) { opsSaw.value.contains("subscribed") && opsSaw.value.contains("available") }, "\(opsSaw.value)")
        #expect(await eventually(10) { nobodySaw.value.contains("unsubscribed") }, "\(nobodySaw.value)")
        #expect(!nobodySaw.value.contains("subscribed") && !nobodySaw.value.contains("available"))
        await ops.close()
        await nobody.close()
        try await agent.stop()
    }

    /// An IQ's id can be guessed; a third party's "answer" with it must not settle the request
    /// (it would fake a peer's acknowledgement of a hand-off).
    @Test func aForgedAnswerDoesNotSettleARequest() async throws {
        for user in ["asker", "holder", "forger"] { try cluster.server.register(user: user, password: "pw-\(user)") }
        let asker = try await cluster.connect("asker"), holder = try await cluster.connect("holder"), forger = try await cluster.connect("forger")
        let askerJID = "asker@baton.test/client", holderJID = "holder@baton.test/client"
        // The holder answers (for real) only once the forger has sent its answer and the server
        // has passed it on: the forger's is sent first, and a ping after it keeps the order.
        let requested = Task {
            try await asker.request(Stanza.iq(.get, to: holderJID, id: "guessable-1", payload: XMLElement("query", xmlns: NS.version)))
        }
        var incoming = holder.events.makeAsyncIterator()
        var request: XMLElement?
        while request == nil, let event = await incoming.next() {
            if case .stanza(let stanza) = event, stanza.id == "guessable-1" { request = stanza }
        }
        #expect(request?.from == askerJID)
        forger.send(Stanza.iq(.result, to: askerJID, id: "guessable-1", payload: XMLElement("query", xmlns: NS.version, children: [XMLElement("name", text: "forged")])))
        _ = try await forger.request(Stanza.iq(.get, to: askerJID, payload: XMLElement("ping", xmlns: NS.ping)))
        holder.send(Stanza.iq(.result, to: askerJID, id: "guessable-1", payload: XMLElement("query", xmlns: NS.version, children: [XMLElement("name", text: "genuine")])))
        let answer = try await requested.value
        #expect(answer.from == holderJID)
        #expect(answer.child("query")?.child("name")?.text == "genuine")
        for connection in [asker, holder, forger] { await connection.close() }
    }

    /// With XEP-0198 the server keeps a dropped agent's session for a while, and a resumed
    /// stream is the same session: its peers never saw it go, yet it forgot them when it lost
    /// its connection. Its greetings ask for their presence, so it sees them again.
    @Test func aResumedStreamSeesItsPeersAgain() async throws {
        let relay = try TCPRelay(to: cluster.server.port)
        try await cluster.account("resume-a")
        var settings = cluster.settings("resume-a")
        settings.connection.port = UInt16(relay.port)
        settings.connection.streamManagement = true
        let a = try await RunningAgent(Agent(settings: settings, modules: try settings.modules.map { try ModuleCatalog.make($0, settings: settings) }))
        let b = try await cluster.startAgent("resume-b")
        let aJID = a.jid, bJID = b.jid
        let aSeesB: @Sendable ([AgentDirectory.Peer]) -> Bool = { $0.contains { $0.jid == bJID && $0.online } }
        let bSeesA: @Sendable ([AgentDirectory.Peer]) -> Bool = { $0.contains { $0.jid == aJID && $0.online } }
        #expect(await a.agent.directory.wait(timeout: 10, until: aSeesB))
        #expect(await b.agent.directory.wait(timeout: 10, until: bSeesA))
        // Until the server has a's acknowledgement of b's greeting, a resumed stream would bring
        // it again (the server resends what was not acknowledged), and the test proves nothing.
        try await Task.sleep(for: .seconds(1))
        // Whether b ever sees a leave, from the cut until a sees b again.
        let watching = Mutex(true)
        let bSawALeave = Task {
            while watching.withLock({ $0 }) {
                if await b.agent.directory.wait(timeout: 0.2, until: { !bSeesA($0) }) { return true }
            }
            return false
        }
        relay.cut()
        #expect(await a.agent.directory.wait(timeout: 10) { !aSeesB($0) }, "a noticed the lost connection")
        let restored = try TCPRelay(to: cluster.server.port, port: relay.port)
        #expect(await a.agent.directory.wait(timeout: 20, until: aSeesB))
        watching.withLock { $0 = false }
        // Resumed, not a new session: otherwise the server would have told b that a left.
        #expect(await bSawALeave.value == false)
        try await a.stop()
        try await b.stop()
        restored.cut()
    }

    @Test func thirdPartyClientListsAndRunsCommands() async throws {
        let agent = try await cluster.startAgent("friendly")
        try cluster.server.register(user: "ops", password: "pw-ops")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Support/xmpp_client.py").path
        func slixmpp(_ arguments: [String]) throws -> (Int32, String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = [script, "--jid", "ops@baton.test/slixmpp", "--password", "pw-ops", "--host", cluster.server.host,
                                 "--port", String(cluster.server.port), "--insecure"] + arguments
            let output = Pipe()
            process.standardOutput = output
            process.standardError = output
            try process.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: data, as: UTF8.self))
        }
        let (listStatus, list) = try slixmpp(["commands", agent.jid])
        #expect(listStatus == 0, "\(list)")
        #expect(list.contains("status\tAgent status"))
        let (runStatus, run) = try slixmpp(["run", agent.jid, "status"])
        #expect(runStatus == 0, "\(run)")
        #expect(run.contains("agent=friendly"))
        let (pingStatus, ping) = try slixmpp(["ping", agent.jid])
        #expect(pingStatus == 0, "\(ping)")
        let (missingStatus, missing) = try slixmpp(["run", agent.jid, "no-such-command"])
        #expect(missingStatus != 0)
        #expect(missing.contains("item-not-found"), "\(missing)")
        try await agent.stop()
    }
}
