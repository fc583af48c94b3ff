import AgentKernel
import Agents
import Foundation
import Testing

/// The container launcher driven over XMPP: ad-hoc commands and the `container.run` step.
@Suite(.serialized) final class LauncherIntegrationTests {
    let cluster: TestCluster
    let images: URL

    init() async throws {
        cluster = try await TestCluster()
        images = cluster.server.dir.appendingPathComponent("images")
        // A busybox base image, made here from the host's busybox-static.
        let root = cluster.server.dir.appendingPathComponent("basefs")
        for dir in ["bin", "etc", "tmp", "proc", "dev", "sys"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(dir), withIntermediateDirectories: true)
        }
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: root.appendingPathComponent("bin/busybox").path)
        for tool in ["sh", "echo", "cat", "sleep", "hostname", "id", "ps", "touch", "ls"] {
            try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("bin/\(tool)").path, withDestinationPath: "busybox")
        }
        try "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n".write(to: root.appendingPathComponent("etc/passwd"), atomically: true, encoding: .utf8)
        try "#!/bin/sh\necho started as $(id -u) on $(hostname) with $GREETING\nexec sleep 600\n"
            .write(to: root.appendingPathComponent("bin/start.sh"), atomically: true, encoding: .utf8)
        chmod(root.appendingPathComponent("bin/start.sh").path, 0o755)
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/bin/tar")
        tar.arguments = ["-czf", images.appendingPathComponent("basefs.tar.gz").path, "-C", root.path, "."]
        try tar.run()
        tar.waitUntilExit()
    }

    func launcherAgent() async throws -> RunningAgent {
        try await cluster.account("ctr")
        var settings = cluster.settings("ctr", modules: ["launcher"], trusted: ["ops@baton.test"])
        settings.moduleSettings["launcher"] = "image_dir: \(images.path)\nstate_dir: \(cluster.server.dir.path)/launcher"
        settings.moduleSettings["lifecycle"] = "root: \(cluster.server.dir.path)/shared"
        return try await RunningAgent(try Agent(settings: settings, modules: [try ModuleCatalog.make("launcher", settings: settings)]))
    }

    @Test func commandsOverXMPPAndContainerStep() async throws {
        let agent = try await launcherAgent()
        try cluster.server.register(user: "ops", password: "pw-ops")
        let ops = try await cluster.connect("ops")
        let client = ControlClient(connection: ops, pubsubService: "pubsub.baton.test", timeout: 60)
        let config = """
            { "name": "web", "major": "1", "minor": "01", "base_image": "basefs.tar.gz", "mounts": [],
              "startup_script": "/bin/start.sh", "startup_owner": "nobody", "startup_env": "GREETING=hi;X=${GREETING}-x" }
            """
        #expect(try await client.run(agent.jid, node: "ctr-upload", values: ["config": [config]]).form?["config"] == "web 1 01")
        let changed = config.replacingOccurrences(of: "GREETING=hi", with: "GREETING=changed")
        let duplicate = await #expect(throws: StanzaError.self) { try await client.run(agent.jid, node: "ctr-upload", values: ["config": [changed]]) }
        #expect(duplicate?.condition == .conflict)
        #expect(try await client.run(agent.jid, node: "ctr-cfginfo").form?["result"]?.contains("web") == true)

        let launched = try await client.run(agent.jid, node: "ctr-launch", values: ["name": ["web"], "major": ["1"], "minor": ["01"]])
        let instance = try #require(launched.form?["instance"])
        #expect(instance.hasPrefix("web-1.01-"))
        #expect(try await client.run(agent.jid, node: "ctr-list").form?["result"]?.contains(instance) == true)
        let logs = try await client.run(agent.jid, node: "ctr-logs", values: ["instance": [instance]]).form?["log"] ?? ""
        #expect(logs.contains("started as 65534 on \(instance) with hi"))
        let unknown = await #expect(throws: StanzaError.self) { try await client.run(agent.jid, node: "ctr-destroy", values: ["instance": ["nope"]]) }
        #expect(unknown?.condition == .itemNotFound)
        let badMount = config.replacingOccurrences(of: "\"mounts\": []", with: "\"mounts\": [\"x.tar /../etc READ\"]").replacingOccurrences(of: "\"web\"", with: "\"bad\"")
        let refused = await #expect(throws: StanzaError.self) { try await client.run(agent.jid, node: "ctr-upload", values: ["config": [badMount]]) }
        #expect(refused?.text?.contains("..") == true || refused?.text?.contains("destination") == true, "\(String(describing: refused))")

        #expect(try await client.run(agent.jid, node: "ctr-destroyall").notes.first?.text == "Success")
        #expect(try await client.run(agent.jid, node: "ctr-list").form?["result"] == "no instances")
        let mounts = try String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)
        #expect(!mounts.contains(cluster.server.dir.path + "/launcher/instances"))

        // container.run as a workflow step.
        let document = try agent.agent.engine.submit(WorkflowDocument(name: "ctr", steps: [
            .init(id: "hello", action: "container.run", with: ["image": .string(images.appendingPathComponent("basefs.tar.gz").path),
                                                               "command": .string("echo inside $(hostname) > /tmp/out; cat /tmp/out"),
                                                               "collect": .array([.string("/tmp/out")])]),
        ]), by: "ops@baton.test/t")
        #expect(try await eventually(60) { try finished(agent.agent, document.id) != nil })
        let done = try #require(try finished(agent.agent, document.id))
        #expect(done.status == .completed, "\(done.reason ?? "")")
        #expect(done.context["hello"]?["files"]?["/tmp/out"]?["sha256"] != nil)
        await ops.close()
        try await agent.stop()
    }
}
