import AgentKernel
import ArgumentParser
import Foundation

@main
struct AgentControl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agentctl",
        abstract: "Drive Baton agents over XMPP.",
        subcommands: [Agents.self, Ping.self, Commands.self, Run.self, Directory.self])
}

struct Agents: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the agents advertised on baton/agents, with actions, load and liveness.")
    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await withClient(options) { client in
            let rows = try await client.agents()
            print(Render.table(["JID", "NAME", "ONLINE", "LOAD", "ACTIONS"], rows.map {
                [$0.description.jid, $0.description.name, $0.online ? "yes" : "no",
                 "\($0.description.load)/\($0.description.concurrency)", $0.description.actions.joined(separator: " ")]
            }))
        }
    }
}

struct Ping: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "XEP-0199 ping a JID and print the round trip.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "JID to ping (an agent's full JID, or a server).") var jid: String

    func run() async throws {
        try await withClient(options) { client in
            let rtt = try await client.ping(jid)
            print("\(jid): \(String(format: "%.2f", rtt)) ms")
        }
    }
}

struct Commands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List an agent's ad-hoc commands.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The agent's full JID.") var jid: String

    func run() async throws {
        try await withClient(options) { client in
            let commands = try await client.commands(of: jid)
            print(Render.table(["NODE", "NAME"], commands.map { [$0.node, $0.name] }))
        }
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Execute an ad-hoc command: agentctl run JID NODE [field=value ...].")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The agent's full JID.") var jid: String
    @Argument(help: "The command node, e.g. status.") var node: String
    @Argument(help: "Form values as field=value; repeat a field for several values.") var values: [String] = []

    func run() async throws {
        var submitted: [String: [String]] = [:]
        for pair in values {
            guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else {
                throw ValidationError("'\(pair)' is not field=value")
            }
            submitted[String(pair[..<eq]), default: []].append(String(pair[pair.index(after: eq)...]))
        }
        try await withClient(options) { client in
            let outcome = try await client.run(jid, node: node, values: submitted)
            if outcome.status == "executing" {
                // The command wants a form we did not fill: show it and say what is missing.
                print(Render.outcome(outcome))
                if let sessionID = outcome.sessionID {
                    _ = try? await client.continue(jid, node: node, sessionID: sessionID, action: .cancel, values: [:])
                }
                let required = outcome.form?.fields.filter(\.required).compactMap(\.variable) ?? []
                throw CLIError("'\(node)' needs form values" + (required.isEmpty ? "" : ": \(required.map { "\($0)=…" }.joined(separator: " "))"))
            }
            print(Render.outcome(outcome))
            if outcome.notes.contains(where: { $0.kind == .error }) { throw ExitCode(1) }
        }
    }
}

struct Directory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prepare the pubsub nodes and enroll agent accounts (needs owner rights on the pubsub service).",
        subcommands: [Init.self, Enroll.self])

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create baton/agents, baton/events and baton/releases.")
        @OptionGroup var options: ClientOptions
        func run() async throws {
            try await withClient(options) { client in
                try await DirectoryAdmin(connection: client.connection, service: client.pubsubService).prepare()
                print("nodes ready on \(client.pubsubService): \(DirectoryAdmin.nodes.joined(separator: ", "))")
            }
        }
    }

    struct Enroll: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let agent accounts publish on the Baton nodes.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Bare JIDs of agent accounts.") var jids: [String]
        func run() async throws {
            try await withClient(options) { client in
                try await DirectoryAdmin(connection: client.connection, service: client.pubsubService).enroll(jids)
                print("enrolled: \(jids.joined(separator: " "))")
            }
        }
    }
}
