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

    /// Sends an IQ get/set and waits for its result. An IQ error reply is thrown as `StanzaError`.
    public func request(_ iq: XMLElement, timeout: Double = 10) async throws -> XMLElement {
        try await session.request(iq, timeout: timeout)
    }

    /// Sends `final` stanzas (e.g. unavailable presence), closes the stream and stops the thread.
    public func close(sending final: [XMLElement] = []) async {
        await session.stop(final: final)
    }
}
