import AgentKernel
import ArgumentParser
import Foundation

/// `agentctl wf …`: workflows, asked of the agents themselves (there is no orchestrator).
struct Workflow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wf",
        abstract: "Submit, follow, list, locate and cancel workflows.",
        subcommands: [Submit.self, List.self, Status.self, Trail.self, Cancel.self])

    struct Submit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a workflow file and hand it to an agent; print its id (with --watch, follow it to the end).",
            discussion: "Exit status: 0 completed (or submitted), 1 failed/cancelled/parked after a failure, 2 invalid file, "
                + "3 connection lost while watching, 4 --watch-timeout reached (the workflow goes on), 130 interrupted.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The workflow's YAML file.") var file: String
        @Option(name: .long, help: "The agent to submit to (default: the least loaded online agent).") var to: String?
        @Flag(name: .long, help: "Follow the workflow's events until it ends.") var watch = false
        @Option(name: .customLong("watch-timeout"), help: ArgumentHelp("With --watch: stop watching after this long (the workflow goes on; exit status 4).", valueName: "SECONDS"))
        var watchTimeout: Double?
        @Option(name: .customLong("param"), help: ArgumentHelp(
            "Set a workflow parameter (repeatable); VALUE is read as YAML: 3, true, \"1.0\".", valueName: "KEY=VALUE"))
        var params: [String] = []

        func validate() throws {
            if let timeout = watchTimeout {
                guard watch else { throw ValidationError("--watch-timeout needs --watch") }
                guard timeout > 0, timeout.isFinite else { throw ValidationError("--watch-timeout must be a number of seconds above 0") }
            }
        }

        func run() async throws {
            // Checked before connecting: a typo needs no server.
            do { _ = try WorkflowOperations.validate(file: file, params: params) } catch let error as CLIError {
                complain(error.description)
                throw ExitCode(error.status)
            }
            Interrupts.install()
            var status: Int32 = 0
            try await withSession(options) { session in
                status = try await WorkflowOperations(session: session).submit(file: file, params: params, to: to, watch: watch, timeout: watchTimeout)
            }
            if status != 0 { throw ExitCode(status) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Workflows the online agents hold or handed on, latest change first: id, name, step, state (how it ended, once finished), updated, holder.")
        @OptionGroup var options: ClientOptions
        @Option(help: "Show at most this many workflows, latest first (0: all).") var limit = 20
        func validate() throws {
            guard limit >= 0 else { throw ValidationError("--limit must be 0 (all) or more") }
        }
        func run() async throws {
            try await withSession(options) { try await WorkflowOperations(session: $0).list(limit: limit) }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Who holds a workflow now, and its state.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Workflow id, or its first characters.") var id: String
        func run() async throws {
            try await withSession(options) { try await WorkflowOperations(session: $0).status(id) }
        }
    }

    struct Trail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Each step of a workflow: agent, start, end, status, duration, error, log tail.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Workflow id, or its first characters.") var id: String
        func run() async throws {
            try await withSession(options) { try await WorkflowOperations(session: $0).trail(id) }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a workflow on the agent that holds it.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Workflow id, or its first characters.") var id: String
        @Flag(help: "Also end a hand-off that waits for an agent that may hold it (when that agent is gone for good).") var force = false
        func run() async throws {
            try await withSession(options) { try await WorkflowOperations(session: $0).cancel(id, force: force) }
        }
    }
}
