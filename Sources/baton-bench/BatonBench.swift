import AgentKernel
import Agents
import ArgumentParser
import Foundation
import ProsodySandbox
import Logging

@main
struct BatonBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baton-bench",
        abstract: "Measures Baton against bare libstrophe on a throwaway Prosody and prints one table.",
        discussion: """
        Starts its own Prosody sandbox (scripts/prosody-sandbox) on 127.0.0.1, then measures:
        IQ round trip and pipelined IQ throughput (Baton vs a bare libstrophe loop), pubsub
        discovery latency, agentd start-to-online time and RSS, and workflow hand-off latency and
        rate — with the pipeline's agents in this process (they share one thread pool) and again
        with the middle four as processes of their own, as agentd runs them. Everything is stopped
        at the end, on failure and on SIGINT/SIGTERM.
        """)

    @Flag(help: "Small sample sizes, for a CI smoke run.")
    var quick = false

    @Option(help: "Rounds for the pubsub and single-workflow measurements (default 50, --quick 10).")
    var rounds: Int?

    @Option(help: "Pings for the round-trip measurement (default 2000, --quick 300).")
    var pings: Int?

    @Option(help: "Pings for the throughput measurement (default 5000, --quick 1000).")
    var throughputPings: Int?

    @Option(help: "Pings in flight for the throughput measurement.")
    var window = 32

    @Option(help: "agentd starts to time (default 10, --quick 3).")
    var agentdRuns: Int?

    @Option(help: "Workflows in flight for the hand-off rate (default 200, --quick 40).")
    var workflows: Int?

    @Option(help: "Step concurrency of each pipeline agent (agentd's default is 1).")
    var concurrency = 1

    @Option(help: "Experiment: reconfigure baton/events to keep at most this many items before the hand-off runs (default: as DirectoryAdmin creates it).")
    var eventsMaxItems: Int?

    @Flag(help: "Experiment: reconfigure baton/events not to persist items (pubsub#persist_items=false) before the hand-off runs.")
    var eventsNoPersist = false

    @Option(help: "Log level of the in-process agents (agentd children log at info to a file).")
    var logLevel = "warning"

    @Option(help: "Measurements to run, comma-separated from a,b,c,d,e,f (a and b run together; f is e across processes); for investigation.")
    var phases = "a,b,c,d,e,f"

    // A pipeline agent in a process of its own, started by phase f (this same binary).
    @Option(help: .hidden) var serveAgent: String?
    @Option(help: .hidden) var serveAction: String?
    @Option(help: .hidden) var servePort: Int?
    @Option(help: .hidden) var serveState: String?

    @Option(help: "Path of scripts/prosody-sandbox (default: found from this source file).")
    var sandboxScript: String?

    @Option(help: "Path of the agentd binary (default: next to baton-bench).")
    var agentd: String?

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("unknown log level '\(logLevel)'") }
        BatonLog.level = level
        if let user = serveAgent, let action = serveAction, let port = servePort, let state = serveState {
            try await PipelineProcess.serve(user: user, action: action, port: port, stateDirectory: state, concurrency: max(1, concurrency))
            return
        }
        let config = BenchConfig(
            rounds: max(1, rounds ?? (quick ? 10 : 50)),
            pings: max(10, pings ?? (quick ? 300 : 2000)),
            throughputPings: max(window, throughputPings ?? (quick ? 1000 : 5000)),
            window: max(1, window),
            agentdRuns: max(1, agentdRuns ?? (quick ? 3 : 10)),
            workflows: max(1, workflows ?? (quick ? 40 : 200)),
            concurrency: max(1, concurrency),
            eventsMaxItems: eventsMaxItems,
            eventsNoPersist: eventsNoPersist,
            phases: Set(phases.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }),
            agentd: agentd ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("agentd").path)
        Cleanup.shared.installSignalHandlers()
        let script = sandboxScript.map { URL(fileURLWithPath: $0) } ?? ProsodyServer.defaultScript
        let sandbox = try ProsodyServer.start(script: script, prefix: "baton-bench")
        Cleanup.shared.adopt(sandbox)
        log("Prosody sandbox on 127.0.0.1:\(sandbox.port) in \(sandbox.dir.path)")
        let bench = Bench(sandbox: sandbox, config: config)
        do {
            let report = try await bench.runAll()
            await bench.stopAgents()
            Cleanup.shared.run()
            report.print(config: config)
        } catch {
            log("failed: \(error)")
            await bench.stopAgents()
            Cleanup.shared.run()
            throw ExitCode(1)
        }
    }
}

func log(_ text: String) {
    FileHandle.standardError.write("[bench] \(text)\n".data(using: .utf8)!)
}

struct BenchConfig: Sendable {
    var rounds: Int
    var pings: Int
    var throughputPings: Int
    var window: Int
    var agentdRuns: Int
    var workflows: Int
    var concurrency: Int
    var eventsMaxItems: Int?
    var eventsNoPersist: Bool
    var phases: Set<String>
    var agentd: String
    func runs(_ phase: String) -> Bool { phases.contains(phase) }
}
