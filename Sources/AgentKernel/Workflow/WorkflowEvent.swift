import Foundation

/// What happened to a workflow, told to the `baton/events` node and, as a chat line, to the
/// submitter and the workflow's `notify` JIDs.
public struct WorkflowEvent: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        case submitted, started, progress, done, failed, retrying, handoff, parked, completed, cancelled
    }
    public var workflow: String
    public var name: String
    public var kind: Kind
    public var step: String?
    public var action: String?
    public var agent: String
    public var position: String?
    public var elapsed: Double?
    public var message: String?
    public var time: Date

    public init(_ kind: Kind, document: WorkflowDocument, agent: String, step: WorkflowDocument.Step? = nil,
                elapsed: Double? = nil, message: String? = nil) {
        self.kind = kind
        workflow = document.id
        name = document.name
        self.step = step?.id
        action = step?.action
        self.agent = agent
        if let step, let index = document.steps.firstIndex(of: step) { position = "\(index + 1)/\(document.steps.count)" }
        self.elapsed = elapsed
        self.message = message
        time = Date()
    }

    /// `[micro-appliance 3f2a] build.image on build@host done in 41.2s (2/6)`
    public var line: String {
        var text = "[\(name) \(workflow.prefix(4))]"
        if let action { text += " \(action) on \(agent)" }
        text += " \(kind.rawValue)"
        if let elapsed { text += " in \(Self.tenths(elapsed))s" }
        if let position { text += " (\(position))" }
        if let message, !message.isEmpty { text += ": \(message)" }
        return text
    }

    /// `elapsed` with one decimal, as `%.1f` writes it, without Foundation's formatter.
    static func tenths(_ seconds: Double) -> String {
        guard seconds.isFinite, abs(seconds) < 1e15 else { return String(format: "%.1f", seconds) }
        let tenths = (abs(seconds) * 10).rounded(.toNearestOrEven)
        let whole = Int64(tenths) / 10, fraction = Int64(tenths) % 10
        return (seconds < 0 && tenths != 0 ? "-" : "") + "\(whole).\(fraction)"
    }

    public var element: XMLElement {
        XMLElement("event", xmlns: NS.batonWorkflow, ["workflow": workflow, "kind": kind.rawValue],
                   children: [XMLElement("json", xmlns: NS.json, text: jsonText)])
    }

    /// The event as JSON, byte for byte what `WorkflowDocument.encoder` writes (a test holds
    /// them equal), through `JSONText` instead of `JSONEncoder`, which cost the agents more CPU
    /// than any other part of publishing events (perf, baton-bench).
    var jsonText: String {
        var o: [String: JSONValue] = [
            CodingKeys.workflow.stringValue: .string(workflow),
            CodingKeys.name.stringValue: .string(name),
            CodingKeys.kind.stringValue: .string(kind.rawValue),
            CodingKeys.agent.stringValue: .string(agent),
            CodingKeys.time.stringValue: .string(Timestamp.string(time)),
        ]
        if let step { o[CodingKeys.step.stringValue] = .string(step) }
        if let action { o[CodingKeys.action.stringValue] = .string(action) }
        if let position { o[CodingKeys.position.stringValue] = .string(position) }
        if let elapsed { o[CodingKeys.elapsed.stringValue] = .number(elapsed) }
        if let message { o[CodingKeys.message.stringValue] = .string(message) }
        return JSONValue.object(o).jsonText
    }

    /// One pubsub item's payload: `<events>` holding the events of one batch, in order.
    public static func batch(_ events: [WorkflowEvent]) -> XMLElement {
        XMLElement("events", xmlns: NS.batonWorkflow, children: events.map(\.element))
    }

    /// The events in an item's payload: a batch, or a single `<event>`.
    public static func events(in payload: XMLElement?) -> [WorkflowEvent] {
        guard let payload else { return [] }
        if payload.name == "events", payload.xmlns == NS.batonWorkflow {
            return payload.children.compactMap { WorkflowEvent(element: $0) }
        }
        return WorkflowEvent(element: payload).map { [$0] } ?? []
    }

    public init?(element: XMLElement?) {
        guard let element, element.name == "event", element.xmlns == NS.batonWorkflow,
              let json = element.child("json", xmlns: NS.json)?.text,
              let event = try? WorkflowDocument.decoder.decode(WorkflowEvent.self, from: Data(json.utf8)) else { return nil }
        self = event
    }
}
