import Agents
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

    /// And they start with no signal blocked: a shell's own SIGTERM trap runs.
    @Test func toolsReceiveSignals() async throws {
        let result = try await ProcessRunner().run(
            ["/bin/sh", "-c", "trap 'echo got TERM; exit 3' TERM; kill -TERM $$; sleep 5; echo missed"], timeout: 20)
        #expect(result.output == "got TERM\n")
        #expect(result.status == 3)
    }
}
