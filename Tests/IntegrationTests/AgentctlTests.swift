import AgentKernel
import Foundation
import Testing

/// The agentctl binary, run as a subprocess by the trusted user ops, against agents on a real
/// Prosody: `wf submit --watch`, `wf status/trail/list/cancel`, and the shell fed a script.
@Suite(.serialized) final class AgentctlTests: Sendable {
    let cluster: TestCluster
    let dir: URL

    init() async throws {
        cluster = try await TestCluster()
        try cluster.server.register(user: "ops", password: "pw-ops")
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("agentctl-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: dir) }

    // MARK: - wf submit --watch

    @Test func watchedWorkflowCompletesWithOneLinePerStep() async throws {
        let a = try await cluster.startAgent("noop-a", modules: ["util", "shell"])
        let b = try await cluster.startAgent("noop-b", modules: ["util", "shell"])
        let file = try workflow("three", """
            workflow: three-noops
            steps:
              - { id: first, action: util.noop }
              - { id: second, action: util.noop }
              - { id: third, action: util.noop }
            """)
        let run = try await agentctl(["wf", "submit", file, "--watch"])
        #expect(run.status == 0, "\(run)")
        let stepLines = run.stdout.split(separator: "\n").filter { $0.contains("util.noop on ") && $0.contains(": done") }
        #expect(stepLines.count == 3, "\(run.stdout)")
        for step in ["first", "second", "third"] {
            #expect(stepLines.contains { $0.contains(" \(step) ") }, "no line for \(step): \(run.stdout)")
        }
        #expect(run.stdout.contains("three-noops") && run.stdout.contains("completed"), "\(run.stdout)")
        try await a.stop()
        try await b.stop()
    }

    @Test func failingShellStepExitsOneAndNamesTheStep() async throws {
        let agent = try await cluster.startAgent("shelly", modules: ["util", "shell"])
        let file = try workflow("failing", """
            workflow: doomed
            steps:
              - { id: prepare, action: util.noop }
              - { id: boom, action: shell.run, with: { command: "echo disk quota exceeded >&2; exit 3" } }
              - { id: never, action: util.noop }
            """)
        let run = try await agentctl(["wf", "submit", file, "--watch"])
        #expect(run.status == 1, "\(run)")
        #expect(run.stdout.contains("boom") && run.stdout.contains("failed"), "\(run.stdout)")
        #expect(run.stdout.contains("status 3"), "\(run.stdout)")
        // The failed step's last words, before the summary line.
        #expect(run.stdout.contains("log tail of boom (attempt 1):\n    | disk quota exceeded\ndoomed "), "\(run.stdout)")
        #expect(!run.stdout.contains("never shell.run") && !run.stdout.contains(" never util.noop on"), "\(run.stdout)")
        try await agent.stop()
    }

    /// `--param` sets the workflow's parameters for this run; a shell step sees them.
    @Test func paramsSetAtSubmissionReachAShellStep() async throws {
        let agent = try await cluster.startAgent("paramy", modules: ["shell"])
        let file = try workflow("params", """
            workflow: tagged
            params: { release-tag: v0, keep: 2 }
            steps:
              - { id: show, action: shell.run, with: { command: 'echo "tag=$BATON_PARAM_RELEASE_TAG keep=$BATON_PARAM_KEEP list=$BATON_PARAM_LIST"' } }
            """)
        let run = try await agentctl(["wf", "submit", file, "--param", "release-tag=v1.2", "--param", "list=[a, 3]", "--watch"])
        #expect(run.status == 0, "\(run)")
        let id = try #require(run.stdout.firstMatch(of: /tagged ([0-9a-f]{12}) submitted/)?.1).description
        let trail = try await agentctl(["wf", "trail", id])
        #expect(trail.stdout.contains("| tag=v1.2 keep=2 list=[\"a\",3]"), "\(trail.stdout)")
        let bad = try await agentctl(["wf", "submit", file, "--param", "release-tag"])
        #expect(bad.status == 2 && bad.stderr.contains("parameter 'release-tag': expected KEY=VALUE"), "\(bad)")
        // A bad value names the parameter, not a line of the rewritten YAML (which is not the file).
        let infinite = try await agentctl(["wf", "submit", file, "--param", "keep=.inf"])
        #expect(infinite.status == 2 && infinite.stderr.contains("parameter 'keep'") && infinite.stderr.contains("is not a number JSON can carry"),
                "\(infinite)")
        let missing = try await agentctl(["wf", "submit", file + ".nope"])
        #expect(missing.status == 2 && missing.stderr.contains("cannot read \(file).nope: "), "\(missing)")
        // A FIFO or a device is refused for what it is, before a byte is read (Foundation's
        // Data(contentsOf:) refused them too, but as "permission denied").
        #expect(mkfifo(file + ".fifo", 0o600) == 0)
        for path in [file + ".fifo", "/dev/zero"] {
            let special = try await agentctl(["wf", "submit", path], timeout: 10)
            #expect(special.status == 2 && special.stderr.contains("\(path) is not a regular file"), "\(special)")
        }
        try await agent.stop()
    }

    @Test func addressesAreCompletedCheckedAndNamedInErrors() async throws {
        let agent = try await cluster.startAgent("addressed", modules: ["util"])
        #expect(await agent.agent.directory.wait(timeout: 10) { $0.contains { $0.online && $0.jid == agent.agent.jid } })
        // The bare JID of an agent finds the resource it is online at.
        let ping = try await agentctl(["ping", "addressed@baton.test"])
        #expect(ping.status == 0 && ping.stdout.hasPrefix("addressed@baton.test/agent: "), "\(ping)")
        let nobody = try await agentctl(["run", "nobody@baton.test/x", "status"])
        #expect(nobody.status == 1 && nobody.stderr.contains("nobody@baton.test/x: service-unavailable")
                && nobody.stderr.contains("no such agent online?"), "\(nobody)")
        let notJID = try await agentctl(["ping", "not a jid"])
        #expect(notJID.status == 2 && notJID.stderr.contains("'not a jid' is not a JID"), "\(notJID)")
        let typo = try await agentctl(["agnets"])
        #expect(typo.status == 64 && typo.stderr.contains("unknown command 'agnets'"), "\(typo)")
        try await agent.stop()
    }

    // MARK: - wf status, trail, list, cancel

    @Test func statusTrailAndListOfAFinishedWorkflow() async throws {
        let a = try await cluster.startAgent("trail-a", modules: ["util", "shell"])
        let b = try await cluster.startAgent("trail-b", modules: ["util", "shell"])
        let file = try workflow("traced", """
            workflow: traced
            steps:
              - { id: one, action: util.noop }
              - { id: two, action: shell.run, with: { command: "echo hello-from-two" } }
              - { id: three, action: util.noop }
            """)
        let submitted = try await agentctl(["wf", "submit", file, "--watch"])
        #expect(submitted.status == 0, "\(submitted)")
        let id = try #require(submitted.stdout.firstMatch(of: /traced ([0-9a-f]{12}) submitted/)?.1).description
        let prefix = String(id.prefix(6))

        let status = try await agentctl(["wf", "status", prefix])
        #expect(status.status == 0, "\(status)")
        #expect(status.stdout.contains(id) && status.stdout.contains("completed"), "\(status.stdout)")
        #expect(status.stdout.contains("holder") && status.stdout.contains("finished"), "\(status.stdout)")
        #expect(status.stdout.contains("3 of 3 steps done"), "\(status.stdout)")

        let trail = try await agentctl(["wf", "trail", prefix])
        #expect(trail.status == 0, "\(trail)")
        for step in ["one", "two", "three"] {
            #expect(trail.stdout.split(separator: "\n").contains { $0.hasPrefix(step + " ") && $0.contains("done") }, "\(trail.stdout)")
        }
        #expect(trail.stdout.contains("hello-from-two"), "the log tail of step two: \(trail.stdout)")

        let list = try await agentctl(["wf", "list"])
        #expect(list.status == 0, "\(list)")
        // How it ended, and when it last changed (a time of day; a date too across midnight).
        #expect(list.stdout.split(separator: "\n").contains { $0.hasPrefix(id) && $0.contains("traced") && $0.contains("completed")
            && $0.contains(/\s(\d\d:\d\d:\d\d|\d{4}-\d\d-\d\d \d\d:\d\d)\s/) }, "\(list.stdout)")

        let missing = try await agentctl(["wf", "status", "ffffffff"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("no agent holds workflow ffffffff"), "\(missing)")
        try await a.stop()
        try await b.stop()
    }

    @Test func cancelStopsARunningWorkflow() async throws {
        let agent = try await cluster.startAgent("canceller", modules: ["util", "shell"])
        let file = try workflow("slow", """
            workflow: slow
            steps:
              - { id: nap, action: shell.run, with: { command: "sleep 20" } }
              - { id: after, action: util.noop }
            """)
        let submitted = try await agentctl(["wf", "submit", file])
        #expect(submitted.status == 0, "\(submitted)")
        let id = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(id.count == 12, "\(submitted)")
        // Wait for the step to be running, so the cancel interrupts it.
        for _ in 0..<50 {
            if try await agentctl(["wf", "status", id]).stdout.contains("running") { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let cancel = try await agentctl(["wf", "cancel", id])
        #expect(cancel.status == 0, "\(cancel)")
        #expect(cancel.stdout.contains("cancel"), "\(cancel)")
        let final = try await output(of: ["wf", "status", id], once: "cancelled")
        #expect(final.contains("cancelled"), "\(final)")
        let again = try await agentctl(["wf", "cancel", id])
        #expect(again.status != 0, "cancelling a finished workflow is refused: \(again)")
        try await agent.stop()
    }

    /// A watch whose connection drops must say so and end (a CI job must not hang), with a
    /// status of its own: the workflow goes on without it.
    @Test func watchThatLosesItsConnectionSaysSoAndExitsThree() async throws {
        let (agent, file) = try await napper("watched", workflow: "long", seconds: 5)
        let relay = try TCPRelay(to: cluster.server.port)
        async let watched = agentctl(["wf", "submit", file, "--watch"], server: "127.0.0.1:\(relay.port)")
        let listed = try await output(of: ["wf", "list"], once: "running")
        #expect(listed.contains("running"), "\(listed)")
        relay.cut()
        let run = try await watched
        #expect(run.status == 3, "\(run)")
        #expect(run.stderr.contains("lost the connection to the server while watching; long "), "\(run)")
        #expect(run.stdout.contains("completed") == false, "\(run)")
        try await agent.stop()
    }

    /// A CI job bounds its wait: --watch-timeout ends the watch with 4, the workflow going on.
    @Test func watchTimeoutEndsTheWatchNotTheWorkflow() async throws {
        let (agent, file) = try await napper("patient", workflow: "nap", seconds: 4)
        let run = try await agentctl(["wf", "submit", file, "--watch", "--watch-timeout", "1"])
        #expect(run.status == 4, "\(run)")
        #expect(run.stdout.contains("stopped watching after 1."), "\(run)")
        let id = try #require(run.stdout.split(separator: " ").dropFirst().first.map(String.init))
        let status = try await output(of: ["wf", "status", id], once: "completed")
        #expect(status.contains("completed"), "it went on: \(status)")
        let refused = try await agentctl(["wf", "submit", file, "--watch-timeout", "1"])
        #expect(refused.status == 64 && refused.stderr.contains("--watch-timeout needs --watch"), "\(refused)")
        try await agent.stop()
    }

    /// `agentctl wf submit FILE --watch | head -1`: once the reader is gone agentctl ends
    /// quietly with SIGPIPE's status, as other tools do; it used to trap on the failed write.
    @Test func aReaderThatGoesAwayEndsAgentctlQuietly() async throws {
        let agent = try await cluster.startAgent("piped", modules: ["util"])
        let file = try workflow("short", """
            workflow: short
            steps:
              - { id: a, action: util.noop }
            """)
        let run = try await agentctl(["wf", "submit", file, "--watch"], readerGone: true)
        #expect(run.status == 141, "\(run)")
        #expect(run.stderr.isEmpty, "\(run)")
        try await agent.stop()
    }

    @Test func malformedYAMLIsExitTwoWithLineAndColumn() async throws {
        let file = try workflow("broken", """
            workflow: broken
            steps:
              - { id: a, action: util.noop
              - { id: b, action: util.noop }
            """)
        let run = try await agentctl(["wf", "submit", file, "--watch"])
        #expect(run.status == 2, "\(run)")
        #expect(run.stderr.contains(file), "\(run.stderr)")
        #expect(run.stderr.contains(#/broken\.yaml:\d+:\d+: /#), "\(run.stderr)")
        #expect(run.stderr.split(separator: "\n").count == 1, "one line: \(run.stderr)")

        let unknownKey = try workflow("typo", """
            workflow: typo
            steps:
              - { id: a, acton: util.noop }
            """)
        let typo = try await agentctl(["wf", "submit", unknownKey])
        #expect(typo.status == 2)
        #expect(typo.stderr.contains("typo.yaml:3:") && typo.stderr.contains("acton"), "\(typo.stderr)")
    }

    // MARK: - The shell

    @Test func shellFedAScript() async throws {
        let agent = try await cluster.startAgent("shell-host", modules: ["util", "shell"])
        let good = try await agentctl([], stdin: """
            cd wf
            ?
            list
            cd /
            xmpp agents
            help status
            exit
            """)
        #expect(good.status == 0, "\(good)")
        #expect(!good.stdout.contains("baton:/"), "no prompt when stdin is not a terminal: \(good.stdout)")
        #expect(good.stdout.contains("submit FILE") && good.stdout.contains("trail ID"), "wf's commands listed: \(good.stdout)")
        #expect(good.stdout.contains("shell-host@baton.test/agent"), "xmpp agents: \(good.stdout)")
        #expect(good.stdout.contains("usage: status ID"), "\(good.stdout)")
        #expect(good.stderr.isEmpty, "\(good.stderr)")

        let file = try workflow("from-shell", """
            workflow: from-shell
            steps:
              - { id: only, action: util.noop }
            """)
        let bad = try await agentctl([], stdin: """
            wf
            frobnicate now
            submit \(file) watch
            status
            ctr
            list
            """)
        #expect(bad.status == 1, "\(bad)")
        #expect(bad.stderr.contains("line 2: unknown command 'frobnicate' in wf/"), "\(bad.stderr)")
        #expect(bad.stderr.contains("line 4: usage: status ID"), "\(bad.stderr)")
        #expect(bad.stderr.contains("line 6: no container launcher chosen"), "\(bad.stderr)")
        #expect(bad.stdout.contains("from-shell") && bad.stdout.contains("completed"), "the shell went on after the error: \(bad.stdout)")
        try await agent.stop()
    }

    // MARK: - Helpers

    func workflow(_ name: String, _ text: String) throws -> String {
        let path = dir.appendingPathComponent("\(name).yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    struct Run: CustomStringConvertible {
        var status: Int32
        var stdout: String
        var stderr: String
        var description: String { "exit \(status)\n--- stdout\n\(stdout)--- stderr\n\(stderr)" }
    }

    /// Runs agentctl as ops; waits off the cooperative pool (the agents under test share it).
    /// `readerGone`: nobody reads its standard output, as after `agentctl … | head -1`.
    func agentctl(_ arguments: [String], stdin: String? = nil, timeout: Double = 60, server: String? = nil,
                  readerGone: Bool = false) async throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Products.path("agentctl"))
        process.arguments = arguments
        process.environment = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
            "HOME": dir.path,
            "BATON_JID": "ops@\(cluster.server.domain)",
            "BATON_PASSWORD": "pw-ops",
            "BATON_SERVER": server ?? "\(cluster.server.host):\(cluster.server.port)",
            "BATON_TLS": "trust-any",
        ]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let input = Pipe()
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        let exited = AsyncStream<Void>.makeStream()
        process.terminationHandler = { _ in exited.continuation.yield(); exited.continuation.finish() }
        try process.run()
        if readerGone { try out.fileHandleForReading.close() }
        if let stdin {
            input.fileHandleForWriting.write(Data((stdin + "\n").utf8))
            try input.fileHandleForWriting.close()
        }
        let stdoutData = readerGone ? Task { Data() } : Self.readAll(out.fileHandleForReading)
        let stderrData = Self.readAll(err.fileHandleForReading)
        let killer = Task {
            try await Task.sleep(for: .seconds(timeout))
            process.terminate()
        }
        for await _ in exited.stream {}
        killer.cancel()
        return Run(status: process.terminationStatus, stdout: String(decoding: await stdoutData.value, as: UTF8.self),
                   stderr: String(decoding: await stderrData.value, as: UTF8.self))
    }

    /// An agent running steps, and a workflow file whose one step sleeps `seconds` on it.
    func napper(_ user: String, workflow name: String, seconds: Int) async throws -> (RunningAgent, String) {
        let agent = try await cluster.startAgent(user, modules: ["util", "shell"])
        let file = try workflow(name, "workflow: \(name)\nsteps:\n  - { id: nap, action: shell.run, with: { command: \"sleep \(seconds)\" } }\n")
        return (agent, file)
    }

    /// agentctl's output for `arguments` once it contains `word`, asking every 0.2 s for 10 s at
    /// most (the last output if it never does).
    func output(of arguments: [String], once word: String) async throws -> String {
        var text = ""
        for _ in 0..<50 {
            text = try await agentctl(arguments).stdout
            if text.contains(word) { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        return text
    }

    /// Reads a pipe to its end on a thread of its own.
    static func readAll(_ handle: FileHandle) -> Task<Data, Never> {
        let (stream, continuation) = AsyncStream<Data>.makeStream()
        Thread.detachNewThread {
            continuation.yield(handle.readDataToEndOfFile())
            continuation.finish()
        }
        return Task {
            var data = Data()
            for await chunk in stream { data.append(chunk) }
            return data
        }
    }
}
