/// The service administrator's side of discovery: creates Baton's pubsub nodes and enrolls
/// agent accounts as publishers.
///
/// Plain XEP-0060 keeps node creation and publishing to owners and publishers (Prosody allows
/// creation to server admins only), so a site prepares the nodes once and enrolls each agent
/// account — which is also what stops any random account from advertising itself as an agent.
public struct DirectoryAdmin: Sendable {
    public static let nodes = [Agent.agentsNode, "baton/events", "baton/releases"]
    public let pubsub: PubSubClient

    public init(connection: XMPPConnection, service: String) {
        pubsub = PubSubClient(connection: connection, service: service)
    }

    /// Creates the nodes (readable by everyone, published to by enrolled agents); idempotent.
    public func prepare() async throws {
        for node in Self.nodes {
            // Events are a live feed: stored items would only make every publish slower (Prosody
            // rewrites a node's stored item list on each publish), so keep none.
            try await pubsub.createNode(node, keepItems: node != "baton/events")
        }
    }

    /// Grants `publisher` on every Baton node to each bare JID in `jids`.
    public func enroll(_ jids: [String]) async throws {
        for node in Self.nodes {
            let affiliations = XMLElement("affiliations", ["node": node], children: jids.map {
                XMLElement("affiliation", ["jid": JID($0)?.bare ?? $0, "affiliation": "publisher"])
            })
            _ = try await pubsub.connection.request(Stanza.iq(.set, to: pubsub.service,
                payload: XMLElement("pubsub", xmlns: NS.pubsubOwner, children: [affiliations])))
        }
    }
}
