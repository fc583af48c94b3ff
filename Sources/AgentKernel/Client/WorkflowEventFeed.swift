import Foundation

/// Workflow events from the `baton/events` node, for a controlling program.
///
/// A connection's `events` stream has a single consumer, so one feed reads it for the whole
/// session and fans the workflow events out to whoever listens (one `wf submit --watch`, or
/// several watches in turn in the shell). The subscription is for the connection's full JID
/// and is taken before anything is submitted, so no event can slip past between the two.
public final class WorkflowEventFeed: Sendable {
    public static let node = "baton/events"

    private let pubsub: PubSubClient
    private let subscriber: String
    private let listeners = Locked<[UUID: AsyncStream<WorkflowEvent>.Continuation]>([:])
    private let subscribed = Locked(false)
    private let pump: Task<Void, Never>

    /// `subscriber` is the connection's bound full JID: events go to this session only, and an
    /// unsubscribe on exit leaves nothing behind.
    public init(connection: XMPPConnection, service: String, subscriber: String) {
        pubsub = PubSubClient(connection: connection, service: service)
        self.subscriber = subscriber
        let listeners = self.listeners, subscribed = self.subscribed
        // Finished outside the lock: a stream's termination handler takes it again.
        @Sendable func endListening() {
            let ending = listeners.withLock { current in defer { current.removeAll() }; return Array(current.values) }
            for continuation in ending { continuation.finish() }
        }
        pump = Task {
            for await event in connection.events {
                if case .offline = event {
                    // The subscription was this session's: nothing more will come to its
                    // listeners, who must not wait for ever (a watch says the connection is lost).
                    subscribed.withLock { $0 = false }
                    endListening()
                    continue
                }
                guard case .stanza(let stanza) = event, let items = PubSubClient.event(in: stanza, from: service), items.node == Self.node else { continue }
                for (_, payload) in items.published {
                    for workflowEvent in WorkflowEvent.events(in: payload) {
                        listeners.withLock { for continuation in $0.values { continuation.yield(workflowEvent) } }
                    }
                }
            }
            endListening()
        }
    }

    deinit { pump.cancel() }

    /// Subscribes (once per session) and returns a stream of every event from now on; stop
    /// listening by ending the iteration (the stream is dropped) or with `stop`.
    public func listen() async throws -> Listener {
        try await subscribeOnce()
        let (stream, continuation) = AsyncStream.makeStream(of: WorkflowEvent.self, bufferingPolicy: .unbounded)
        let id = UUID()
        listeners.withLock { $0[id] = continuation }
        continuation.onTermination = { [listeners] _ in listeners.withLock { _ = $0.removeValue(forKey: id) } }
        return Listener(events: stream, stop: { continuation.finish() })
    }

    public struct Listener: Sendable {
        public let events: AsyncStream<WorkflowEvent>
        public let stop: @Sendable () -> Void
    }

    private func subscribeOnce() async throws {
        guard !subscribed.value else { return }
        do {
            try await pubsub.subscribe(node: Self.node, jid: subscriber)
        } catch let error as StanzaError {
            throw WorkflowClientError("cannot subscribe to \(Self.node) on \(pubsub.service): \(error)")
        }
        subscribed.withLock { $0 = true }
    }

    /// Drops the subscription (best effort): a subscription left for a full JID that is gone
    /// would only make the service send events nobody reads.
    public func close() async {
        guard subscribed.value else { return }
        let unsubscribe = XMLElement("pubsub", xmlns: NS.pubsub, children: [
            XMLElement("unsubscribe", ["node": Self.node, "jid": subscriber]),
        ])
        _ = try? await pubsub.connection.request(Stanza.iq(.set, to: pubsub.service, payload: unsubscribe), timeout: 3)
        subscribed.withLock { $0 = false }
    }
}
