import AgentKernel
import Agents
import ApplianceEngine
import Foundation
import Testing

/// The five lifecycle agents, each on its own JID, taking a recipe to a verified release
/// through hand-offs — real apt, mksquashfs, qemu and ed25519 underneath.
@Suite(.serialized) final class LifecycleIntegrationTests {
    let cluster: TestCluster
    let recipes: URL
    /// Snapshots, downloads and the build cache persist between runs (that is what warm means).
    static let sharedRoot = ProcessInfo.processInfo.environment["BATON_TEST_ROOT"].map { $0 + "/lifecycle" } ?? "/var/tmp/baton-lifecycle-tests"

    init() async throws {
        cluster = try await TestCluster()
        recipes = cluster.server.dir.appendingPathComponent("recipes")
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("recipes")
        try FileManager.default.copyItem(at: source, to: recipes)
        // A recipe whose VM check fails: the workflow must stop before release.
        let micro = try String(contentsOf: recipes.appendingPathComponent("micro.yaml"), encoding: .utf8)
        try micro.replacingOccurrences(of: "name: micro-smoke", with: "name: micro-broken")
            .replacingOccurrences(of: "run: grep -q 'micro appliance' /etc/motd", with: "run: test -e /etc/no-such-file")
            .write(to: recipes.appendingPathComponent("broken.yaml"), atomically: true, encoding: .utf8)
        // A package no mirror has, and a post script that fails: each must stop its step with the reason.
        try micro.replacingOccurrences(of: "name: micro-smoke", with: "name: micro-nopkg")
            .replacingOccurrences(of: "packages: [busybox-static, linux-image-cloud-amd64]", with: "packages: [busybox-static, linux-image-cloud-amd64, baton-no-such-package]")
            .write(to: recipes.appendingPathComponent("nopkg.yaml"), atomically: true, encoding: .utf8)
        try micro.replacingOccurrences(of: "name: micro-smoke", with: "name: micro-badpost")
            .replacingOccurrences(of: "echo \"built by baton\" > /etc/baton-stamp", with: "echo about to fail; exit 7")
            .write(to: recipes.appendingPathComponent("badpost.yaml"), atomically: true, encoding: .utf8)
    }

    func lifecycleAgent(_ module: String, extra: [String] = []) async throws -> RunningAgent {
        try await cluster.account(module)
        var settings = cluster.settings(module, modules: [module] + extra, trusted: ["*@baton.test"])
        settings.moduleSettings["lifecycle"] = """
            root: \(Self.sharedRoot)
            recipes: \(recipes.path)
            signing_key: \(cluster.server.dir.path)/keys/release.ed25519
            signing_key_create: true
            """
        return try await RunningAgent(try Agent(settings: settings, modules: try settings.modules.map { try ModuleCatalog.make($0, settings: settings) }))
    }

    @Test func microApplianceToVerifiedReleaseAndFailingTestStopsIt() async throws {
        var agents: [RunningAgent] = []
        for module in ["configuration", "repository", "build", "test", "release"] {
            agents.append(try await lifecycleAgent(module, extra: module == "test" ? ["launcher"] : []))
        }
        let config = agents[0].agent, release = agents[4].agent
        let all: @Sendable ([AgentDirectory.Peer]) -> Bool = { peers in
            ["config.resolve", "repo.snapshot", "build.image", "test.container", "test.vm", "release.publish"].allSatisfy { action in
                peers.contains { $0.online && $0.description.actions.contains(action) } }
        }
        #expect(await config.directory.wait(timeout: 15, until: all))

        try cluster.server.register(user: "ops", password: "pw-ops")
        let ops = try await cluster.connect("ops")
        let chat = Locked<[String]>([])
        let listener = Task {
            for await event in ops.events {
                if case .stanza(let s) = event, s.name == "message", let body = s.child("body")?.text { chat.withLock { $0.append(body) } }
            }
        }
        let client = ControlClient(connection: ops, pubsubService: "pubsub.baton.test", timeout: 30)
        let channel = "it-\(UUID().uuidString.prefix(8).lowercased())"
        let workflow = """
            workflow: micro-appliance
            steps:
              - { id: configure, action: config.resolve, with: { recipe: micro } }
              - { id: packages, action: repo.snapshot }
              - { id: image, action: build.image }
              - { id: smoke, action: test.container }
              - { id: boot, action: test.vm, with: { max_lifetime: 120 } }
              - { id: publish, action: release.publish, with: { channel: \(channel) } }
            """
        let submitted = try await client.run(config.jid, node: "submit", values: ["yaml": [workflow]])
        let id = try #require(submitted.form?["id"])
        #expect(try await eventually(600) { try finished(release, id) != nil })
        let done = try #require(try finished(release, id))
        #expect(done.status == .completed, "\(done.reason ?? "")")
        #expect(done.trail.map(\.step) == ["configure", "packages", "image", "smoke", "boot", "publish"])
        #expect(Set(done.trail.map(\.agent)).count == 5)
        let releaseDir = try #require(done.context["publish"]?["release_dir"]?.string)
        // The signature and sums verify with the published key; a changed byte is caught.
        let publisher = ReleasePublisher(root: URL(fileURLWithPath: Self.sharedRoot + "/releases"),
                                         keyPath: cluster.server.dir.appendingPathComponent("keys/release.ed25519"))
        try publisher.verify(URL(fileURLWithPath: releaseDir))
        // agentctl release verify, pinned to the publisher's key: OK, then loud failure on a change.
        let keyFile = cluster.server.dir.appendingPathComponent("keys/release.ed25519.pub").path
        func verify() throws -> (Int32, String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Products.path("agentctl"))
            process.arguments = ["release", "verify", releaseDir, "--public-key", keyFile]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (process.terminationStatus, out)
        }
        let (okStatus, okText) = try verify()
        #expect(okStatus == 0, "\(okText)")
        let manifest = try String(contentsOfFile: releaseDir + "/manifest.json", encoding: .utf8)
        #expect(manifest.contains(id) && manifest.contains("build@baton.test/agent"))
        #expect(await eventually(10) { chat.value.contains { $0.contains("[micro-appliance") && $0.contains("completed") } })
        let tampered = releaseDir + "/copy-of-manifest"
        try FileManager.default.copyItem(atPath: releaseDir + "/manifest.json", toPath: tampered)
        let (badStatus, badText) = try verify()
        #expect(badStatus != 0 && badText.contains("VERIFICATION FAILED") && badText.contains("copy-of-manifest"), "\(badText)")
        try FileManager.default.removeItem(atPath: tampered)
        #expect(done.context["boot"]?["accelerator"]?.string != nil)

        // A failing VM check ends the workflow at `boot`: no release, and the submitter is told why.
        let broken = workflow.replacingOccurrences(of: "recipe: micro", with: "recipe: broken")
        let failing = try #require(try await client.run(config.jid, node: "submit", values: ["yaml": [broken]]).form?["id"])
        let tester = agents[3].agent
        #expect(try await eventually(600) { try finished(tester, failing) != nil })
        let failed = try #require(try finished(tester, failing))
        #expect(failed.status == .failed)
        #expect(failed.reason?.contains("boot") == true && failed.reason?.contains("VM checks failed") == true)
        #expect(try release.engine.journal.entries(workflow: failing).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: Self.sharedRoot + "/releases/micro-broken"))
        #expect(await eventually(10) { chat.value.contains { $0.contains(String(failing.prefix(4))) && $0.contains("failed") && $0.contains("test.vm") } })
        for (recipe, step, words) in [("nopkg", "packages", "baton-no-such-package"), ("badpost", "image", "exit status 7")] {
            let yaml = workflow.replacingOccurrences(of: "recipe: micro", with: "recipe: \(recipe)")
            let id = try #require(try await client.run(config.jid, node: "submit", values: ["yaml": [yaml]]).form?["id"])
            let holder = step == "packages" ? agents[1].agent : agents[2].agent
            #expect(try await eventually(300) { try finished(holder, id) != nil })
            let ended = try #require(try finished(holder, id))
            #expect(ended.status == .failed)
            #expect(ended.reason?.contains("step \(step) failed") == true && ended.reason?.contains(words) == true, "\(ended.reason ?? "")")
            #expect(await eventually(10) { chat.value.contains { $0.contains(String(id.prefix(4))) && $0.contains("failed") && $0.contains(words) } })
        }

        // The debian profile through the same agents: mmdebstrap from the snapshot, booted with
        // glideinWMS user data (workflows/debian-appliance.yaml, on this run's channel).
        let debianFile = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("workflows/debian-appliance.yaml")
        let debian = try String(contentsOf: debianFile, encoding: .utf8).replacingOccurrences(of: "channel: testing", with: "channel: \(channel)")
        let debianID = try #require(try await client.run(config.jid, node: "submit", values: ["yaml": [debian]]).form?["id"])
        #expect(try await eventually(900) { try finished(release, debianID) != nil || (try finished(tester, debianID)) != nil })
        let debianDone = try #require(try finished(release, debianID) ?? finished(tester, debianID))
        #expect(debianDone.status == .completed, "\(debianDone.reason ?? "")")
        #expect(debianDone.context["boot"]?["checks"]?.number == 2)
        listener.cancel()
        await ops.close()
        for agent in agents { try await agent.stop() }
    }
}
