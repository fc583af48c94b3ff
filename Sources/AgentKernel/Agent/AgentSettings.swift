import Foundation
import Yams

/// An agent's configuration file (YAML), as `agentd --config FILE` reads it.
///
/// ```yaml
/// name: build                       # agent name in logs and in the directory
/// jid: build@baton.test/agent
/// password_file: /etc/baton/build.password   # or `password:`, or $BATON_PASSWORD
/// server: { host: 127.0.0.1, port: 5222, stream_management: false }   # XEP-0198 resumption, off by default
/// tls: { policy: verify, ca_file: /etc/ssl/certs/ca.pem }   # policy: verify | trust-any
/// pubsub: pubsub.baton.test          # default: pubsub.<domain>
/// modules: [demo]
/// trusted: [ops@baton.test, "*@baton.test"]   # who may run commands and hand work over
/// concurrency: 2
/// state_dir: /var/lib/baton/build   # journal and step workspaces
/// workflows_dir: workflows           # where `submit NAME` looks
/// spool: /var/spool/baton            # incoming/ accepted/ rejected/
/// ```
public struct AgentSettings: Sendable, Equatable {
    public var name: String
    public var connection: ConnectionSettings
    public var pubsubService: String
    public var modules: [String]
    public var trusted: [String]
    public var concurrency: Int
    public var stateDirectory: String
    /// Module-specific sections (`module_settings: { launcher: {...} }`), kept as YAML text.
    public var moduleSettings: [String: String]
    /// Where `submit NAME` finds workflow files.
    public var workflowsDirectory: String
    /// A spool directory watched for workflow files (`incoming/`, `accepted/`, `rejected/`).
    public var spoolDirectory: String?

    public init(name: String, connection: ConnectionSettings, pubsubService: String? = nil, modules: [String] = [],
                trusted: [String] = [], concurrency: Int = 1, stateDirectory: String? = nil,
                moduleSettings: [String: String] = [:], workflowsDirectory: String = "workflows", spoolDirectory: String? = nil) {
        self.name = name
        self.connection = connection
        self.pubsubService = pubsubService ?? "pubsub.\(JID(connection.jid)?.domain ?? "localhost")"
        self.modules = modules
        self.trusted = trusted
        self.concurrency = concurrency
        self.stateDirectory = stateDirectory ?? Self.temporaryStateDirectory(name: name)
        self.moduleSettings = moduleSettings
        self.workflowsDirectory = workflowsDirectory
        self.spoolDirectory = spoolDirectory
    }

    /// Where the journal goes when a config names no `state_dir`: fine for trying things out,
    /// but a temporary directory may be cleaned, and custody with it.
    public static func temporaryStateDirectory(name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("baton-\(name)").path
    }

    public var jid: String { connection.jid }

    /// Whether `jid` may run commands and hand work to this agent. Patterns: a bare JID,
    /// `*@domain` for every account of a domain, or `*` for everyone.
    public func trusts(_ jid: String) -> Bool {
        guard let sender = JID(jid) else { return false }
        if sender.bare == JID(connection.jid)?.bare { return true }
        return trusted.contains { pattern in
            if pattern == "*" { return true }
            // Accounts of the domain, not the domain itself (the server, its components).
            if pattern.hasPrefix("*@") { return sender.local != nil && sender.domain == pattern.dropFirst(2).lowercased() }
            return sender.bare == JID(pattern)?.bare
        }
    }
}

public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let message: String
    public init(file: String, _ message: String) { self.file = file; self.message = message }
    public var description: String { "\(file): \(message)" }
}

extension AgentSettings {
    static let knownKeys: Set<String> = ["name", "jid", "password", "password_file", "server", "tls", "pubsub",
                                         "modules", "trusted", "concurrency", "state_dir", "module_settings",
                                         "workflows_dir", "spool"]

    /// Loads and checks a config file. Every mistake is reported with the file and the key.
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> AgentSettings {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, "cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw ConfigError(file: path, "not UTF-8 text") }
        return try parse(yaml: text, file: path, environment: environment)
    }

    public static func parse(yaml: String, file: String, environment: [String: String] = [:]) throws -> AgentSettings {
        let node: Node?
        do { node = try Yams.compose(yaml: yaml) } catch let error as YamlError {
            throw ConfigError(file: file, "invalid YAML: \(error)")
        }
        guard let root = node?.mapping else { throw ConfigError(file: file, "expected a mapping of settings at the top level") }
        for (key, _) in root {
            guard let name = key.string, knownKeys.contains(name) else {
                throw ConfigError(file: file, "line \(key.mark?.line ?? 0): unknown setting '\(key.string ?? "?")' (known: \(knownKeys.sorted().joined(separator: ", ")))")
            }
        }
        /// "line N: " for a node that came from the file.
        func at(_ node: Node?) -> String { node?.mark.map { "line \($0.line): " } ?? "" }
        func string(_ key: String, in map: Node.Mapping? = nil) throws -> String? {
            guard let value = (map ?? root)[key] else { return nil }
            guard let s = value.string, value.scalar != nil else {
                throw ConfigError(file: file, "line \(value.mark?.line ?? 0): '\(key)' must be a string")
            }
            return s
        }
        func strings(_ key: String) throws -> [String] {
            guard let value = root[key] else { return [] }
            guard let seq = value.sequence else { throw ConfigError(file: file, "line \(value.mark?.line ?? 0): '\(key)' must be a list") }
            return try seq.map {
                guard let s = $0.string else { throw ConfigError(file: file, "line \($0.mark?.line ?? 0): '\(key)' entries must be strings") }
                return s
            }
        }
        guard let jid = try string("jid"), let parsed = JID(jid), parsed.local != nil else {
            throw ConfigError(file: file, "\(at(root["jid"]))'jid' is required and must look like name@domain[/resource]")
        }
        var password = try string("password")
        if let passwordFile = try string("password_file") {
            guard let data = FileManager.default.contents(atPath: passwordFile), let text = String(data: data, encoding: .utf8) else {
                throw ConfigError(file: file, "\(at(root["password_file"]))password_file '\(passwordFile)' cannot be read")
            }
            password = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        password = password ?? environment["BATON_PASSWORD"]
        guard let password, !password.isEmpty else {
            throw ConfigError(file: file, "no password: set 'password_file', 'password' or $BATON_PASSWORD")
        }
        var host: String? = nil, port: UInt16? = nil, streamManagement = false
        if let server = root["server"] {
            let serverKeys = ["host", "port", "stream_management"]
            guard let map = server.mapping else {
                throw ConfigError(file: file, "\(at(server))'server' must be a mapping {\(serverKeys.joined(separator: ", "))}")
            }
            for key in map.keys where !serverKeys.contains(key.string ?? "") {
                throw ConfigError(file: file, "line \(key.mark?.line ?? 0): unknown setting 'server.\(key.string ?? "?")' (known: \(serverKeys.joined(separator: ", ")))")
            }
            host = try string("host", in: map)
            if let sm = map["stream_management"] {
                guard let value = sm.bool else {
                    throw ConfigError(file: file, "line \(sm.mark?.line ?? 0): 'server.stream_management' must be true or false")
                }
                streamManagement = value
            }
            if let p = map["port"] {
                guard let value = p.int, let valid = UInt16(exactly: value) else {
                    throw ConfigError(file: file, "line \(p.mark?.line ?? 0): 'server.port' must be a port number")
                }
                port = valid
            }
        }
        var policy = ConnectionSettings.TLSPolicy.verify
        var caFile: String? = nil
        if let tls = root["tls"] {
            guard let map = tls.mapping else { throw ConfigError(file: file, "\(at(tls))'tls' must be a mapping {policy, ca_file}") }
            for key in map.keys where !["policy", "ca_file"].contains(key.string ?? "") {
                throw ConfigError(file: file, "\(at(key))unknown setting 'tls.\(key.string ?? "?")' (known: ca_file, policy)")
            }
            if let raw = try string("policy", in: map) {
                guard let p = ConnectionSettings.TLSPolicy(rawValue: raw) else {
                    throw ConfigError(file: file, "\(at(map["policy"]))'tls.policy' must be 'verify' or 'trust-any', not '\(raw)'")
                }
                policy = p
            }
            caFile = try string("ca_file", in: map)
        }
        var concurrency = 1
        if let c = root["concurrency"] {
            guard let n = c.int, (1...1024).contains(n) else { throw ConfigError(file: file, "\(at(c))'concurrency' must be a whole number from 1 to 1024") }
            concurrency = n
        }
        var moduleSettings: [String: String] = [:]
        if let node = root["module_settings"] {
            guard let sections = node.mapping else {
                throw ConfigError(file: file, "\(at(node))'module_settings' must be a mapping of module name to its settings")
            }
            for (key, value) in sections {
                if let name = key.string { moduleSettings[name] = try Yams.serialize(node: value) }
            }
        }
        let connection = ConnectionSettings(jid: jid, password: password, host: host, port: port, tls: policy, caFile: caFile,
                                            streamManagement: streamManagement)
        return AgentSettings(name: try string("name") ?? parsed.local!, connection: connection, pubsubService: try string("pubsub"),
                             modules: try strings("modules"), trusted: try strings("trusted"), concurrency: concurrency,
                             stateDirectory: try string("state_dir"), moduleSettings: moduleSettings,
                             workflowsDirectory: try string("workflows_dir") ?? "workflows", spoolDirectory: try string("spool"))
    }
}
