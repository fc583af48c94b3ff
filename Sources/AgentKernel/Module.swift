import Logging

/// A plugin of an agent: the unit the agent's config names in `modules:`.
///
/// A module states what it offers — step actions (advertised through disco and the
/// `baton/agents` pubsub item), ad-hoc commands (XEP-0050) and chat commands — and the kernel
/// routes to it. Modules never look at stanzas that are not theirs.
public protocol AgentModule: Sendable {
    /// Short name used in config files and log lines (`Agent::name`).
    var name: String { get }
    /// Workflow step actions this module runs, e.g. `build.image`.
    var actions: [String] { get }
    /// Extra disco features (namespaces) the module implements.
    var features: [String] { get }
    var commands: [AdHocCommand] { get }
    var chatCommands: [ChatCommand] { get }
    /// Called once the agent is online for the first time.
    func start(_ agent: AgentContext) async throws
    /// Called on a clean shutdown, before the agent retracts its item and goes offline.
    func stop() async
}

extension AgentModule {
    public var actions: [String] { [] }
    public var features: [String] { [] }
    public var commands: [AdHocCommand] { [] }
    public var chatCommands: [ChatCommand] { [] }
    public func start(_ agent: AgentContext) async throws {}
    public func stop() async {}
}

/// What the kernel lends a module: its identity, its logger, the connection and the peers.
public struct AgentContext: Sendable {
    public let agentName: String
    public let jid: String
    public let connection: XMPPConnection
    public let directory: AgentDirectory
    public let settings: AgentSettings
    public let logger: Logger
    /// The agent's journal, for modules that keep durable state of their own.
    public let journal: Journal
    /// The logger a module should use: its lines carry `Agent::Module`.
    public func logger(for module: String) -> Logger { BatonLog.logger(agent: agentName, module: module) }
}

/// A text command understood in chat messages (`help`, `status`, …).
public struct ChatCommand: Sendable {
    public let name: String
    public let usage: String
    public let summary: String
    public let run: @Sendable (_ arguments: [String], _ from: String) async throws -> String

    public init(_ name: String, usage: String? = nil, summary: String,
                run: @escaping @Sendable (_ arguments: [String], _ from: String) async throws -> String) {
        self.name = name
        self.usage = usage ?? name
        self.summary = summary
        self.run = run
    }
}
