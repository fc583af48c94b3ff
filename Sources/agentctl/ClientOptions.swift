import AgentKernel
import ArgumentParser
import Foundation

/// Where agentctl's credentials come from: `--config FILE` (same keys as an agent config),
/// else $BATON_CONFIG, else ~/.config/baton/agentctl.yaml, else the environment
/// ($BATON_JID, $BATON_PASSWORD, $BATON_SERVER=host:port, $BATON_TLS, $BATON_PUBSUB).
struct ClientOptions: ParsableArguments {
    @Option(name: .long, help: "Credentials file (YAML: jid, password|password_file, server, tls, pubsub).")
    var config: String?

    @Option(name: .long, help: "Seconds to wait for each reply (more than 0, at most 3600).")
    var timeout: Double = 15

    func validate() throws {
        guard timeout.isFinite, timeout > 0, timeout <= 3600 else {
            throw ValidationError("--timeout must be seconds, more than 0 and at most 3600 (got \(timeout))")
        }
    }

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
        let tlsText = environment["BATON_TLS"] ?? "verify"
        // A typo must not silently mean something else (here: verify, when trust-any was meant).
        guard let tls = ConnectionSettings.TLSPolicy(rawValue: tlsText) else {
            throw CLIError("BATON_TLS '\(tlsText)' is not a TLS policy (verify or trust-any)")
        }
        return AgentSettings(name: "agentctl", connection: ConnectionSettings(jid: jid, password: password, host: host, port: port, tls: tls),
                             pubsubService: environment["BATON_PUBSUB"])
    }

    /// Connects without reconnecting: a CLI reports failures instead of retrying.
    func connect() async throws -> Session {
        var settings = try settings()
        if JID(settings.connection.jid)?.resource == nil {
            settings.connection.jid += "/agentctl-\(ProcessInfo.processInfo.processIdentifier)"
        }
        let connection = XMPPConnection(settings: settings.connection, logger: BatonLog.logger(agent: "agentctl", module: "xmpp"))
        let bound = try await connection.connect(reconnect: false)
        return Session(client: ControlClient(connection: connection, pubsubService: settings.pubsubService, timeout: timeout),
                       boundJID: bound)
    }
}

/// A failure worth one line on stderr; `status` is the exit status (2: the input was wrong).
struct CLIError: Error, CustomStringConvertible {
    let description: String
    let status: Int32
    init(_ description: String, status: Int32 = 1) {
        self.description = description
        self.status = status
    }
}

/// One line on stderr, `agentctl: ` first.
func complain(_ message: String) {
    Output.write("agentctl: \(message)\n", to: STDERR_FILENO)
}

/// Runs `body` with a connected session, turns every failure into one line on stderr and a
/// non-zero exit status, and always closes the connection.
func withSession(_ options: ClientOptions, _ body: (Session) async throws -> Void) async throws {
    BatonLog.level = .error
    do {
        let session = try await options.connect()
        do {
            try await body(session)
        } catch {
            await session.close()
            throw error
        }
        await session.close()
    } catch let error as ExitCode {
        throw error
    } catch let error as CLIError {
        complain(error.description)
        throw ExitCode(error.status)
    } catch {
        complain("\(error)")
        throw ExitCode(1)
    }
}

func withClient(_ options: ClientOptions, _ body: (ControlClient) async throws -> Void) async throws {
    try await withSession(options) { try await body($0.client) }
}
