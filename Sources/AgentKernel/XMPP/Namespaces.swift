/// XML namespaces Baton speaks, as named constants (never spelled inline elsewhere).
public enum NS {
    public static let discoInfo = "http://jabber.org/protocol/disco#info"
    public static let discoItems = "http://jabber.org/protocol/disco#items"
    public static let commands = "http://jabber.org/protocol/commands"
    public static let dataForms = "jabber:x:data"
    public static let pubsub = "http://jabber.org/protocol/pubsub"
    public static let pubsubEvent = "http://jabber.org/protocol/pubsub#event"
    public static let pubsubOwner = "http://jabber.org/protocol/pubsub#owner"
    public static let pubsubErrors = "http://jabber.org/protocol/pubsub#errors"
    public static let ping = "urn:xmpp:ping"
    public static let version = "jabber:iq:version"
    public static let roster = "jabber:iq:roster"
    public static let stanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
    public static let json = "urn:xmpp:json:0"
    /// XEP-0203: a stanza stored and delivered later (offline messages).
    public static let delay = "urn:xmpp:delay"
    /// Baton's own payloads: agent descriptions, workflow hand-offs.
    public static let baton = "urn:baton:agent:0"
    public static let batonWorkflow = "urn:baton:workflow:0"
}
