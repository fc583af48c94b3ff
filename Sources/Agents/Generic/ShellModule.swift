import AgentKernel
import Foundation

/// `shell.run`: runs a command in the step's workspace with a timeout; output captured, its
/// tail kept in the trail.
///
/// ```yaml
/// - { id: hello, action: shell.run, with: { command: "echo hi > out.txt", timeout: 30 } }
/// ```
public struct ShellModule: StepRunner {
    public let name = "shell"
    public var actions: [String] { ["shell.run"] }
    public init() {}

    public func run(_ invocation: StepInvocation) async throws -> StepOutcome {
        guard let command = invocation.argument("command")?.string, !command.isEmpty else {
            throw StepFailure("shell.run needs 'command' (a shell command line)")
        }
        let timeout = invocation.argument("timeout")?.number ?? 300
        var environment = ProcessInfo.processInfo.environment
        environment["BATON_WORKFLOW"] = invocation.workflowID
        environment["BATON_STEP"] = invocation.step.id
        invocation.progress("running: \(command)")
        let result = try await ProcessRunner().run(["/bin/sh", "-c", command], environment: environment,
                                                   directory: invocation.workspace, timeout: timeout)
        if result.timedOut { throw StepFailure("command timed out after \(timeout) s: \(command)", logTail: result.tail) }
        guard result.status == 0 else {
            throw StepFailure("command exited with status \(result.status): \(command)", logTail: result.tail)
        }
        return StepOutcome(outputs: ["exit_status": .number(0), "output": .string(String(result.output.suffix(4096)))],
                           logTail: result.tail)
    }
}
