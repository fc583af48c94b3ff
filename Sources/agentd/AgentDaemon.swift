import AgentKernel
import Agents
import ArgumentParser
import ChildProcess
import Foundation
import Logging
import ServiceLifecycle

@main
struct AgentDaemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "agentd", abstract: "Run one Baton agent (one JID, several modules).")

    @Option(name: .shortAndLong, help: "Agent configuration file (YAML).")
    var config: String?

    @Flag(help: "Print the module names a config may list, and exit.")
    var listModules = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"

    func run() async throws {
        if listModules {
            print(ModuleCatalog.names.joined(separator: " "))
            return
        }
        guard let config else { throw ValidationError("--config FILE is required") }
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("unknown log level '\(logLevel)'") }
        BatonLog.level = level
        let settings: AgentSettings
        let modules: [any AgentModule]
        do {
            settings = try AgentSettings.load(path: config)
            // Read: gone from the environment, so that no process this agent starts (tools,
            // containers, shell.run commands) inherits the password.
            ChildEnvironment.forgetSecrets()
            modules = try settings.modules.map { try ModuleCatalog.make($0, settings: settings) }
        } catch let error as ConfigError {
            FileHandle.standardError.write("agentd: \(error)\n".data(using: .utf8)!)
            throw ExitCode(2)
        }
        let agent: Agent
        do {
            agent = try Agent(settings: settings, modules: modules)
        } catch {
            FileHandle.standardError.write("agentd: cannot open the journal in \(settings.stateDirectory): \(error)\n".data(using: .utf8)!)
            throw ExitCode(2)
        }
        if settings.stateDirectory == AgentSettings.temporaryStateDirectory(name: settings.name) {
            agent.logger.warning("no state_dir in \(config): the journal is in \(settings.stateDirectory), which the system may clean; set state_dir to keep workflows across reboots")
        }
        // SIGTERM/SIGINT: a graceful shutdown (see AgentService), not an abrupt exit.
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: AgentService(agent))], gracefulShutdownSignals: [.sigterm, .sigint], logger: agent.logger))
        do {
            try await group.run()
        } catch let error as ConnectionError {
            agent.logger.error("\(error)")
            throw ExitCode(1)
        }
    }
}
