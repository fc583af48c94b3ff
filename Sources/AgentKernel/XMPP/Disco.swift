/// XEP-0030 service discovery: who this agent is and what it can do.
///
/// ```xml
/// <query xmlns='http://jabber.org/protocol/disco#info'>
///   <identity category='automation' type='command-list' name='Baton agent build'/>
///   <feature var='http://jabber.org/protocol/commands'/>
///   <feature var='urn:baton:action:build.image'/>
/// </query>
/// ```
public enum Disco {
    /// The disco feature that advertises a workflow step action.
    public static func actionFeature(_ action: String) -> String { "urn:baton:action:\(action)" }

    /// The identity for `node` (XEP-0030 registry): the agent itself is a bot (`client/bot`); the
    /// XEP-0050 commands node is `automation/command-list`, and each command `automation/command-node`.
    public static func info(name: String, features: [String], node: String? = nil) -> XMLElement {
        var query = XMLElement("query", xmlns: NS.discoInfo, ["node": node])
        let (category, type) = switch node {
        case nil: ("client", "bot")
        case NS.commands?: ("automation", "command-list")
        default: ("automation", "command-node")
        }
        query.append(XMLElement("identity", ["category": category, "type": type, "name": name]))
        for feature in Set(features).sorted() { query.append(XMLElement("feature", ["var": feature])) }
        return query
    }

    public static func items(node: String?, items: [(jid: String, node: String?, name: String)]) -> XMLElement {
        XMLElement("query", xmlns: NS.discoItems, ["node": node], children: items.map {
            XMLElement("item", ["jid": $0.jid, "node": $0.node, "name": $0.name])
        })
    }
}

/// XEP-0092 software version.
public enum SoftwareVersion {
    public static let name = "Baton agentd"
    public static let version = "0.1.0"

    public static var query: XMLElement {
        XMLElement("query", xmlns: NS.version, children: [
            XMLElement("name", text: name), XMLElement("version", text: version), XMLElement("os", text: "Linux"),
        ])
    }
}
