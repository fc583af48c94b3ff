import Foundation

extension Process {
    /// `runWithCleanSignals()`, with the child killed (SIGKILL) if this process dies: a tool of
    /// a killed agent must not finish a step whose result nobody will record (the step reruns
    /// when the agent comes back).
    ///
    /// The parent-death signal (`setpriv --pdeathsig`) is sent when the *thread* that spawned
    /// the child ends, not the process, and `Process` spawns from the calling thread. A thread
    /// of Swift's pool (a libdispatch worker) ends after a few idle seconds, which killed the
    /// command of a step at random. So the spawn happens on a thread of its own that stays
    /// until the child has ended (it waits without reaping: `Process` still reaps and reports).
    ///
    /// Only the child gets the signal; what it started is in its process group (`Process`
    /// makes the child a group leader), which callers stop with `kill(-pid, …)` on a timeout or
    /// a cancel.
    public func runBoundToThisProcess() throws {
        if let setpriv = Self.setpriv, let executable = executableURL {
            arguments = ["--pdeathsig", "KILL", "--", executable.path] + (arguments ?? [])
            executableURL = URL(fileURLWithPath: setpriv)
        }
        nonisolated(unsafe) let process = self
        let started = DispatchSemaphore(value: 0)
        let failure = SpawnFailure()
        Thread.detachNewThread {
            do { try process.runWithCleanSignals() } catch {
                failure.error = error
                started.signal()
                return
            }
            let pid = process.processIdentifier
            started.signal()
            var info = siginfo_t()
            // Returns once the child is a zombie (or already reaped by Process: ECHILD).
            while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0, errno == EINTR {}
        }
        started.wait()
        if let error = failure.error { throw error }
    }

    /// `setpriv` (util-linux), if installed; without it children are not bound to the agent.
    public static let setpriv: String? = ["/usr/bin/setpriv", "/bin/setpriv"].first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// The spawning thread's error, written before the semaphore is signalled and read after.
private final class SpawnFailure: @unchecked Sendable {
    var error: Error?
}
