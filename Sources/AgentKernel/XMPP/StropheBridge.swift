import CStrophe

/// Conversion of what libstrophe parsed (`xmpp_stanza_t`) into an `XMLElement`; sending renders
/// `XMLElement.utf8XML` instead.
/// Only `StropheSession` calls these, and only on its own thread.
enum StropheBridge {
    /// Elements deeper than this arrive without their children (no payload Baton reads goes
    /// past a few levels): the conversion recurses, and any JID may send a stanza nested a
    /// million levels deep.
    static let maximumDepth = 128

    static func element(from stanza: OpaquePointer, depth: Int = 0) -> XMLElement {
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
        var child = depth < maximumDepth ? xmpp_stanza_get_children(stanza) : nil
        while let node = child {
            if xmpp_stanza_is_text(node) != 0 {
                if let text = xmpp_stanza_get_text_ptr(node) { element.nodes.append(.text(String(cString: text))) }
            } else {
                element.nodes.append(.element(self.element(from: node, depth: depth + 1)))
            }
            child = xmpp_stanza_get_next(node)
        }
        return element
    }
}
