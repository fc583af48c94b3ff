import AgentKernel
import Agents
import ApplianceEngine
import Foundation
import Testing

@Suite struct ProcessRunnerTests {
    /// The agent ignores SIGPIPE; a tool must not inherit that (it would report "Broken pipe"
    /// instead of ending quietly when its reader is done).
    @Test func toolsGetTheDefaultSIGPIPE() async throws {
        signal(SIGPIPE, SIG_IGN)  // as every agent does (StropheSession)
        let result = try await ProcessRunner().run(["/bin/sh", "-c", "yes | head -n 1"], timeout: 20)
        #expect(result.status == 0)
        #expect(result.output == "y\n")
    }

    /// A command's output pipe is closed after it, not left open by Foundation's Process: an
    /// agent passing 1024 descriptors has libstrophe's select() abort it.
    @Test func commandsLeaveNoDescriptorsOpen() async throws {
        func open() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0 }
        _ = try await ProcessRunner().run(["/bin/true"], timeout: 20)
        let before = open()
        for _ in 0..<50 { _ = try await ProcessRunner().run(["/bin/sh", "-c", "echo out; echo err >&2"], timeout: 20) }
        #expect(open() - before < 15, "\(open() - before) more descriptors open after 50 commands")
    }

    /// And they start with no signal blocked: a shell's own SIGTERM trap runs.
    @Test func toolsReceiveSignals() async throws {
        let result = try await ProcessRunner().run(
            ["/bin/sh", "-c", "trap 'echo got TERM; exit 3' TERM; kill -TERM $$; sleep 5; echo missed"], timeout: 20)
        #expect(result.output == "got TERM\n")
        #expect(result.status == 3)
    }

    /// A tool's last words (on stderr, just before it exits) are in its output every time:
    /// they once raced the end of the run and went missing from a failed step's log tail.
    @Test func theLastChunkBeforeExitIsNeverLost() async throws {
        // Eight at a time: the loss needed a busy machine (seen under the full test suite).
        let missing = try await withThrowingTaskGroup(of: Int.self) { group in
            for lane in 0..<8 {
                group.addTask {
                    var missing = 0
                    for round in 0..<60 {
                        let words = "last words \(lane).\(round)"
                        let result = try await ProcessRunner().run(["/bin/sh", "-c", "echo out; echo \(words) >&2; exit 3"], timeout: 20)
                        if result.output != "out\n\(words)\n" || result.status != 3 { missing += 1 }
                    }
                    return missing
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(missing == 0)
    }

    /// A background job left running does not hold the step: output is read for a moment
    /// after the command ended, then what it left in its process group is stopped, and the
    /// log says so. The command's own status stands.
    @Test func aBackgroundJobLeftRunningDoesNotHangTheRun() async throws {
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("baton-left-\(UUID().uuidString)").path
        let started = ContinuousClock.now
        let result = try await ProcessRunner().run(
            ["/bin/sh", "-c", "echo before; (sleep 4; touch \(marker); echo late) & echo after; exit 5"], timeout: 60)
        #expect(ContinuousClock.now - started < .seconds(4))
        #expect(result.status == 5)
        #expect(result.output.hasPrefix("before\nafter\n") && result.output.contains("left processes running; they were stopped"), "\(result.output)")
        try await Task.sleep(for: .seconds(3))  // past the job's 4 s: it would have left its mark
        #expect(!FileManager.default.fileExists(atPath: marker), "the job left behind was not stopped")
        try? FileManager.default.removeItem(atPath: marker)
    }

    /// A cancelled run (a cancelled step) kills the command and returns at once, with what it
    /// printed; it once read the status of a command still being killed and crashed.
    @Test func cancellingARunKillsTheCommandAndReturns() async throws {
        let started = ContinuousClock.now
        let run = Task { try await ProcessRunner().run(["/bin/sh", "-c", "echo started; sleep 30"], timeout: 60) }
        try await Task.sleep(for: .milliseconds(300))
        run.cancel()
        let result = try await run.value
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(result.output == "started\n")
        #expect(result.status != 0)
    }

    /// A command outlives the thread that started it. Linux sends the parent-death signal
    /// (`setpriv --pdeathsig`) when the spawning *thread* ends, and the threads of Swift's pool
    /// end after a few idle seconds: here every job runs on a thread of its own that ends
    /// shortly after, so a command spawned from the calling thread was killed at once.
    @Test func aCommandOutlivesTheThreadThatStartedIt() async throws {
        let result = try await withTaskExecutorPreference(ThreadPerJobExecutor()) {
            try await ProcessRunner().run(["/bin/sh", "-c", "sleep 1; echo slept"], timeout: 20)
        }
        #expect(result.status == 0)
        #expect(result.output == "slept\n")
    }

    /// A command killed by a signal says so (shell.run's message is "command killed by SIGKILL").
    @Test func aSignalIsReportedAsOne() async throws {
        let result = try await ProcessRunner().run(["/bin/sh", "-c", "kill -KILL $$"], timeout: 20)
        #expect("\(result.end)" == "killed by SIGKILL")
        #expect(result.status == 137)
    }

    /// Past `maxOutput`, the end is kept.
    @Test func longOutputKeepsItsEnd() async throws {
        let result = try await ProcessRunner().run(["/bin/sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo END"],
                                                   timeout: 20, maxOutput: 1000)
        #expect(result.output.utf8.count == 1000)
        #expect(result.output.hasSuffix("xxx\nEND\n"))
    }
}

/// `offloaded` work (builds, snapshots, VM tests) and the tools it runs.
@Suite struct OffloadedTests {
    /// Cancelling the step's task (a workflow cancel, its time limit) kills the tool the
    /// offloaded work is running, with what that started, and the step returns promptly; the
    /// task's cancel used not to reach the thread, and the step ran to its end.
    @Test func cancellingTheTaskStopsTheToolAndItsChildren() async throws {
        let pidFile = FileManager.default.temporaryDirectory.appendingPathComponent("baton-job-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: pidFile) }
        let started = ContinuousClock.now
        let step = Task {
            try await offloaded { try Tool.run(["sh", "-c", "sleep 30 & echo $! > \(pidFile.path); sleep 30; wait"]) }
        }
        // Cancelled once the background job has started.
        while !FileManager.default.fileExists(atPath: pidFile.path), ContinuousClock.now - started < .seconds(10) {
            try await Task.sleep(for: .milliseconds(20))
        }
        step.cancel()
        let result = await step.result
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(throws: ToolError.self) { try result.get() }
        let job = try #require(Int32(String(decoding: try Data(contentsOf: pidFile), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)))
        let stat = (try? String(contentsOfFile: "/proc/\(job)/stat", encoding: .utf8)) ?? ""
        #expect(stat.isEmpty || stat.contains(") Z "), "the background job \(job) still runs")
    }
}

/// Runs each job on a new thread that ends soon after the job is done (or suspends), as an
/// idle thread of the pool does. It lingers a little first: a thread that ended before the
/// child had set its parent-death signal (setpriv does so after the spawn) would not kill it.
final class ThreadPerJobExecutor: TaskExecutor {
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        Thread.detachNewThread {
            job.runSynchronously(on: executor)
            usleep(300_000)
        }
    }
}
