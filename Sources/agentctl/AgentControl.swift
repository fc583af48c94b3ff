import AgentKernel
import ArgumentParser
import Foundation

@main
struct AgentControl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agentctl",
        abstract: "Drive Baton agents over XMPP.",
        subcommands: [Agents.self, Ping.self, Commands.self, Run.self, Directory.self, Workflow.self, Release.self, Shell.self],
        defaultSubcommand: Shell.self)

    static func main() async {
        // With the shell as the default command, a mistyped command would otherwise be reported
        // as an unexpected argument of `shell`.
        let names = configuration.subcommands.map { $0._commandName } + ["help"]
        if CommandLine.arguments.count > 1, let first = CommandLine.arguments.dropFirst().first,
           !first.hasPrefix("-"), !names.contains(first) {
            Output.write("agentctl: unknown command '\(first)' (commands: \(names.dropLast().joined(separator: ", ")); none starts the shell)\n", to: STDERR_FILENO)
            Foundation.exit(64)
        }
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
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
    @Argument(help: "JID to ping: an agent (a bare JID is completed with the resource it is online at), or a server.") var jid: String

    func run() async throws {
        try await withClient(options) { client in
            let target = try await AgentAddress.resolve(jid, client: client)
            let rtt = try await AgentAddress.asking(target) { try await client.ping(target) }
            print("\(target): \(String(format: "%.2f", rtt)) ms")
        }
    }
}

struct Commands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List an agent's ad-hoc commands.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The agent's JID (a bare JID is completed with the resource it is online at).") var jid: String

    func run() async throws {
        try await withClient(options) { client in
            let target = try await AgentAddress.resolve(jid, client: client)
            let commands = try await AgentAddress.asking(target) { try await client.commands(of: target) }
            print(Render.table(["NODE", "NAME"], commands.map { [$0.node, $0.name] }))
        }
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Execute an ad-hoc command: agentctl run JID NODE [field=value ...].")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The agent's JID (a bare JID is completed with the resource it is online at).") var jid: String
    @Argument(help: "The command node, e.g. status.") var node: String
    @Argument(help: "Form values as field=value; repeat a field for several values.") var values: [String] = []

    func run() async throws {
        let submitted = try CommandRunner.values(values)
        try await withClient(options) { client in
            let target = try await AgentAddress.resolve(jid, client: client)
            try await AgentAddress.asking(target) { try await CommandRunner(client: client).run(target, node: node, values: submitted) }
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
                try await AgentAddress.asking(client.pubsubService) {
                    try await DirectoryAdmin(connection: client.connection, service: client.pubsubService).prepare()
                }
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
                try await AgentAddress.asking(client.pubsubService) {
                    try await DirectoryAdmin(connection: client.connection, service: client.pubsubService).enroll(jids)
                }
                print("enrolled: \(jids.joined(separator: " "))")
            }
        }
    }
}
