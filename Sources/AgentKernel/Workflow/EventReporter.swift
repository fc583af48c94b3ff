import Foundation
import Logging

/// Tells the world about workflow events: an item on `baton/events` and a chat line to the
/// submitter and the workflow's `notify` JIDs. Fire-and-forget: a lost event never blocks work.
struct EventReporter: Sendable {
    static let node = "baton/events"
    let connection: XMPPConnection
    let logger: Logger
    /// Events are published one after another, in the order they happened.
    private let queue: AsyncStream<XMLElement>.Continuation

    init(connection: XMPPConnection, service: String, logger: Logger) {
        self.connection = connection
        self.logger = logger
        let (stream, queue) = AsyncStream.makeStream(of: XMLElement.self, bufferingPolicy: .bufferingNewest(1000))
        self.queue = queue
        let pubsub = PubSubClient(connection: connection, service: service)
        Task {
            for await element in stream {
                do {
                    try await pubsub.publish(node: Self.node, id: "\(element["workflow"] ?? "wf")-\(UUID().uuidString.prefix(8))", payload: element)
                } catch {
                    logger.debug("event not published: \(error)")
                }
            }
        }
    }

    /// Logs `event`; publishes it unless it is a hand-off (every hop already publishes its
    /// step's start and end — a third item per hop would only load the server); chats it.
    func report(_ event: WorkflowEvent, to document: WorkflowDocument, chat: Bool = true) {
        logger.info("\(event.line)")
        if event.kind != .handoff { queue.yield(event.element) }
        guard chat else { return }
        var recipients = Set(document.notify)
        // Spool submissions carry "spool AGENT" as submitter: no one to chat with.
        if JID(document.submitter)?.local != nil, !document.submitter.contains(" ") { recipients.insert(document.submitter) }
        for jid in recipients.sorted() { connection.send(Stanza.message(to: jid, body: event.line)) }
    }

    func finish() { queue.finish() }
}
