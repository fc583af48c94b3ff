import AgentKernel
import Foundation

/// What `wf …` does, shared by the `agentctl wf` subcommands and the shell's `wf/` context.
/// Each prints its result and throws a `CLIError` (one line) when it did not succeed.
struct WorkflowOperations {
    /// `wf submit --watch` lost its connection: the workflow goes on, unwatched.
    static let connectionLostStatus: Int32 = 3
    /// `wf submit --watch --watch-timeout` ran out: the workflow goes on, unwatched.
    static let watchTimedOutStatus: Int32 = 4

    let session: Session

    // MARK: submit

    /// Reads and checks a workflow file, with `params` (`KEY=VALUE`) set in it; a problem is exit
    /// status 2 with file:line:column.
    static func validate(file path: String, params: [String] = []) throws -> (yaml: String, document: WorkflowDocument) {
        let data: Data
        // Not Data(contentsOf:): that reads the whole file before the 256 KiB limit is checked.
        do { data = try WorkflowParser.readFile(path) } catch {
            throw CLIError("\(error)", status: 2)
        }
        do {
            // The file as written is checked first, so that its errors point into it.
            var document = try WorkflowParser.parse(data: data, source: path)
            var yaml = String(decoding: data, as: UTF8.self)
            if !params.isEmpty {
                // The values are checked on their own first: an error in one names the
                // parameter, not a line of the rewritten text (which is not the file).
                document = try WorkflowParser.applying(params: params, to: document)
                yaml = try WorkflowParser.setting(params: params, in: yaml, source: path)
                document = try WorkflowParser.parse(yaml: yaml, source: "\(path) with --param")
            }
            return (yaml, document)
        } catch let error as WorkflowError {
            throw CLIError(Self.pointing(error.description), status: 2)
        }
    }

    /// Yams says `FILE: invalid YAML: line 3, column 5: problem`; say `FILE:3:5: …` like the
    /// parser's own errors, so editors and eyes find the spot the same way.
    static func pointing(_ message: String) -> String {
        guard let match = message.firstMatch(of: /^(.*): invalid YAML: line (\d+), column (\d+): (.*)$/) else { return message }
        return "\(match.1):\(match.2):\(match.3): invalid YAML: \(match.4)"
    }

    /// Submits FILE; with `watch`, follows it to the end. Returns the exit status (0, or 1 when
    /// the workflow failed, was cancelled or parked after a failure; 3 when the connection to the
    /// server was lost while watching; 4 when `timeout` seconds of watching ran out; 130 when
    /// interrupted).
    func submit(file: String, params: [String] = [], to chosen: String?, watch: Bool, timeout: Double? = nil) async throws -> Int32 {
        let (yaml, document) = try Self.validate(file: file, params: params)
        let agent: String
        if let chosen {
            agent = try await AgentAddress.resolve(chosen, client: session.client)
        } else {
            let online = try await session.workflows.onlineAgents()
            guard let picked = WorkflowClient.pickSubmitter(for: document, among: online) else {
                throw CLIError("no agent is online to take the workflow (none on \(Agent.agentsNode) answers a ping)")
            }
            agent = picked.jid
        }
        guard watch else {
            print(try await session.workflows.submit(yaml: yaml, to: agent))
            return 0
        }
        // Subscribe first: events published while `submit` is answered are then already ours.
        let listener = try await session.feed.listen()
        let since = Date()
        let id: String
        do {
            id = try await session.workflows.submit(yaml: yaml, to: agent)
        } catch {
            listener.stop()
            throw error
        }
        print("\(document.name) \(id) submitted to \(agent) (\(document.steps.count) step\(document.steps.count == 1 ? "" : "s"))")
        var watcher = WorkflowWatcher(session: session, workflowID: id, listener: listener, since: since)
        watcher.timeout = timeout
        let goesOn = "\(document.name) \(id) goes on"
        let followIt = "(agentctl wf status \(id.prefix(6)))"
        switch await watcher.run() {
        case .finished(let outcome):
            return outcome.succeeded ? 0 : 1
        case .interrupted:
            print("stopped watching; \(goesOn) \(followIt)")
            return 130
        case .timedOut:
            print("stopped watching after \(WorkflowWatcher.seconds(timeout ?? 0)) (--watch-timeout); \(goesOn) \(followIt)")
            return WorkflowOperations.watchTimedOutStatus
        case .connectionLost:
            complain("lost the connection to the server while watching; \(goesOn) without us \(followIt)")
            return WorkflowOperations.connectionLostStatus
        }
    }

    // MARK: list, status, trail, cancel

    func list(limit: Int = 20) async throws {
        let (entries, failures) = try await session.workflows.workflows()
        for failure in failures { complain("\(failure.agent) did not answer: \(failure.reason)") }
        var rows: [(updated: Date, cells: [String])] = []
        for (id, group) in Dictionary(grouping: entries, by: \.id) {
            // The agent that has not handed it on holds it; if every entry is a hand-off, the
            // last one says where it went.
            let held = group.filter(\.isHeld).max { $0.stepNumber < $1.stepNumber }
            let latest = held ?? group.max { $0.stepNumber < $1.stepNumber }!
            let holder = held?.agent ?? "→ \(latest.target)"
            // A finished entry says how it ended: completed, failed, cancelled, parked.
            let state = latest.state == "finished" ? String(latest.status.prefix { $0 != ":" }) : latest.state
            let updated = group.compactMap(\.updated).max() ?? .distantPast
            rows.append((updated, [id, latest.name, latest.step, state, Render.when(updated), holder]))
        }
        if rows.isEmpty {
            print("no workflows on \(failures.isEmpty ? "any online agent" : "the agents that answered")")
        } else {
            // Latest change first, as the agents keep their newest entries.
            let ordered = rows.sorted { ($0.updated, $0.cells[0]) > ($1.updated, $1.cells[0]) }
            let shown = limit > 0 ? Array(ordered.prefix(limit)) : ordered
            print(Render.table(["ID", "NAME", "STEP", "STATE", "UPDATED", "HOLDER"], shown.map(\.cells)))
            if shown.count < ordered.count { print("(\(ordered.count - shown.count) older not shown; --limit 0 shows all)") }
        }
    }

    func status(_ query: String) async throws {
        let located = try await session.workflows.locate(query)
        for failure in located.failures { complain("\(failure.agent) did not answer: \(failure.reason)") }
        let document = located.latestDocument
        var pairs: [(String, String)] = [("workflow", "\(document?.name ?? "?") \(located.id)")]
        if located.holders.isEmpty {
            pairs.append(("holder", "none reachable; last handed to \(located.lastHandedTo ?? "?")"))
        }
        for holder in located.holders {
            pairs.append(("holder", holder.agent))
            pairs.append(("state", holder.state))
            pairs.append(("step", holder.step))
        }
        if let document {
            pairs.append(("status", document.status.rawValue))
            if let reason = document.reason { pairs.append(("reason", reason)) }
            pairs.append(("progress", "\(document.trail.filter { $0.status == "done" }.count) of \(document.steps.count) steps done"))
            pairs.append(("submitted", "\(Self.clock(document.submitted)) by \(document.submitter)"))
        }
        print(Render.pairs(pairs))
    }

    func trail(_ query: String) async throws {
        let located = try await session.workflows.locate(query)
        guard let document = located.latestDocument else { throw CLIError("no agent returned the document of \(located.id)") }
        print("\(document.name) \(document.id): \(document.status.rawValue)" + (document.reason.map { " (\($0))" } ?? ""))
        let rows = document.trail.map { entry -> [String] in
            [entry.step, entry.action, entry.agent, Self.clock(entry.started), entry.finished.map { Self.clock($0) } ?? "-",
             entry.status + (entry.attempt > 1 ? " (attempt \(entry.attempt))" : ""),
             entry.finished.map { WorkflowWatcher.seconds($0.timeIntervalSince(entry.started)) } ?? "-", entry.error ?? ""]
        }
        print(Render.table(["STEP", "ACTION", "AGENT", "STARTED", "FINISHED", "STATUS", "DURATION", "ERROR"], rows))
        let pending = document.steps.dropFirst(document.cursor).map(\.id)
        if !pending.isEmpty, !document.isFinished { print("not yet run: \(pending.joined(separator: ", "))") }
        for entry in document.trail {
            if let tail = Render.logTail(of: entry) { print(tail) }
        }
    }

    func cancel(_ query: String, force: Bool = false) async throws {
        let located = try await session.workflows.locate(query)
        let results = try await session.workflows.cancel(located, force: force)
        for (agent, outcome) in results { print("\(located.id) on \(agent): \(outcome)") }
        guard results.contains(where: { $0.outcome.hasPrefix("cancel") }) else {
            throw CLIError("workflow \(located.id) was not cancelled: \(results.map(\.outcome).joined(separator: "; "))")
        }
    }

    /// Local time to the second, with the date unless it is today (a trail can span midnight).
    static func clock(_ date: Date, now: Date = Date()) -> String {
        let time = Calendar.current.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        let clock = String(format: "%02d:%02d:%02d", time.hour ?? 0, time.minute ?? 0, time.second ?? 0)
        guard !Calendar.current.isDate(date, inSameDayAs: now) else { return clock }
        return String(format: "%04d-%02d-%02d ", time.year ?? 0, time.month ?? 0, time.day ?? 0) + clock
    }
}
