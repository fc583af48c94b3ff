import Foundation
import Synchronization
import Testing
@testable import LauncherEngine

@Suite struct SubprocessTests {
    /// A cancel of the calling task (a cancelled build step running a post script in a
    /// container) stops the command as a timeout does — the hook first (runc kill), then
    /// SIGKILL — and the run returns at once; it used to wait for the command to finish.
    @Test func aCancelStopsTheCommand() async throws {
        let hookRan = Mutex(false)
        let started = ContinuousClock.now
        let run = Task { try await Subprocess.run(["/bin/sleep", "30"], stopOnCancel: true, onTimeout: { hookRan.withLock { $0 = true } }) }
        try await Task.sleep(for: .milliseconds(300))  // running by then
        run.cancel()
        let result = try await run.value
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(result.status != 0)
        #expect(hookRan.withLock { $0 })
    }

    /// Without `stopOnCancel` a cancelled task's command runs to its end: the teardown of a
    /// cancelled container (`runc delete`) runs in that same task.
    @Test func cleanupInACancelledTaskStillRuns() async throws {
        let run = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await Subprocess.run(["/bin/sh", "-c", "sleep 0.2; echo cleaned"])
        }
        #expect(try await run.value.output == "cleaned\n")
    }
}
