/// Routes incoming IQ get/set requests by (type, payload element, namespace), the way Prosody
/// hooks `iq-get/host/urn:xmpp:ping:ping`: each handler sees only its own payloads.
public struct IQRouter: Sendable {
    /// Returns the payload of the result (or nil for an empty result); throws `StanzaError` to refuse.
    public typealias Handler = @Sendable (_ request: XMLElement, _ from: String) async throws -> XMLElement?

    /// For a request whose answer must leave before the handler's work is over (say, a store
    /// acknowledged before the work it brings starts): the handler calls `answer` with the
    /// result's payload, then goes on. Throwing before answering refuses the request as a
    /// `Handler` does; not answering at all sends nothing.
    public typealias AnsweringHandler = @Sendable (_ request: XMLElement, _ from: String, _ answer: Answer) async throws -> Void

    /// Sends the result of one request; calls after the first are ignored.
    public struct Answer: Sendable {
        fileprivate let send: @Sendable (XMLElement?) -> Void
        public func callAsFunction(_ payload: XMLElement?) { send(payload) }
    }

    private enum Route: Sendable {
        case replying(Handler)
        case answering(AnsweringHandler)
    }

    private var routes: [IQPayloadKey: Route] = [:]

    public init() {}

    public mutating func on(_ type: Stanza.IQType, _ name: String, _ namespace: String, _ handler: @escaping Handler) {
        routes[IQPayloadKey(type: type.rawValue, name: name, namespace: namespace)] = .replying(handler)
    }

    public mutating func on(_ type: Stanza.IQType, _ name: String, _ namespace: String, answering handler: @escaping AnsweringHandler) {
        routes[IQPayloadKey(type: type.rawValue, name: name, namespace: namespace)] = .answering(handler)
    }

    /// Answers an IQ get/set through `send`: its handler's result, or an error naming why not.
    /// Results and errors are never answered.
    public func handle(_ iq: XMLElement, send: @escaping @Sendable (XMLElement) -> Void) async {
        guard let type = iq.type, type == "get" || type == "set" else { return }
        guard let payload = iq.firstChild, iq.children.count == 1 else {
            return send(StanzaError(.badRequest, "an IQ \(type) carries exactly one payload element").reply(to: iq))
        }
        guard let route = routes[IQPayloadKey(type: type, name: payload.name, namespace: payload.xmlns ?? "")] else {
            return send(StanzaError(.serviceUnavailable, "no handler for \(payload.name) in \(payload.xmlns ?? "no namespace")").reply(to: iq))
        }
        let answered = Locked(false)
        let once: @Sendable (XMLElement) -> Void = { reply in
            guard answered.withLock({ done -> Bool in defer { done = true }; return !done }) else { return }
            send(reply)
        }
        do {
            switch route {
            case .replying(let handler):
                once(Stanza.result(for: iq, payload: try await handler(iq, iq.from ?? "")))
            case .answering(let handler):
                try await handler(iq, iq.from ?? "", Answer { once(Stanza.result(for: iq, payload: $0)) })
            }
        } catch {
            once(StanzaError.reply(to: iq, for: error))
        }
    }

    /// The first reply `handle` sends, or nil if it sends none.
    public func reply(to iq: XMLElement) async -> XMLElement? {
        let first = Locked<XMLElement?>(nil)
        await handle(iq) { reply in first.withLock { if $0 == nil { $0 = reply } } }
        return first.value
    }
}
