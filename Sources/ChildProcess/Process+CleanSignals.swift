import Foundation

extension Process {
    /// `run()`, with the child starting from clean signal state: nothing blocked, SIGPIPE at
    /// its default.
    ///
    /// A child inherits the signal mask of the thread that spawns it, and `Process` does not
    /// reset it. The threads of Swift's concurrency pool (libdispatch workers) block nearly
    /// every signal, so a child started from async code came up deaf to SIGTERM, SIGINT,
    /// SIGHUP and SIGALRM: Prosody ignored the sandbox's stop and its watchdog (servers were
    /// left behind, each stop waited 5 s for its SIGKILL), and a tool timed out with SIGTERM
    /// could not clean up. The mask is cleared on this thread for the spawn only.
    ///
    /// Our processes ignore SIGPIPE (a write to a closed socket must be an error, not death),
    /// children inherit that too, and `Process` cannot undo it per child: `yes | head -1` in a
    /// tool's shell ended in "Broken pipe" errors. coreutils' env (8.31 on) restores it, so the
    /// child is started through it where it can.
    public func runWithCleanSignals() throws {
        if let env = Self.envRestoringSIGPIPE, let executable = executableURL {
            arguments = ["--default-signal=PIPE", "--", executable.path] + (arguments ?? [])
            executableURL = env
        }
        var none = sigset_t(), previous = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        try run()
    }

    /// `/usr/bin/env` if it understands `--default-signal`, found out once.
    private static let envRestoringSIGPIPE: URL? = {
        let env = URL(fileURLWithPath: "/usr/bin/env")
        let probe = Process()
        probe.executableURL = env
        probe.arguments = ["--default-signal=PIPE", "true"]
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        guard (try? probe.run()) != nil else { return nil }
        probe.waitUntilExit()
        return probe.terminationStatus == 0 ? env : nil
    }()
}
