import ApplianceEngine
import Foundation
import Logging
import Testing
@testable import AgentKernel
@testable import Agents

@Suite struct ChildEnvironmentTests {
    /// The agent's password, when given as $BATON_PASSWORD, reaches no child: not a shell.run
    /// command, not a tool (builds, post scripts), not another module's command. Every one of
    /// them inherited the agent's whole environment. The rest of it (PATH) still arrives.
    @Test func childrenDoNotSeeTheAgentsPassword() async throws {
        setenv("BATON_PASSWORD", "agent-secret", 1)
        defer { unsetenv("BATON_PASSWORD") }
        let show = "echo ${BATON_PASSWORD-unset}; echo ${PATH:+path set}"
        let workspace = FileManager.default.temporaryDirectory.appendingPathComponent("baton-env-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: workspace) }
        let step = StepInvocation(workflowID: "w", workflowName: "w", step: .init(id: "s", action: "shell.run", with: ["command": .string(show)]),
                                  params: [:], context: [:], earlierSteps: [], attempt: 1, trail: [], submitter: "ops@baton.test",
                                  workspace: workspace, logger: Logger(label: "t"), progress: { _ in })
        let shell = try await ShellModule().run(step)
        #expect(shell.outputs["output"] == .string("unset\npath set\n"))
        #expect(try Tool.run(["sh", "-c", show]).stdoutString == "unset\npath set\n")
        #expect(try await ProcessRunner().run(["/bin/sh", "-c", show], timeout: 20).output == "unset\npath set\n")
    }
}
