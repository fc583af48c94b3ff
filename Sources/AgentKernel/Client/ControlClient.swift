import Foundation

/// What agentctl (or any controlling program) does against agents: list them, ping them,
/// list and run their commands. Kept in the kernel so tests and the CLI share it.
public struct ControlClient: Sendable {
    public let connection: XMPPConnection
    public let pubsubService: String
    public let timeout: Double

    public init(connection: XMPPConnection, pubsubService: String, timeout: Double = 15) {
        self.connection = connection
        self.pubsubService = pubsubService
        self.timeout = timeout
    }

    public struct AgentRow: Sendable {
        public var description: AgentDescription
        public var online: Bool
        public var rttMillis: Double?
    }

    /// The agents advertised on `baton/agents`, each pinged to tell live ones from stale items.
    public func agents() async throws -> [AgentRow] {
        let items = try await PubSubClient(connection: connection, service: pubsubService).items(node: Agent.agentsNode)
        let descriptions = items.compactMap { AgentDescription(jid: $0.id, element: $0.payload) }
        return await withTaskGroup(of: AgentRow.self) { group in
            for description in descriptions {
                group.addTask {
                    let rtt = try? await ping(description.jid, timeout: 3)
                    return AgentRow(description: description, online: rtt != nil, rttMillis: rtt)
                }
            }
            var rows: [AgentRow] = []
            for await row in group { rows.append(row) }
            return rows.sorted { $0.description.jid < $1.description.jid }
        }
    }

    /// XEP-0199 ping; returns the round trip in milliseconds.
    public func ping(_ jid: String, timeout: Double? = nil) async throws -> Double {
        let start = ContinuousClock.now
        _ = try await connection.request(Stanza.iq(.get, to: jid, payload: XMLElement("ping", xmlns: NS.ping)), timeout: timeout ?? self.timeout)
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
    }

    /// The agent's XEP-0050 commands as (node, name).
    public func commands(of jid: String) async throws -> [(node: String, name: String)] {
        let reply = try await connection.request(Stanza.iq(.get, to: jid, payload: XMLElement("query", xmlns: NS.discoItems, ["node": NS.commands])), timeout: timeout)
        return (reply.child("query")?.children("item") ?? []).compactMap { item in
            item["node"].map { ($0, item["name"] ?? $0) }
        }
    }

    public struct CommandOutcome: Sendable {
        public var status: String
        public var sessionID: String?
        public var form: DataForm?
        public var notes: [AdHocStanzas.Note]
    }

    /// Executes `node` on `jid`. With `values`, they are submitted with the execute request, so
    /// a command completes in one round trip; without, the first form (if any) comes back.
    public func run(_ jid: String, node: String, values: [String: [String]] = [:]) async throws -> CommandOutcome {
        let form = values.isEmpty ? nil : DataForm(.submit, fields: values.sorted { $0.key < $1.key }.map { DataForm.Field($0.key, type: nil, values: $0.value) })
        return try await send(jid, AdHocStanzas.request(node: node, action: .execute, form: form))
    }

    /// Continues a multi-stage command session.
    public func `continue`(_ jid: String, node: String, sessionID: String, action: AdHocStanzas.Action, values: [String: [String]]) async throws -> CommandOutcome {
        let form = DataForm(.submit, fields: values.sorted { $0.key < $1.key }.map { DataForm.Field($0.key, type: nil, values: $0.value) })
        return try await send(jid, AdHocStanzas.request(node: node, action: action, sessionID: sessionID, form: action == .cancel ? nil : form))
    }

    private func send(_ jid: String, _ command: XMLElement) async throws -> CommandOutcome {
        let reply = try await connection.request(Stanza.iq(.set, to: jid, payload: command), timeout: timeout)
        guard let result = reply.child("command", xmlns: NS.commands) else {
            throw StanzaError(.undefinedCondition, "\(jid) answered without a <command/> element")
        }
        return CommandOutcome(status: result["status"] ?? "?", sessionID: result["sessionid"],
                              form: try result.child("x", xmlns: NS.dataForms).map { try DataForm(parsing: $0) },
                              notes: result.children("note").map { AdHocStanzas.Note(.init(rawValue: $0["type"] ?? "info") ?? .info, $0.text) })
    }
}
