import AgentKernel
import ArgumentParser
import Foundation

/// Where agentctl's credentials come from: `--config FILE` (same keys as an agent config),
/// else $BATON_CONFIG, else ~/.config/baton/agentctl.yaml, else the environment
/// ($BATON_JID, $BATON_PASSWORD, $BATON_SERVER=host:port, $BATON_TLS, $BATON_PUBSUB).
struct ClientOptions: ParsableArguments {
    @Option(name: .long, help: "Credentials file (YAML: jid, password|password_file, server, tls, pubsub).")
    var config: String?

    @Option(name: .long, help: "Seconds to wait for each reply.")
    var timeout: Double = 15

    func settings() throws -> AgentSettings {
        let environment = ProcessInfo.processInfo.environment
        let defaultFile = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".config/baton/agentctl.yaml").path
        if let path = config ?? environment["BATON_CONFIG"] ?? (FileManager.default.fileExists(atPath: defaultFile) ? defaultFile : nil) {
            return try AgentSettings.load(path: path, environment: environment)
        }
        guard let jid = environment["BATON_JID"], let password = environment["BATON_PASSWORD"] else {
            throw CLIError("no credentials: pass --config FILE, or set BATON_JID and BATON_PASSWORD (and BATON_SERVER=host:port)")
        }
        var host: String? = nil, port: UInt16? = nil
        if let server = environment["BATON_SERVER"] {
            let parts = server.split(separator: ":")
            host = parts.first.map(String.init)
            if parts.count > 1 {
                guard let p = UInt16(parts[1]) else { throw CLIError("BATON_SERVER port '\(parts[1])' is not a number") }
                port = p
            }
        }
        let tls = ConnectionSettings.TLSPolicy(rawValue: environment["BATON_TLS"] ?? "verify") ?? .verify
        return AgentSettings(name: "agentctl", connection: ConnectionSettings(jid: jid, password: password, host: host, port: port, tls: tls),
                             pubsubService: environment["BATON_PUBSUB"])
    }

    /// Connects without reconnecting: a CLI reports failures instead of retrying.
    func connect() async throws -> (ControlClient, XMPPConnection) {
        var settings = try settings()
        if JID(settings.connection.jid)?.resource == nil {
            settings.connection.jid += "/agentctl-\(ProcessInfo.processInfo.processIdentifier)"
        }
        let connection = XMPPConnection(settings: settings.connection, logger: BatonLog.logger(agent: "agentctl", module: "xmpp"))
        try await connection.connect(reconnect: false)
        return (ControlClient(connection: connection, pubsubService: settings.pubsubService, timeout: timeout), connection)
    }
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body` with a connected client, turns every failure into one line on stderr and a
/// non-zero exit status, and always closes the connection.
func withClient(_ options: ClientOptions, _ body: (ControlClient) async throws -> Void) async throws {
    BatonLog.level = .error
    do {
        let (client, connection) = try await options.connect()
        do {
            try await body(client)
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
    } catch let error as ExitCode {
        throw error
    } catch let error as StanzaError {
        FileHandle.standardError.write("agentctl: \(error)\n".data(using: .utf8)!)
        throw ExitCode(1)
    } catch {
        FileHandle.standardError.write("agentctl: \(error)\n".data(using: .utf8)!)
        throw ExitCode(1)
    }
}
