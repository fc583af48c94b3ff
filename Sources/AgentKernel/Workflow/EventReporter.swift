import Foundation
import Logging

/// Tells the world about workflow events: items on `baton/events` and chat lines to the
/// submitter and the workflow's `notify` JIDs. Fire-and-forget: a lost event never blocks work.
///
/// Events are gathered for a moment and sent together — one pubsub item holding
/// every event of the batch, one chat message per recipient. A fast step's `started` and `done`
/// then cost the server one publish instead of two, and the batch goes out after the hand-off
/// that usually follows them instead of queueing in front of it at the server.
struct EventReporter: Sendable {
    static let node = "baton/events"
    /// How long the first event of a batch waits for company. Far below what a human notices;
    /// measured with `baton-bench`, 50 ms gave 830 hand-offs/s where 5 ms gave 620–670, as
    /// fewer, larger publishes get in the way of hand-offs at the server less often.
    static let batchWindow = Duration.milliseconds(50)
    /// Events beyond this many waiting (the server unreachable for long) are dropped, oldest first.
    static let maximumWaiting = 5000
    /// At most this many events per item, to keep stanzas small.
    static let maximumPerItem = 100

    private struct Waiting {
        var events: [(event: WorkflowEvent, recipients: [String])] = []
        var dropped = 0
    }

    let connection: XMPPConnection
    let logger: Logger
    private let waiting = Locked(Waiting())
    private let wakeups: AsyncStream<Void>.Continuation

    init(connection: XMPPConnection, service: String, logger: Logger) {
        self.connection = connection
        self.logger = logger
        let (wakeupStream, wakeups) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        self.wakeups = wakeups
        let pubsub = PubSubClient(connection: connection, service: service)
        let waiting = waiting
        Task {
            for await _ in wakeupStream {
                try? await Task.sleep(for: Self.batchWindow)
                await Self.send(waiting: waiting, pubsub: pubsub, connection: connection, logger: logger)
            }
            await Self.send(waiting: waiting, pubsub: pubsub, connection: connection, logger: logger)
        }
    }

    /// Logs `event` and queues it for the next batch. Hand-offs are logged only (every hop
    /// already publishes its step's start and end); `chat: false` keeps it off the chat.
    func report(_ event: WorkflowEvent, to document: WorkflowDocument, chat: Bool = true) {
        logger.info("\(event.line)")
        guard event.kind != .handoff else { return }
        var recipients: [String] = []
        if chat {
            var set = Set(document.notify)
            // Spool submissions carry "spool AGENT" as submitter: no one to chat with.
            if JID(document.submitter)?.local != nil, !document.submitter.contains(" ") { set.insert(document.submitter) }
            recipients = set.sorted()
        }
        waiting.withLock { waiting in
            waiting.events.append((event, recipients))
            if waiting.events.count > Self.maximumWaiting {
                waiting.events.removeFirst()
                waiting.dropped += 1
            }
        }
        wakeups.yield()
    }

    /// Sends what is waiting, in the order it happened.
    private static func send(waiting: Locked<Waiting>, pubsub: PubSubClient, connection: XMPPConnection, logger: Logger) async {
        let (batch, dropped) = waiting.withLock { w in
            defer { w.events.removeAll(keepingCapacity: true); w.dropped = 0 }
            return (w.events, w.dropped)
        }
        if dropped > 0 { logger.warning("\(dropped) workflow events dropped: the server did not take them fast enough") }
        guard !batch.isEmpty else { return }
        var lines: [String: [String]] = [:]
        for (event, recipients) in batch { for jid in recipients { lines[jid, default: []].append(event.line) } }
        for (jid, text) in lines.sorted(by: { $0.key < $1.key }) {
            connection.send(ChatCommands.message(to: jid, body: text.joined(separator: "\n")))
        }
        var start = 0
        while start < batch.count {
            let part = batch[start..<min(batch.count, start + maximumPerItem)].map { $0.event }
            start += part.count
            do {
                try await pubsub.publish(node: node, id: "\(part[0].workflow)-\(UUID().uuidString.prefix(8))",
                                         payload: WorkflowEvent.batch(part))
            } catch {
                logger.debug("\(part.count) events not published: \(error)")
            }
        }
    }

    /// Sends what is still waiting, then ends the publisher.
    func finish() { wakeups.finish() }
}
