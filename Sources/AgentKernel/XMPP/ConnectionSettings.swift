/// Where and as whom to connect.
public struct ConnectionSettings: Sendable, Equatable {
    public enum TLSPolicy: String, Sendable, Codable {
        /// TLS required and the server certificate verified (the default).
        case verify
        /// TLS required but any certificate accepted: for a development server's self-signed cert.
        case trustAny = "trust-any"
    }

    public var jid: String
    public var password: String
    public var host: String?
    public var port: UInt16?
    public var tls: TLSPolicy
    public var caFile: String?
    /// Seconds to wait for TCP + TLS + SASL on one attempt.
    public var connectTimeout: Double
    /// XEP-0198 stream management (resumption after a short outage). Off by default: libstrophe
    /// 0.12 sends an ack request after every stanza it sends, and the server answers each one
    /// (and asks for acks in turn) — three stanzas on the wire for every one of ours, which cost
    /// a hand-off 1.2 ms and 15% of the throughput in `baton-bench`. Baton does not need it for
    /// safety: a hand-off is acknowledged end to end by the receiver after it stored the document,
    /// and resent (then deduplicated) when that acknowledgement does not come.
    public var streamManagement: Bool
    public static let defaultStreamManagement = false

    public init(jid: String, password: String, host: String? = nil, port: UInt16? = nil,
                tls: TLSPolicy = .verify, caFile: String? = nil, connectTimeout: Double = 10,
                streamManagement: Bool = defaultStreamManagement) {
        self.streamManagement = streamManagement
        self.jid = jid
        self.password = password
        self.host = host
        self.port = port
        self.tls = tls
        self.caFile = caFile
        self.connectTimeout = connectTimeout
    }

    /// `host:port` as the user would write it, for error messages.
    public var serverDescription: String {
        let domain = JID(jid)?.domain ?? jid
        return "\(host ?? domain):\(port ?? 5222)"
    }
}

/// Errors of the connection itself, each naming the JID and the server.
public enum ConnectionError: Error, Sendable, CustomStringConvertible, Equatable {
    case authenticationFailed(jid: String, server: String)
    case unreachable(jid: String, server: String, reason: String)
    case tlsFailed(jid: String, server: String, reason: String)
    case streamError(jid: String, server: String, reason: String)
    case notConnected(jid: String)
    case disconnected(jid: String)
    case timeout(jid: String, what: String, seconds: Double)

    public var description: String {
        switch self {
        case .authenticationFailed(let jid, let server):
            "authentication failed for \(jid) at \(server): wrong password or no such account"
        case .unreachable(let jid, let server, let reason):
            "cannot reach XMPP server \(server) for \(jid): \(reason)"
        case .tlsFailed(let jid, let server, let reason):
            "TLS with \(server) failed for \(jid): \(reason)"
        case .streamError(let jid, let server, let reason):
            "server \(server) closed the stream of \(jid): \(reason)"
        case .notConnected(let jid): "\(jid) is not connected"
        case .disconnected(let jid): "connection of \(jid) was lost before the reply arrived"
        case .timeout(let jid, let what, let seconds): "\(jid): no reply to \(what) within \(seconds) s"
        }
    }
}
