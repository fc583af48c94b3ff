import CStrophe

/// Conversion between libstrophe's `xmpp_stanza_t` and `XMLElement`.
/// Only `StropheSession` calls these, and only on its own thread.
enum StropheBridge {
    static func makeStanza(_ element: XMLElement, ctx: OpaquePointer) -> OpaquePointer {
        let stanza = xmpp_stanza_new(ctx)!
        xmpp_stanza_set_name(stanza, element.name)
        for (key, value) in element.attributes { xmpp_stanza_set_attribute(stanza, key, value) }
        for node in element.nodes {
            switch node {
            case .element(let child):
                xmpp_stanza_add_child_ex(stanza, makeStanza(child, ctx: ctx), 0)
            case .text(let text):
                let textNode = xmpp_stanza_new(ctx)!
                xmpp_stanza_set_text(textNode, text)
                xmpp_stanza_add_child_ex(stanza, textNode, 0)
            }
        }
        return stanza
    }

    static func element(from stanza: OpaquePointer) -> XMLElement {
        var element = XMLElement(xmpp_stanza_get_name(stanza).map { String(cString: $0) } ?? "")
        let count = Int(xmpp_stanza_get_attribute_count(stanza))
        if count > 0 {
            var pairs = [UnsafePointer<CChar>?](repeating: nil, count: count * 2)
            let filled = Int(xmpp_stanza_get_attributes(stanza, &pairs, Int32(count * 2)))
            for i in stride(from: 0, to: filled - 1, by: 2) {
                if let key = pairs[i], let value = pairs[i + 1] {
                    element.attributes.append((String(cString: key), String(cString: value)))
                }
            }
            // Stable order regardless of libstrophe's hash table.
            element.attributes.sort { $0.name < $1.name }
        }
        var child = xmpp_stanza_get_children(stanza)
        while let node = child {
            if xmpp_stanza_is_text(node) != 0 {
                if let text = xmpp_stanza_get_text_ptr(node) { element.nodes.append(.text(String(cString: text))) }
            } else {
                element.nodes.append(.element(self.element(from: node)))
            }
            child = xmpp_stanza_get_next(node)
        }
        return element
    }
}
