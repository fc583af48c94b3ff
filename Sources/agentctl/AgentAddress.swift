import AgentKernel
import Foundation

/// The JID a command line names, made ready to address: checked, and a bare JID of an agent
/// completed with the resource it is online at (agents answer at their full JID only).
enum AgentAddress {
    static func resolve(_ text: String, client: ControlClient) async throws -> String {
        guard let jid = JID(text), !text.contains(" ") else {
            throw CLIError("'\(text)' is not a JID (an agent is name@domain/resource)", status: 2)
        }
        guard jid.resource == nil, jid.local != nil else { return text }
        // Only agents advertised on baton/agents are candidates; a person's bare JID stays bare.
        let matches = (try? await client.agents())?.filter { $0.online && JID($0.description.jid)?.bare == jid.bare } ?? []
        return matches.count == 1 ? matches[0].description.jid : text
    }

    /// `body` with `jid`, its errors saying which JID answered what, and a hint when no one did.
    static func asking<T>(_ jid: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as StanzaError {
            switch error.condition {
            case .serviceUnavailable, .recipientUnavailable, .itemNotFound, .remoteServerNotFound:
                throw CLIError("\(jid): \(error) — no such agent online? `agentctl agents` lists them")
            case .forbidden, .notAuthorized, .notAllowed:
                throw CLIError("\(jid): \(error) — this account may not do that (an agent: not in its trusted; pubsub: not an owner)")
            default:
                throw CLIError("\(jid): \(error)")
            }
        }
    }
}
