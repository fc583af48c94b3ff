/// XEP-0060 publish-subscribe: the requests Baton makes and the events it reads.
///
/// ```xml
/// <iq type='set' to='pubsub.baton.test'>
///   <pubsub xmlns='http://jabber.org/protocol/pubsub'>
///     <publish node='baton/agents'><item id='build@baton.test/agent'><agent xmlns='urn:baton:agent:0' …/></item></publish>
///   </pubsub>
/// </iq>
/// <message from='pubsub.baton.test'>
///   <event xmlns='http://jabber.org/protocol/pubsub#event'>
///     <items node='baton/agents'><item id='…'>…</item><retract id='…'/></items>
///   </event>
/// </message>
/// ```
public struct PubSubClient: Sendable {
    public let connection: XMPPConnection
    public let service: String

    public init(connection: XMPPConnection, service: String) {
        self.connection = connection
        self.service = service
    }

    private func pubsub(_ child: XMLElement, namespace: String = NS.pubsub) -> XMLElement {
        XMLElement("pubsub", xmlns: namespace, children: [child])
    }

    /// Publishes `payload` as item `id` (replacing an item with the same id).
    public func publish(node: String, id: String, payload: XMLElement) async throws {
        let publish = XMLElement("publish", ["node": node], children: [XMLElement("item", ["id": id], children: [payload])])
        _ = try await connection.request(Stanza.iq(.set, to: service, payload: pubsub(publish)))
    }

    /// Creates a node anyone may read and subscribe to, published to by its publishers, keeping
    /// every item; a node that already exists is fine. Needs owner rights on the service.
    public func createNode(_ node: String, keepItems: Bool = true) async throws {
        let config = DataForm(.submit, fields: [
            .init("FORM_TYPE", type: .hidden, values: ["http://jabber.org/protocol/pubsub#node_config"]),
            .init("pubsub#max_items", values: [keepItems ? "max" : "1"]),
            .init("pubsub#persist_items", values: [keepItems ? "true" : "false"]),
            .init("pubsub#notify_retract", values: ["true"]),
            .init("pubsub#publish_model", values: ["publishers"]),
            .init("pubsub#access_model", values: ["open"]),
        ])
        let request = XMLElement("pubsub", xmlns: NS.pubsub, children: [
            XMLElement("create", ["node": node]), XMLElement("configure", children: [config.element]),
        ])
        do {
            _ = try await connection.request(Stanza.iq(.set, to: service, payload: request))
        } catch let error as StanzaError where error.condition == .conflict {
            // Another agent created it first.
        }
    }

    public func retract(node: String, id: String) async throws {
        let retract = XMLElement("retract", ["node": node, "notify": "true"], children: [XMLElement("item", ["id": id])])
        _ = try await connection.request(Stanza.iq(.set, to: service, payload: pubsub(retract)))
    }

    public func subscribe(node: String, jid: String) async throws {
        _ = try await connection.request(Stanza.iq(.set, to: service, payload: pubsub(XMLElement("subscribe", ["node": node, "jid": jid]))))
    }

    /// Current items of `node` (id, payload); an absent node has none.
    public func items(node: String) async throws -> [(id: String, payload: XMLElement?)] {
        let reply: XMLElement
        do {
            reply = try await connection.request(Stanza.iq(.get, to: service, payload: pubsub(XMLElement("items", ["node": node]))))
        } catch let error as StanzaError where error.condition == .itemNotFound {
            return []
        }
        let items = reply.child("pubsub")?.child("items")?.children("item") ?? []
        return items.compactMap { item in item["id"].map { ($0, item.firstChild) } }
    }

    /// An event notification from `service` as published/retracted items, or nil if `message`
    /// is not one. Anyone can send a message that looks like a notification: one that does not
    /// come from the service would let any account pose as an agent, or retract a real one.
    public static func event(in message: XMLElement, from service: String) -> (node: String, published: [(id: String, payload: XMLElement?)], retracted: [String])? {
        guard message.name == "message", let items = message.child("event", xmlns: NS.pubsubEvent)?.child("items"),
              let node = items["node"] else { return nil }
        guard let sender = message.from.flatMap(JID.init), sender.resource == nil, sender.bare == JID(service)?.bare else { return nil }
        let published = items.children("item").compactMap { item in item["id"].map { ($0, item.firstChild) } }
        let retracted = items.children("retract").compactMap { $0["id"] }
        return (node, published, retracted)
    }
}
