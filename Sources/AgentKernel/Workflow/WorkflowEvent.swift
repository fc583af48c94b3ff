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
        if let elapsed { text += String(format: " in %.1fs", elapsed) }
        if let position { text += " (\(position))" }
        if let message, !message.isEmpty { text += ": \(message)" }
        return text
    }

    public var element: XMLElement {
        let json = String(decoding: (try? WorkflowDocument.encoder.encode(self)) ?? Data(), as: UTF8.self)
        return XMLElement("event", xmlns: NS.batonWorkflow, ["workflow": workflow, "kind": kind.rawValue],
                          children: [XMLElement("json", xmlns: NS.json, text: json)])
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
