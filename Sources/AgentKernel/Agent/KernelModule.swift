import Foundation
import Synchronization

/// The module every agent has: `status`, `modules` and `ping` commands.
final class KernelModule: AgentModule {
    let name = "kernel"
    private let agentRef = Mutex<WeakAgent>(WeakAgent())
    private let started = ContinuousClock.now

    private struct WeakAgent: @unchecked Sendable { weak var agent: Agent? }

    func attach(to agent: Agent) { agentRef.withLock { $0.agent = agent } }
    private var agent: Agent {
        get throws {
            guard let agent = agentRef.withLock({ $0.agent }) else { throw StanzaError(.internalServerError, "agent is shutting down") }
            return agent
        }
    }

    var commands: [AdHocCommand] {
        [
            AdHocCommand(node: "status", name: "Agent status", requiresTrust: false) { [self] _ in
                try await statusResult()
            },
            AdHocCommand(node: "modules", name: "Loaded modules") { [self] _ in
                let agent = try agent
                return CommandResult(form: DataForm(.result, title: "Modules of \(agent.settings.name)",
                                                    reported: [.init("module", label: "Module"), .init("actions", label: "Actions"), .init("commands", label: "Commands")],
                                                    items: agent.modules.map { ["module": $0.name, "actions": $0.actions.joined(separator: " "),
                                                                                "commands": $0.commands.map(\.node).joined(separator: " ")] }))
            },
            AdHocCommand(node: "ping", name: "Ping a JID", form: DataForm(.form, title: "Ping", fields: [
                .init("jid", type: .jidSingle, label: "JID to ping", required: true),
            ])) { [self] invocation in
                let agent = try agent
                let target = try invocation.required("jid")
                let start = ContinuousClock.now
                do {
                    _ = try await agent.connection.request(Stanza.iq(.get, to: target, payload: XMLElement("ping", xmlns: NS.ping)), timeout: 10)
                } catch let error as StanzaError {
                    return CommandResult(notes: [.init(.error, "\(target) answered \(error)")])
                }
                let elapsed = ContinuousClock.now - start
                return .fields("Ping", [("jid", target), ("rtt_ms", String(format: "%.2f", Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000))])
            },
        ]
    }

    var chatCommands: [ChatCommand] {
        [ChatCommand("status", summary: "this agent's state") { [self] _, _ in
            let form = try await statusResult().form!
            return form.fields.map { "\($0.variable ?? ""): \($0.values.joined(separator: ", "))" }.joined(separator: "\n")
        }]
    }

    private func statusResult() async throws -> CommandResult {
        let agent = try agent
        let peers = await agent.directory.all
        let uptime = ContinuousClock.now - started
        return .fields("Status of \(agent.settings.name)", [
            ("agent", agent.settings.name), ("jid", agent.jid), ("version", SoftwareVersion.version),
            ("uptime_s", String(uptime.components.seconds)), ("load", String(agent.load)),
            ("concurrency", String(agent.settings.concurrency)),
            ("modules", agent.modules.map(\.name).joined(separator: " ")),
            ("actions", agent.actions.joined(separator: " ")),
            ("peers_online", String(peers.filter(\.online).count)),
        ])
    }
}

/// Plain chat messages as a command line: `help`, `status`, and what modules add.
enum ChatCommands {
    /// A chat line Baton writes (answers, event lines) is marked `<automated xmlns='urn:baton:agent:0'/>`
    /// and never answered: two agents, or an agent and itself through a notify list, must not
    /// talk to each other for ever.
    static func message(to jid: String, body: String) -> XMLElement {
        var message = Stanza.message(to: jid, body: body)
        message.nodes.append(.element(XMLElement("automated", xmlns: NS.baton)))
        return message
    }

    /// Whether `message` is someone's command line: a `chat` or `normal` message with a body, not
    /// one of Baton's own lines; not `groupchat` (a room's chatter) nor `headline` (server
    /// announcements) nor `error`, which are never answered.
    static func isCommand(_ message: XMLElement) -> Bool {
        guard message.name == "message", message.child("body") != nil else { return false }
        guard message.type == nil || message.type == "chat" || message.type == "normal" else { return false }
        return message.child("automated", xmlns: NS.baton) == nil
    }

    /// When a command was sent, if the server stored it while we were away (XEP-0203): it is
    /// not run, as a `submit` or `cancel` typed hours ago may no longer be meant.
    static func delayedSince(_ message: XMLElement) -> String? {
        message.child("delay", xmlns: NS.delay).map { $0["stamp"] ?? "earlier" }
    }

    /// What an untrusted JID is told.
    static func refusal(of from: String, by agent: String) -> String {
        "Sorry, \(JID(from)?.bare ?? from) is not allowed to command \(agent)."
    }

    static func answer(_ body: String, from: String, agent: Agent) async -> String {
        let words = body.split(whereSeparator: \.isWhitespace).map(String.init)
        guard let verb = words.first?.lowercased() else { return "Say 'help' for the commands I know." }
        guard agent.settings.trusts(from) else { return refusal(of: from, by: agent.settings.name) }
        let commands = agent.modules.flatMap(\.chatCommands)
        if verb == "help" || verb == "?" {
            let lines = commands.map { "  \($0.usage.padding(toLength: 24, withPad: " ", startingAt: 0)) \($0.summary)" }
            return "Commands of \(agent.settings.name):\n  help                     this list\n" + lines.joined(separator: "\n")
        }
        guard let command = commands.first(where: { $0.name == verb }) else {
            return "Unknown command '\(verb)'. Say 'help' for the commands I know."
        }
        do {
            return try await command.run(Array(words.dropFirst()), from)
        } catch {
            return "\(verb) failed: \(error)"
        }
    }
}
