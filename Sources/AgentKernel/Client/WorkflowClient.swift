import Foundation

/// The workflow side of a controlling program: submit a workflow to an agent and ask the agents
/// where workflows are. There is no orchestrator to ask, so every question goes to every online
/// agent (`workflows`, `where`) and the answers are merged here.
public struct WorkflowClient: Sendable {
    public let control: ControlClient

    public init(control: ControlClient) { self.control = control }

    // MARK: - Submitting

    /// The agents advertised on `baton/agents` that answer a ping.
    public func onlineAgents() async throws -> [AgentDescription] {
        try await control.agents().filter(\.online).map(\.description)
    }

    /// The agent to hand a new workflow to: the least loaded one (load per slot); among equals,
    /// one that runs the first step itself, which saves a hand-off.
    public static func pickSubmitter(for document: WorkflowDocument, among agents: [AgentDescription]) -> AgentDescription? {
        let firstAction = document.steps.first?.action ?? ""
        return agents.min { a, b in
            let loadA = Double(a.load) / Double(max(1, a.concurrency)), loadB = Double(b.load) / Double(max(1, b.concurrency))
            if loadA != loadB { return loadA < loadB }
            let runsA = a.actions.contains(firstAction), runsB = b.actions.contains(firstAction)
            if runsA != runsB { return runsA }
            return a.jid < b.jid
        }
    }

    /// Runs `submit` on `agent` with the YAML text; returns the new workflow's id.
    public func submit(yaml: String, to agent: String) async throws -> String {
        // text-multi carries one value per line (XEP-0004); the agent joins them with "\n".
        let outcome = try await control.run(agent, node: "submit", values: ["yaml": yaml.components(separatedBy: "\n")])
        if let error = outcome.notes.first(where: { $0.kind == .error }) {
            throw WorkflowClientError("\(agent) refused the workflow: \(error.text)")
        }
        guard let id = outcome.form?["id"], !id.isEmpty else {
            throw WorkflowClientError("\(agent) accepted the workflow but returned no id (status \(outcome.status))")
        }
        return id
    }

    // MARK: - Asking every agent

    /// One journal entry of a workflow as an agent reports it (`workflows` / `where` rows).
    public struct Entry: Sendable, Equatable {
        public var agent: String
        public var id: String
        public var name: String
        /// `2/3 util.noop`, or `submitted` for the entry made when the workflow was submitted.
        public var step: String
        /// The journal state: accepted, running, routing, handing, handed, parked, finished.
        public var state: String
        /// The document's status, with its reason: `failed: step boom failed: …`.
        public var status: String
        /// Where it was handed (`self` when the agent kept the next step).
        public var target: String
        /// When the entry last changed (nil from agents that do not say).
        public var updated: Date?

        init(agent: String, row: [String: String]) {
            self.agent = agent
            id = row["id"] ?? ""
            name = row["name"] ?? ""
            step = row["step"] ?? ""
            state = row["state"] ?? ""
            status = row["status"] ?? ""
            target = row["target"] ?? ""
            updated = row["updated"].flatMap(Timestamp.date)
        }

        /// Whether this agent still has the workflow (rather than having handed it on).
        public var isHeld: Bool { state != "handed" }
        /// The step's position (1-based), 0 for the submission entry.
        public var stepNumber: Int { Int(step.prefix { $0.isNumber }) ?? 0 }
    }

    /// An agent that could not be asked, and why.
    public struct Failure: Sendable {
        public var agent: String
        public var reason: String
    }

    /// Every workflow entry every online agent keeps, with the agents that did not answer.
    public func workflows() async throws -> (entries: [Entry], failures: [Failure]) {
        let agents = try await onlineAgents().map(\.jid)
        let answers = await ask(agents) { agent in
            let outcome = try await control.run(agent, node: "workflows")
            return (outcome.form?.items ?? []).map { Entry(agent: agent, row: $0) }
        }
        return (answers.values.flatMap { $0 }, answers.failures)
    }

    /// What one agent knows about a workflow: its entries and its latest copy of the document.
    public struct Sighting: Sendable {
        public var agent: String
        public var entries: [Entry]
        public var document: WorkflowDocument?
        /// The agent's refusal of the question (e.g. an id prefix that matches several of its workflows).
        public var refusal: String? = nil
    }

    /// Where a workflow (given by id or id prefix) is, from every online agent that knows it.
    public func locate(_ id: String) async throws -> Located {
        guard !id.isEmpty else { throw WorkflowClientError("give a workflow id (or its first characters)") }
        let agents = try await onlineAgents().map(\.jid)
        let answers = await ask(agents) { agent -> Sighting? in
            let outcome: ControlClient.CommandOutcome
            do {
                outcome = try await control.run(agent, node: "where", values: ["id": [id]])
            } catch let error as StanzaError where error.condition == .itemNotFound {
                return nil  // this agent never held it
            } catch let error as StanzaError where error.condition == .badRequest {
                return Sighting(agent: agent, entries: [], document: nil, refusal: error.text ?? "\(error)")
            }
            let json = outcome.form?.values("document").joined(separator: "\n") ?? ""
            return Sighting(agent: agent, entries: (outcome.form?.items ?? []).map { Entry(agent: agent, row: $0) },
                            document: json.isEmpty ? nil : try? WorkflowDocument.from(json: json))
        }
        return try Located(query: id, sightings: answers.values.compactMap { $0 }, failures: answers.failures)
    }

    /// Runs `cancel` on every agent that still holds the workflow; returns (agent, outcome) pairs.
    public func cancel(_ located: Located, force: Bool = false) async throws -> [(agent: String, outcome: String)] {
        let holders = located.holders.map(\.agent)
        guard !holders.isEmpty else {
            throw WorkflowClientError("no agent holds workflow \(located.id) now (last handed to \(located.lastHandedTo ?? "?"))")
        }
        var results: [(String, String)] = []
        for agent in Set(holders).sorted() {
            let outcome = try await control.run(agent, node: "cancel", values: force ? ["id": [located.id], "force": ["true"]] : ["id": [located.id]])
            results.append((agent, outcome.form?["outcome"] ?? outcome.notes.map(\.text).joined(separator: "; ")))
        }
        return results
    }

    /// Asks all `agents` at once; answers and failures, in agent order.
    private func ask<T: Sendable>(_ agents: [String], _ question: @escaping @Sendable (String) async throws -> T) async -> (values: [T], failures: [Failure]) {
        await withTaskGroup(of: (String, Result<T, Error>).self) { group in
            for agent in agents {
                group.addTask {
                    do { return (agent, .success(try await question(agent))) } catch { return (agent, .failure(error)) }
                }
            }
            var collected: [(String, Result<T, Error>)] = []
            for await answer in group { collected.append(answer) }
            collected.sort { $0.0 < $1.0 }
            var values: [T] = [], failures: [Failure] = []
            for (agent, result) in collected {
                switch result {
                case .success(let value): values.append(value)
                case .failure(let error): failures.append(Failure(agent: agent, reason: "\(error)"))
                }
            }
            return (values, failures)
        }
    }
}

/// A workflow as the agents that know it see it: who holds it now and its latest document.
public struct Located: Sendable {
    public let id: String
    public let sightings: [WorkflowClient.Sighting]
    public let failures: [WorkflowClient.Failure]

    /// Resolves the prefix `query` to one workflow; throws if no agent knows one, or several match.
    init(query: String, sightings: [WorkflowClient.Sighting], failures: [WorkflowClient.Failure]) throws {
        if let refused = sightings.first(where: { $0.refusal != nil }), let refusal = refused.refusal {
            throw WorkflowClientError("\(refused.agent): \(refusal)")
        }
        let ids = Set(sightings.flatMap { $0.entries.map(\.id) })
        guard let id = ids.first else {
            let unreachable = failures.isEmpty ? "" : " (\(failures.count) agent(s) did not answer: \(failures.map(\.agent).joined(separator: ", ")))"
            throw WorkflowClientError("no agent holds workflow \(query)\(unreachable)")
        }
        guard ids.count == 1 else {
            throw WorkflowClientError("'\(query)' matches \(ids.count) workflows: \(ids.sorted().joined(separator: ", ")); give more characters")
        }
        self.id = id
        self.sightings = sightings
        self.failures = failures
    }

    /// The entries whose agent has not handed the workflow on: normally exactly one — the
    /// agent working on it, or the one that finished it.
    public var holders: [WorkflowClient.Entry] {
        sightings.compactMap { sighting in sighting.entries.first.flatMap { $0.isHeld ? $0 : nil } }
    }

    /// The most advanced copy of the document (furthest cursor, longest trail).
    public var latestDocument: WorkflowDocument? {
        sightings.compactMap(\.document).max { a, b in
            (a.cursor, a.trail.count, a.isFinished ? 1 : 0) < (b.cursor, b.trail.count, b.isFinished ? 1 : 0)
        }
    }

    /// Where the latest hand-off went, when nobody reachable holds the workflow.
    public var lastHandedTo: String? {
        sightings.filter { $0.entries.first?.isHeld == false }
            .max { ($0.document?.cursor ?? -1) < ($1.document?.cursor ?? -1) }?.entries.first?.target
    }
}

public struct WorkflowClientError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
