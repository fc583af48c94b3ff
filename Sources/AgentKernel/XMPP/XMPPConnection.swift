import Logging

public enum ConnectionEvent: Sendable {
    case online(boundJID: String)
    case offline(ConnectionError)
    case stanza(XMLElement)
}

/// The async face of one XMPP connection. Everything it does runs on its `StropheSession`
/// thread; this type only forwards, so it is freely `Sendable`.
public final class XMPPConnection: Sendable {

    public let settings: ConnectionSettings
    private let session: StropheSession
    /// Online/offline transitions and every stanza that is not the reply to a `request`.
    public var events: AsyncStream<ConnectionEvent> { session.events }

    public init(settings: ConnectionSettings, logger: Logger) {
        self.settings = settings
        session = StropheSession(settings: settings, logger: logger)
    }

    /// Connects and authenticates; returns the bound full JID. Throws a `ConnectionError` that
    /// names the JID and server when the password is wrong, the server unreachable or TLS fails.
    /// With `reconnect`, a connection lost later is re-established by itself (back-off with jitter).
    @discardableResult
    public func connect(reconnect: Bool = true) async throws -> String {
        try await session.connect(reconnect: reconnect)
    }

    /// Sends a stanza without waiting for anything; dropped (and logged) while offline.
    public func send(_ stanza: XMLElement) {
        session.send(stanza)
    }

    /// The connection's I/O thread as a task executor, for tasks whose work is short and mostly
    /// talking to peers (the workflow engine's): `Task(executorPreference: connection.executor)`.
    public var executor: any TaskExecutor { session }

    /// Answers IQ requests of `type` whose payload is (`name`, `namespace`) on the connection's
    /// I/O thread, the moment each is read; `handler` returns the whole reply (result or error),
    /// or nil to send none. Such requests never appear in `events`.
    ///
    /// For a short, synchronous answer that must not wait for the thread pool: each thread hop
    /// costs 0.05–0.25 ms on a busy 2-core machine, and a hand-off made two of them. While
    /// `handler` runs, this connection reads and writes nothing else, so it must not wait on
    /// anything but a local disk.
    public func answerDirectly(_ type: Stanza.IQType, _ name: String, _ namespace: String,
                               with handler: @escaping @Sendable (_ request: XMLElement) -> XMLElement?) {
        session.answerDirectly(type.rawValue, name, namespace, with: handler)
    }

    /// Sends an IQ get/set and waits for its result. An IQ error reply is thrown as `StanzaError`.
    public func request(_ iq: XMLElement, timeout: Double = 10) async throws -> XMLElement {
        try await session.request(iq, timeout: timeout)
    }

    /// Sends `final` stanzas (e.g. unavailable presence), closes the stream and stops the thread.
    public func close(sending final: [XMLElement] = []) async {
        await session.stop(final: final)
    }
}
