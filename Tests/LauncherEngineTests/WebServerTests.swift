import Foundation
import Testing
@testable import LauncherEngine

/// The course-style scenario: three busybox httpd instances (network host,
/// different ports) checked over HTTP.
@Suite(.serialized) struct WebServerTests {
    let fx = Fixtures.shared

    @Test func threeWebServersAreIsolated() async throws {
        try await withEngine { engine, state in
        let basePort = 20000 + Int.random(in: 0..<20000)
        let ports = [basePort, basePort + 1, basePort + 2]
        var names: [String] = []
        for (i, port) in ports.enumerated() {
            try await engine.upload(configJSON(minor: "0\(i + 1)",
                mounts: ["webserver.tar /webserver/ READ", "homedir.tar /webserver/home READWRITE"],
                script: "/webserver/start.sh", owner: "nobody",
                env: "PORT=\(port);LD_LIBRARY_PATH=${LD_LIBRARY_PATH}:/var/lib64;GREETING=hi-${PORT}", network: "host"),
                format: .json)
            names.append(try await engine.launch(name: "web", major: "1", minor: "0\(i + 1)").instance)
        }
        #expect(await engine.configs().count == 3)

        // A host process running as the same uid the containers use: only
        // namespaces (not permissions) keep it out of their view and reach.
        let sentinel = Process()
        sentinel.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        sentinel.arguments = ["--reuid", "65534", "--regid", "65534", "--clear-groups", "/bin/sleep", "4242"]
        sentinel.standardOutput = FileHandle.nullDevice
        sentinel.standardError = FileHandle.nullDevice
        try sentinel.run()
        // SIGKILL: the test runner hands children a blocked SIGTERM.
        defer { kill(sentinel.processIdentifier, SIGKILL); sentinel.waitUntilExit() }

        for (name, port) in zip(names, ports) {
            let url = "http://127.0.0.1:\(port)/cgi-bin"
            let host = await httpGet("\(url)/hostname")
            if host == nil { Issue.record("no HTTP answer; log: \((try? await engine.logs(name)) ?? "-")") }
            #expect(host?.trimmingCharacters(in: .whitespacesAndNewlines) == name)
            let id = await httpGet("\(url)/id") ?? ""
            #expect(id.contains("uid=65534"), "id: \(id)")
            let env = await httpGet("\(url)/env") ?? ""
            #expect(env.contains("PORT=\(port)"))
            #expect(env.contains("LD_LIBRARY_PATH=:/var/lib64"))
            #expect(env.contains("GREETING=hi-\(port)"))
            let ps = await httpGet("\(url)/ps") ?? ""
            let rows = ps.split(separator: "\n").dropFirst()
            #expect(rows.contains { $0.contains("httpd") })
            #expect(!ps.contains("4242"), "host process visible: \(ps)")
            // Only the container's own tree: small pids of its own namespace,
            // all owned by startup_owner (no host root processes).
            #expect(rows.allSatisfy { ($0.split(separator: " ").first.flatMap { Int($0) } ?? 999) < 100 }, "\(ps)")
            #expect(rows.allSatisfy { $0.split(separator: " ").dropFirst().first == "nobody" }, "\(ps)")
            #expect(rows.contains { $0.trimmingCharacters(in: .whitespaces).hasPrefix("1 ") })
            // READ mount: the write must fail and nothing may reach the layer.
            #expect(await httpGet("\(url)/writeread")?.contains("FAIL") == true)
        }
        let layers = try FileManager.default.contentsOfDirectory(atPath: "\(state)/layers").filter { !$0.hasPrefix(".") }
        #expect(layers.count == 3, "base, webserver and homedir unpacked exactly once: \(layers)")
        for l in layers {
            let probes = (FileManager.default.enumerator(atPath: "\(state)/layers/\(l)")?.allObjects as? [String] ?? [])
                .filter { $0.contains("probe-") }
            #expect(probes.isEmpty, "probe leaked into shared layer \(l): \(probes)")
        }

        // READWRITE mount: private per instance.
        #expect(await httpGet("http://127.0.0.1:\(ports[0])/cgi-bin/writerw")?.contains("OK") == true)
        let own = await httpGet("http://127.0.0.1:\(ports[0])/cgi-bin/readrw") ?? ""
        #expect(own.contains("probe-\(names[0])") && own.contains("seed.txt"))
        for p in ports.dropFirst() {
            let other = await httpGet("http://127.0.0.1:\(p)/cgi-bin/readrw") ?? "<no answer>"
            #expect(other.contains("seed.txt") && !other.contains("probe-"), "leak: \(other)")
        }
        for l in layers { #expect(!FileManager.default.fileExists(atPath: "\(state)/layers/\(l)/data/probe-\(names[0])")) }

        // Restart: a new engine on the same stateDir re-adopts the instances.
        let before = await engine.list()
        let engine2 = try await Launcher(stateDir: state, imageDir: fx.imageDir)
        let after = await engine2.list()
        #expect(after.map(\.name) == before.map(\.name))
        #expect(after.map(\.pid) == before.map(\.pid))
        #expect(after.allSatisfy { $0.status == .running })
        #expect(await engine2.configs() == engine.configs())

        // Killing everything from inside stops that instance only.
        let k = try await engine2.exec(names[0], ["kill", "-9", "-1"])
        _ = k
        #expect(await eventually { await engine2.list().first { $0.name == names[0] }?.status == .dead })
        #expect(sentinel.isRunning)
        #expect(kill(getpid(), 0) == 0)
        for p in ports.dropFirst() { #expect(await httpGet("http://127.0.0.1:\(p)/cgi-bin/hostname") != nil) }

        try await engine2.destroy(names[0])
        #expect(!FileManager.default.fileExists(atPath: "\(state)/instances/\(names[0])"))
        #expect(procMounts(under: "\(state)/instances/\(names[0])").isEmpty)
        #expect(await engine2.list().count == 2)
        #expect(try await engine2.destroyAll() == "Success")
        #expect(procMounts(under: state).isEmpty)
        #expect(instanceDirs(state).isEmpty)
        for p in ports { #expect(await httpGet("http://127.0.0.1:\(p)/cgi-bin/hostname", deadline: 0.5) == nil) }
        }
    }
}
