import Foundation
import Testing
@testable import AgentKernel

@Suite struct IQRouterTests {
    @Test func unknownPayloadIsServiceUnavailable() async {
        let router = IQRouter()
        let reply = await router.reply(to: Stanza.iq(.get, to: "a@b/c", id: "1", payload: XMLElement("query", xmlns: "urn:unknown")))
        #expect(reply.map(StanzaError.init(parsing:))?.condition == .serviceUnavailable)
    }

    @Test func resultsAreNeverAnswered() async {
        let router = IQRouter()
        #expect(await router.reply(to: Stanza.iq(.result, to: "a@b/c", id: "1")) == nil)
    }

    @Test func routesByNamespace() async throws {
        var router = IQRouter()
        router.on(.get, "ping", NS.ping) { _, _ in nil }
        router.on(.set, "thing", "urn:x") { _, _ in throw StanzaError(.notAcceptable, "no") }
        let ping = await router.reply(to: Stanza.iq(.get, to: "a@b/c", id: "1", payload: XMLElement("ping", xmlns: NS.ping)))
        #expect(ping?.type == "result")
        let refused = try #require(await router.reply(to: Stanza.iq(.set, to: "a@b/c", id: "2", payload: XMLElement("thing", xmlns: "urn:x"))))
        #expect(StanzaError(parsing: refused).condition == .notAcceptable)
        let empty = try #require(await router.reply(to: Stanza.iq(.get, to: "a@b/c", id: "3")))
        #expect(StanzaError(parsing: empty).condition == .badRequest)
    }

    /// An answering handler's result leaves when it answers, before the rest of its work.
    @Test func answeringHandlerRepliesOnceAndBeforeItsWorkEnds() async throws {
        var router = IQRouter()
        let log = Locked<[String]>([])
        router.on(.set, "job", "urn:x", answering: { iq, _, answer in
            answer(XMLElement("taken", xmlns: "urn:x"))
            log.withLock { $0.append("work after the answer") }
            answer(XMLElement("again", xmlns: "urn:x"))
            throw StanzaError(.internalServerError, "too late to refuse")
        })
        router.on(.set, "refused", "urn:x", answering: { _, _, _ in throw StanzaError(.forbidden, "no") })
        router.on(.set, "silent", "urn:x", answering: { _, _, _ in })
        let sent = Locked<[XMLElement]>([])
        await router.handle(Stanza.iq(.set, to: "a@b/c", id: "1", payload: XMLElement("job", xmlns: "urn:x"))) { reply in
            log.withLock { $0.append("sent \(reply.type ?? "?")") }
            sent.withLock { $0.append(reply) }
        }
        #expect(log.value == ["sent result", "work after the answer"])
        #expect(sent.value.count == 1 && sent.value.first?.id == "1" && sent.value.first?.firstChild?.name == "taken")
        let refused = try #require(await router.reply(to: Stanza.iq(.set, to: "a@b/c", id: "2", payload: XMLElement("refused", xmlns: "urn:x"))))
        #expect(StanzaError(parsing: refused).condition == .forbidden)
        #expect(await router.reply(to: Stanza.iq(.set, to: "a@b/c", id: "3", payload: XMLElement("silent", xmlns: "urn:x"))) == nil)
    }
}

@Suite struct AgentSettingsTests {
    @Test func parsesAFullConfig() throws {
        let settings = try AgentSettings.parse(yaml: """
            name: build
            jid: build@baton.test/agent
            password: s3cret
            server: { host: 127.0.0.1, port: 5299 }
            tls: { policy: trust-any }
            modules: [echo]
            trusted: [Ops@Baton.test, "*@Lab.test"]
            concurrency: 3
            """, file: "build.yaml")
        #expect(settings.name == "build" && settings.connection.port == 5299 && settings.connection.tls == .trustAny)
        #expect(settings.pubsubService == "pubsub.baton.test")
        #expect(settings.trusts("ops@baton.test/laptop"))
        #expect(settings.trusts("anyone@lab.test/x"))
        #expect(settings.trusts("build@baton.test/other"))
        #expect(!settings.trusts("evil@baton.test/x"))
        // Accounts of a domain, not the domain's server or components.
        #expect(!settings.trusts("lab.test"))
        #expect(!settings.trusts("conference.lab.test/x"))
        #expect(settings.concurrency == 3)
    }

    @Test func errorsNameTheProblem() {
        #expect(throws: ConfigError(file: "a.yaml", "line 2: unknown setting 'pasword' (known: concurrency, jid, module_settings, modules, name, password, password_file, pubsub, server, spool, state_dir, tls, trusted, workflows_dir)")) {
            try AgentSettings.parse(yaml: "jid: a@b\npasword: x\n", file: "a.yaml")
        }
        #expect(throws: ConfigError(file: "a.yaml", "no password: set 'password_file', 'password' or $BATON_PASSWORD")) {
            try AgentSettings.parse(yaml: "jid: a@b\n", file: "a.yaml")
        }
        #expect(throws: ConfigError.self) { try AgentSettings.parse(yaml: "jid: [unclosed\n", file: "a.yaml") }
        #expect(throws: ConfigError(file: "a.yaml", "line 3: 'tls.policy' must be 'verify' or 'trust-any', not 'none'")) {
            try AgentSettings.parse(yaml: "jid: a@b\npassword: x\ntls: {policy: none}\n", file: "a.yaml")
        }
        // A misspelt key inside tls: was silently ignored (and verification stayed as it was).
        #expect(throws: ConfigError(file: "a.yaml", "line 3: unknown setting 'tls.polcy' (known: ca_file, policy)")) {
            try AgentSettings.parse(yaml: "jid: a@b\npassword: x\ntls: {polcy: trust-any}\n", file: "a.yaml")
        }
        #expect(throws: ConfigError(file: "a.yaml", "line 3: 'module_settings' must be a mapping of module name to its settings")) {
            try AgentSettings.parse(yaml: "jid: a@b\npassword: x\nmodule_settings: [lifecycle]\n", file: "a.yaml")
        }
        #expect(throws: ConfigError(file: "a.yaml", "line 1: 'jid' is required and must look like name@domain[/resource]")) {
            try AgentSettings.parse(yaml: "jid: nodomain\npassword: x\n", file: "a.yaml")
        }
        #expect(throws: ConfigError.self) { try AgentSettings.parse(yaml: "jid: a@b\npassword: x\nserver: {port: 99999}\n", file: "a.yaml") }
    }

    @Test func streamManagementIsOptIn() throws {
        let plain = try AgentSettings.parse(yaml: "jid: a@b\npassword: x\n", file: "a.yaml")
        #expect(plain.connection.streamManagement == false)
        let resumable = try AgentSettings.parse(yaml: "jid: a@b\npassword: x\nserver: { host: h, stream_management: true }\n", file: "a.yaml")
        #expect(resumable.connection.streamManagement == true && resumable.connection.host == "h")
        #expect(throws: ConfigError(file: "a.yaml", "line 3: 'server.stream_management' must be true or false")) {
            try AgentSettings.parse(yaml: "jid: a@b\npassword: x\nserver: { stream_management: sometimes }\n", file: "a.yaml")
        }
        #expect(throws: ConfigError(file: "a.yaml", "line 3: unknown setting 'server.hots' (known: host, port, stream_management)")) {
            try AgentSettings.parse(yaml: "jid: a@b\npassword: x\nserver: { hots: h }\n", file: "a.yaml")
        }
    }

    @Test func passwordFromEnvironment() throws {
        let settings = try AgentSettings.parse(yaml: "jid: a@b\n", file: "a.yaml", environment: ["BATON_PASSWORD": "pw"])
        #expect(settings.connection.password == "pw")
    }
}

@Suite struct AgentDirectoryTests {
    func description(_ jid: String, load: Int, concurrency: Int = 1, actions: [String] = ["build.image"]) -> AgentDescription {
        AgentDescription(jid: jid, name: jid, version: "1", actions: actions, load: load, concurrency: concurrency)
    }

    @Test func candidatesAreOnlineLeastLoadedAndStable() async {
        let directory = AgentDirectory()
        await directory.update(description("a@x/1", load: 2, concurrency: 2))
        await directory.update(description("b@x/1", load: 0))
        await directory.update(description("c@x/1", load: 0))
        await directory.update(description("d@x/1", load: 0, actions: ["test.vm"]))
        await directory.setOnline("a@x/1", true)
        await directory.setOnline("b@x/1", true)
        // Presence before the item: must still count once the item arrives.
        await directory.setOnline("e@x/1", true)
        await directory.update(description("e@x/1", load: 0))
        let picked = await directory.candidates(for: "build.image", key: "wf-1").map(\.jid)
        #expect(Set(picked.prefix(2)) == ["b@x/1", "e@x/1"])
        #expect(picked.last == "a@x/1")
        #expect(!picked.contains("c@x/1"))  // never seen online
        #expect(await directory.candidates(for: "build.image", key: "wf-1").map(\.jid) == picked)
        await directory.setOnline("b@x/1", false)
        #expect(await !directory.candidates(for: "build.image", key: "wf-1").map(\.jid).contains("b@x/1"))
    }

    @Test func waitSeesLaterUpdates() async {
        let directory = AgentDirectory()
        Task {
            await directory.update(description("z@x/1", load: 0))
            await directory.setOnline("z@x/1", true)
        }
        #expect(await directory.wait(timeout: 5) { $0.contains { $0.jid == "z@x/1" && $0.online } })
        #expect(await !directory.wait(timeout: 0.05) { $0.contains { $0.jid == "nobody" } })
    }
}

@Suite struct LogLineTests {
    /// iAgent's shape, zero-padded, milliseconds truncated, metadata sorted after the text.
    @Test func linesHaveIAgentsShape() {
        let time = timespec(tv_sec: 1_795_896_774, tv_nsec: 82_999_999)  // 2026-11-28 20:12:54.082
        #expect(BatonLogHandler.line(at: time, pid: 4711, level: .info, label: "build::launcher", message: "started",
                                     metadata: ["z": "1", "a": "x y"])
                == "[2026-11-28 20:12:54.082][4711][INFO,build::launcher] started a=x y z=1\n")
        let early = timespec(tv_sec: 0, tv_nsec: 5_000_000)
        #expect(BatonLogHandler.line(at: early, pid: 1, level: .warning, label: "a::b", message: "m", metadata: [:])
                == "[1970-01-01 00:00:00.005][1][WARNING,a::b] m\n")
    }
}
