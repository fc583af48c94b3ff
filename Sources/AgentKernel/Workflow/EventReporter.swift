import Foundation
import Logging

/// Tells the world about workflow events: an item on `baton/events` and a chat line to the
/// submitter and the workflow's `notify` JIDs. Fire-and-forget: a lost event never blocks work.
struct EventReporter: Sendable {
    static let node = "baton/events"
    let connection: XMPPConnection
    let service: String
    let logger: Logger

    init(connection: XMPPConnection, service: String, logger: Logger) {
        self.connection = connection
        self.service = service
        self.logger = logger
    }

    func report(_ event: WorkflowEvent, to document: WorkflowDocument, chat: Bool = true) {
        logger.info("\(event.line)")
        let pubsub = PubSubClient(connection: connection, service: service)
        let logger = self.logger
        Task {
            do {
                try await pubsub.publish(node: Self.node, id: "\(event.workflow)-\(UUID().uuidString.prefix(8))", payload: event.element)
            } catch {
                logger.debug("event not published: \(error)")
            }
        }
        guard chat else { return }
        var recipients = Set(document.notify)
        if JID(document.submitter)?.local != nil { recipients.insert(document.submitter) }
        for jid in recipients.sorted() { connection.send(Stanza.message(to: jid, body: event.line)) }
    }
}
