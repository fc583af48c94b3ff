import Foundation

extension Process {
    /// `run()`, with the child starting with no signal blocked.
    ///
    /// A child inherits the signal mask of the thread that spawns it, and `Process` does not
    /// reset it. The threads of Swift's concurrency pool (libdispatch workers) block nearly
    /// every signal, so a child started from async code came up deaf to SIGTERM, SIGINT,
    /// SIGHUP and SIGALRM: Prosody ignored the sandbox's stop and its watchdog (servers were
    /// left behind, each stop waited 5 s for its SIGKILL), and a tool timed out with SIGTERM
    /// could not clean up. The mask is cleared on this thread for the spawn only.
    public func runWithSignalsUnblocked() throws {
        var none = sigset_t(), previous = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        try run()
    }
}
