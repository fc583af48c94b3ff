import AgentKernel
import Foundation

/// Runs one ad-hoc command and prints what came back — for `agentctl run`, the shell's
/// `xmpp/run` and the `ctr/` commands.
struct CommandRunner {
    let client: ControlClient

    /// `field=value` words as form values; a field given twice gets both values.
    static func values(_ pairs: [String]) throws -> [String: [String]] {
        var values: [String: [String]] = [:]
        for pair in pairs {
            guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else {
                throw CLIError("'\(pair)' is not field=value", status: 2)
            }
            values[String(pair[..<eq]), default: []].append(String(pair[pair.index(after: eq)...]))
        }
        return values
    }

    /// Executes `node` on `jid` with `values`; a command that still wants a form, or answers
    /// with an error note, is a failure.
    func run(_ jid: String, node: String, values: [String: [String]]) async throws {
        let outcome = try await client.run(jid, node: node, values: values)
        let rendered = Render.outcome(outcome)
        if !rendered.isEmpty { print(rendered) }
        if outcome.status == "executing" {
            // The command wants a form we did not fill: say what is missing, and end the session.
            if let sessionID = outcome.sessionID {
                _ = try? await client.continue(jid, node: node, sessionID: sessionID, action: .cancel, values: [:])
            }
            let required = outcome.form?.fields.filter(\.required).compactMap(\.variable) ?? []
            throw CLIError("'\(node)' needs form values" + (required.isEmpty ? "" : ": \(required.map { "\($0)=…" }.joined(separator: " "))"))
        }
        if let error = outcome.notes.first(where: { $0.kind == .error }) { throw CLIError("\(node) on \(jid): \(error.text)") }
    }
}
