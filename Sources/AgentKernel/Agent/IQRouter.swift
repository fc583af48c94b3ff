/// Routes incoming IQ get/set requests by (type, payload element, namespace), the way Prosody
/// hooks `iq-get/host/urn:xmpp:ping:ping`: each handler sees only its own payloads.
public struct IQRouter: Sendable {
    /// Returns the payload of the result (or nil for an empty result); throws `StanzaError` to refuse.
    public typealias Handler = @Sendable (_ request: XMLElement, _ from: String) async throws -> XMLElement?

    private struct Key: Hashable { let type: String; let name: String; let namespace: String }
    private var handlers: [Key: Handler] = [:]

    public init() {}

    public mutating func on(_ type: Stanza.IQType, _ name: String, _ namespace: String, _ handler: @escaping Handler) {
        handlers[Key(type: type.rawValue, name: name, namespace: namespace)] = handler
    }

    /// The full reply stanza for an IQ get/set; nil for results and errors (those are never answered).
    public func reply(to iq: XMLElement) async -> XMLElement? {
        guard let type = iq.type, type == "get" || type == "set" else { return nil }
        guard let payload = iq.firstChild, iq.children.count == 1 else {
            return StanzaError(.badRequest, "an IQ \(type) carries exactly one payload element").reply(to: iq)
        }
        guard let handler = handlers[Key(type: type, name: payload.name, namespace: payload.xmlns ?? "")] else {
            return StanzaError(.serviceUnavailable, "no handler for \(payload.name) in \(payload.xmlns ?? "no namespace")").reply(to: iq)
        }
        do {
            return Stanza.result(for: iq, payload: try await handler(iq, iq.from ?? ""))
        } catch let error as StanzaError {
            return error.reply(to: iq)
        } catch {
            return StanzaError(.internalServerError, "\(error)").reply(to: iq)
        }
    }
}
