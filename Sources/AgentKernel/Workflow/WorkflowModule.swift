import Foundation

/// The workflow commands every agent has: `submit`, `cancel`, `workflows`, `where` — as
/// XEP-0050 commands and as chat commands.
struct WorkflowModule: AgentModule {
    let name = "workflow"
    let engine: WorkflowEngine
    let settings: AgentSettings

    var features: [String] { [NS.batonWorkflow] }

    func availableWorkflows() -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: settings.workflowsDirectory)) ?? []
        return files.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }
            .map { ($0 as NSString).deletingPathExtension }.sorted()
    }

    /// A workflow from its name in `workflows_dir` or from YAML text, with `params`
    /// (`KEY=VALUE`) set in it; errors name the problem.
    func authored(name: String?, yaml: String?, params: [String] = []) throws -> WorkflowDocument {
        do {
            let document: WorkflowDocument
            if let yaml, !yaml.isEmpty {
                document = try WorkflowParser.parse(yaml: yaml, source: "submitted text")
            } else {
                guard let name else { throw StanzaError(.badRequest, "give a workflow name or its YAML text") }
                document = try WorkflowParser.load(named: name, in: settings.workflowsDirectory)
            }
            return try WorkflowParser.applying(params: params, to: document)
        } catch let error as WorkflowError {
            if case .unknownWorkflow = error { throw StanzaError(.itemNotFound, "\(error) in \(settings.workflowsDirectory)") }
            throw StanzaError(.badRequest, "\(error)")
        }
    }

    /// `body`, with what the journal refuses (an ambiguous id prefix) answered `bad-request`.
    static func badRequest<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as WorkflowError { throw StanzaError(.badRequest, "\(error)") }
    }

    var commands: [AdHocCommand] {
        [
            AdHocCommand(node: "submit", name: "Submit a workflow", stages: [{ _ in
                DataForm(.form, title: "Submit a workflow", instructions: "Pick a workflow, or paste its YAML.", fields: [
                    .init("workflow", type: .listSingle, label: "Workflow", options: availableWorkflows()),
                    .init("yaml", type: .textMulti, label: "…or YAML text"),
                    .init("params", type: .textMulti, label: "Parameters for this run, KEY=VALUE per line (optional)"),
                ])
            }]) { invocation in
                let yaml = invocation.values["yaml"]?.joined(separator: "\n")
                let params = (invocation.values["params"] ?? []).flatMap { $0.split(separator: "\n") }
                    .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                let document = try engine.submit(try authored(name: invocation.value("workflow"), yaml: yaml, params: params), by: invocation.from)
                return .fields("Submitted", [("id", document.id), ("workflow", document.name), ("steps", String(document.steps.count))])
            },
            AdHocCommand(node: "cancel", name: "Cancel a workflow", form: DataForm(.form, title: "Cancel", fields: [
                .init("id", label: "Workflow id (or its first characters)", required: true),
                .init("force", type: .boolean, label: "End it here even if an agent that may hold it does not answer"),
            ])) { invocation in
                let id = try invocation.required("id")
                let force = ["1", "true"].contains(invocation.value("force") ?? "")
                guard let outcome = try Self.badRequest({ try engine.cancel(id, by: invocation.from, force: force) }) else {
                    throw StanzaError(.itemNotFound, "workflow \(id) is not held by \(settings.name)")
                }
                return .fields("Cancel", [("id", id), ("outcome", outcome)])
            },
            AdHocCommand(node: "workflows", name: "Workflows held here", requiresTrust: false) { _ in
                let entries = try engine.journal.recent(limit: 100)
                return CommandResult(form: DataForm(.result, title: "Workflows on \(settings.name)",
                    reported: [.init("id", label: "Id"), .init("name", label: "Workflow"), .init("step", label: "Step"),
                               .init("state", label: "State"), .init("status", label: "Status"), .init("target", label: "Handed to"),
                               .init("updated", label: "Updated (UTC)")],
                    items: entries.map(Self.row)))
            },
            AdHocCommand(node: "where", name: "Where is a workflow", requiresTrust: false, form: DataForm(.form, fields: [
                .init("id", label: "Workflow id (or its first characters)", required: true),
            ])) { invocation in
                let id = try invocation.required("id")
                let entries = try Self.badRequest { try engine.journal.entries(workflow: id) }
                guard !entries.isEmpty else { throw StanzaError(.itemNotFound, "\(settings.name) holds no workflow \(id)") }
                // Open to anyone, as `workflows` is; the document itself (params, notify, the
                // submitter, the steps' outputs and log tails) only to trusted JIDs.
                let document = settings.trusts(invocation.from) ? [DataForm.Field("document", type: .textMulti, values: [try entries[0].document.json()])] : []
                return CommandResult(form: DataForm(.result, title: "Workflow \(id) on \(settings.name)",
                    fields: document,
                    reported: [.init("id"), .init("name"), .init("step"), .init("state"), .init("status"), .init("target"), .init("updated")],
                    items: entries.map(Self.row)))
            },
        ]
    }

    static func row(_ entry: Journal.Entry) -> [String: String] {
        let document = entry.document
        let step = entry.seq < 0 ? "submitted" : "\(entry.seq + 1)/\(document.steps.count) \(document.steps[min(entry.seq, document.steps.count - 1)].action)"
        return ["id": document.id, "name": document.name, "step": step, "state": entry.state.rawValue,
                "status": document.status.rawValue + (document.reason.map { ": \($0)" } ?? ""), "target": entry.target ?? "",
                "updated": Timestamp.string(entry.updated)]
    }

    var chatCommands: [ChatCommand] {
        [
            ChatCommand("submit", usage: "submit NAME [KEY=VALUE…]", summary: "start a workflow from workflows_dir, KEY=VALUE setting its params") { arguments, from in
                guard let name = arguments.first else { return "Usage: submit NAME [KEY=VALUE…] (one of: \(availableWorkflows().joined(separator: ", ")))" }
                let document = try engine.submit(try authored(name: name, yaml: nil, params: Array(arguments.dropFirst())), by: from)
                return "Submitted \(document.name) as \(document.id) (\(document.steps.count) steps). Say 'wf \(document.id.prefix(6))' for its state."
            },
            ChatCommand("wf", usage: "wf ID", summary: "where a workflow stands, if held here") { arguments, _ in
                guard let id = arguments.first else { return "Usage: wf ID" }
                let entries = try engine.journal.entries(workflow: id)
                guard let latest = entries.first else { return "\(settings.name) holds no workflow \(id)." }
                let row = Self.row(latest)
                var lines = ["\(latest.document.shortName): step \(row["step"]!), \(row["state"]!), \(row["status"]!)" + (latest.target.map { " → \($0)" } ?? "")]
                for entry in latest.document.trail {
                    lines.append("  \(entry.step) (\(entry.action)) on \(entry.agent): \(entry.status)" + (entry.error.map { " — \($0)" } ?? ""))
                }
                return lines.joined(separator: "\n")
            },
            ChatCommand("cancel", usage: "cancel ID", summary: "cancel a workflow held here") { arguments, from in
                guard let id = arguments.first else { return "Usage: cancel ID" }
                return try engine.cancel(id, by: from).map { "\(id): \($0)" } ?? "\(settings.name) holds no workflow \(id)."
            },
            ChatCommand("workflows", summary: "workflows held here") { _, _ in
                let entries = try engine.journal.recent(limit: 20)
                if entries.isEmpty { return "No workflows here." }
                return entries.map { entry in
                    let row = Self.row(entry)
                    return "\(entry.document.id) \(entry.document.name) \(row["step"]!) \(row["state"]!)"
                }.joined(separator: "\n")
            },
        ]
    }
}
