import AgentKernel
import ChildProcess
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
        var environment = ChildEnvironment.inherited
        environment["BATON_WORKFLOW"] = invocation.workflowID
        environment["BATON_STEP"] = invocation.step.id
        for (key, value) in invocation.params { environment[Self.environmentName(param: key)] = Self.environmentText(value) }
        invocation.progress("running: \(command)")
        let result = try await ProcessRunner().run(["/bin/sh", "-c", command], environment: environment,
                                                   directory: invocation.workspace, timeout: timeout)
        if result.timedOut { throw StepFailure("command timed out after \(timeout) s: \(command)", logTail: result.tail) }
        guard result.status == 0 else {
            throw StepFailure("command \(result.end): \(command)", logTail: result.tail)
        }
        return StepOutcome(outputs: ["exit_status": .number(0), "output": .string(String(result.output.suffix(4096)))],
                           logTail: result.tail)
    }

    /// `BATON_PARAM_` + the parameter's name upper-cased, anything but ASCII letters and digits
    /// made `_`: `release-tag` → `BATON_PARAM_RELEASE_TAG`.
    static func environmentName(param key: String) -> String {
        "BATON_PARAM_" + String(key.uppercased().unicodeScalars.map { scalar -> Character in
            scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar)) ? Character(scalar) : "_"
        })
    }

    /// Scalars as a shell script wants them (`3`, not `3.0`; `true`; null as empty); lists
    /// and maps as JSON, for `jq`.
    static func environmentText(_ value: JSONValue) -> String {
        switch value {
        case .null: ""
        case .array, .object: value.jsonText
        default: value.description
        }
    }
}
