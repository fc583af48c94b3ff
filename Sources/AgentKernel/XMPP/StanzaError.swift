/// An XMPP stanza error (RFC 6120 §8.3): what an IQ handler throws to refuse a request, and
/// what `request` throws when the peer answered with `type='error'`.
public struct StanzaError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Condition: String, Sendable {
        case badRequest = "bad-request"
        case conflict
        case featureNotImplemented = "feature-not-implemented"
        case forbidden
        case itemNotFound = "item-not-found"
        case internalServerError = "internal-server-error"
        case notAcceptable = "not-acceptable"
        case notAllowed = "not-allowed"
        case notAuthorized = "not-authorized"
        case policyViolation = "policy-violation"
        case recipientUnavailable = "recipient-unavailable"
        case remoteServerNotFound = "remote-server-not-found"
        case resourceConstraint = "resource-constraint"
        case serviceUnavailable = "service-unavailable"
        case undefinedCondition = "undefined-condition"
        case unexpectedRequest = "unexpected-request"

        /// Conditions a server gives for a stanza it could not deliver at all (no such session,
        /// user or server). Unlike `recipient-unavailable` — which XEP-0198 also uses for stanzas
        /// a closed session had received but not acknowledged — they say nothing reached anyone.
        var meansNotDelivered: Bool {
            self == .serviceUnavailable || self == .itemNotFound || self == .remoteServerNotFound
        }

        /// The error type RFC 6120 §8.3.3 pairs with each condition. `wait` only where trying
        /// again later may work: an agent's failure to run a command (internal-server-error) is
        /// `cancel`, as is not-allowed — `auth` would say other credentials could help.
        var defaultType: String {
            switch self {
            case .badRequest, .notAcceptable, .policyViolation: "modify"
            case .forbidden, .notAuthorized: "auth"
            case .resourceConstraint, .recipientUnavailable, .unexpectedRequest: "wait"
            default: "cancel"
            }
        }
    }

    /// Whether a Baton agent answered a hand-off with this itself, having stored nothing:
    /// not trusted, no runner for the action, a malformed document. Errors a server sends for an
    /// unreachable agent (service-unavailable, recipient-unavailable, …) are not among them.
    public var isReceiversRefusal: Bool {
        [.forbidden, .featureNotImplemented, .badRequest, .notAcceptable].contains(condition)
    }

    public var condition: Condition
    public var text: String?
    /// An application-specific condition element (e.g. XEP-0050's `bad-sessionid`).
    public var appCondition: XMLElement?

    public init(_ condition: Condition, _ text: String? = nil, appCondition: XMLElement? = nil) {
        self.condition = condition
        self.text = text
        self.appCondition = appCondition
    }

    public var description: String {
        text.map { "\(condition.rawValue): \($0)" } ?? condition.rawValue
    }

    /// `<error type='…'><condition xmlns='…stanzas'/><text>…</text></error>`
    public var element: XMLElement {
        var error = XMLElement("error", ["type": condition.defaultType])
        error.append(XMLElement(condition.rawValue, xmlns: NS.stanzas))
        if let text { error.append(XMLElement("text", xmlns: NS.stanzas, text: text)) }
        if let appCondition { error.append(appCondition) }
        return error
    }

    /// The error reply to `request`, echoing its payload as RFC 6120 allows.
    public func reply(to request: XMLElement) -> XMLElement {
        var iq = Stanza.iq(.error, to: request.from, id: request.id)
        if let payload = request.firstChild { iq.append(payload) }
        iq.append(element)
        return iq
    }

    /// The error reply to `request` for any error a handler threw: its own condition for a
    /// `StanzaError`, internal-server-error naming it otherwise.
    public static func reply(to request: XMLElement, for error: any Error) -> XMLElement {
        ((error as? StanzaError) ?? StanzaError(.internalServerError, "\(error)")).reply(to: request)
    }

    /// Reads the `<error/>` child of an error stanza.
    public init(parsing stanza: XMLElement) {
        let error = stanza.child("error")
        let conditionElement = error?.children.first { $0.xmlns == NS.stanzas && $0.name != "text" }
        condition = conditionElement.flatMap { Condition(rawValue: $0.name) } ?? .undefinedCondition
        text = error?.child("text", xmlns: NS.stanzas)?.text
        appCondition = error?.children.first { $0.xmlns != NS.stanzas }
    }
}
