/// A small, immutable XML tree: the one representation of a stanza on the Swift side.
///
/// Every stanza that crosses the libstrophe seam is converted to or from this type, so nothing
/// outside `StropheSession` ever builds XML by concatenating strings. `utf8XML` renders it for
/// the wire, escaping attribute values and text.
public struct XMLElement: Sendable, Equatable, CustomStringConvertible {
    public enum Node: Sendable, Equatable {
        case element(XMLElement)
        case text(String)
    }

    public var name: String
    /// Ordered, so stanzas serialise the same way every time.
    public var attributes: [(name: String, value: String)]
    public var nodes: [Node]

    public init(_ name: String, xmlns: String? = nil, _ attributes: [String: String?] = [:],
                children: [XMLElement] = [], text: String? = nil) {
        self.name = name
        self.attributes = []
        self.nodes = []
        if let xmlns { self.attributes.append(("xmlns", xmlns)) }
        for key in attributes.keys.sorted() { if let value = attributes[key] ?? nil { self.attributes.append((key, value)) } }
        nodes = children.map { .element($0) }
        if let text { nodes.append(.text(text)) }
    }

    public static func == (lhs: XMLElement, rhs: XMLElement) -> Bool {
        lhs.name == rhs.name && lhs.nodes == rhs.nodes
            && lhs.attributes.map { [$0.name, $0.value] } == rhs.attributes.map { [$0.name, $0.value] }
    }

    // MARK: reading

    public subscript(attribute: String) -> String? {
        get { attributes.first { $0.name == attribute }?.value }
        set {
            attributes.removeAll { $0.name == attribute }
            if let newValue { attributes.append((attribute, newValue)) }
        }
    }

    public var xmlns: String? { self["xmlns"] }
    public var children: [XMLElement] {
        nodes.compactMap { if case .element(let e) = $0 { return e } else { return nil } }
    }
    /// The concatenated text directly inside this element.
    public var text: String {
        nodes.reduce(into: "") { if case .text(let t) = $1 { $0 += t } }
    }

    public func child(_ name: String, xmlns: String? = nil) -> XMLElement? {
        children.first { $0.name == name && (xmlns == nil || $0.xmlns == xmlns) }
    }
    public func children(_ name: String, xmlns: String? = nil) -> [XMLElement] {
        children.filter { $0.name == name && (xmlns == nil || $0.xmlns == xmlns) }
    }
    /// The first child element, which for an IQ is its payload.
    public var firstChild: XMLElement? { children.first }

    // MARK: building

    public mutating func append(_ child: XMLElement) { nodes.append(.element(child)) }
    public mutating func append(text: String) { nodes.append(.text(text)) }

    // MARK: serialising (the wire, logs, tests)

    /// The element as XML text: what `StropheSession` sends.
    public var xml: String { String(decoding: utf8XML, as: UTF8.self) }
    public var description: String { xml }

    /// The element as UTF-8 XML. Text escapes only `&`, `<` and `>`: a JSON container's many
    /// quotes stay as they are, because each `&quot;` costs the server's XML parser a callback
    /// (Prosody's runs in Lua) — libstrophe's own renderer escapes them, so stanzas do not go
    /// through it. Characters XML 1.0 forbids (control codes from a step's log, say) become
    /// U+FFFD instead of making the server close the stream as not well-formed.
    public var utf8XML: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(into: &out)
        return out
    }

    func write(into out: inout [UInt8]) {
        out.append(UInt8(ascii: "<"))
        out.append(contentsOf: name.utf8)
        for (key, value) in attributes {
            out.append(UInt8(ascii: " "))
            out.append(contentsOf: key.utf8)
            out.append(contentsOf: "=\"".utf8)
            Self.escape(value, attribute: true, into: &out)
            out.append(UInt8(ascii: "\""))
        }
        if nodes.isEmpty {
            out.append(contentsOf: "/>".utf8)
            return
        }
        out.append(UInt8(ascii: ">"))
        for node in nodes {
            switch node {
            case .element(let e): e.write(into: &out)
            case .text(let t): Self.escape(t, attribute: false, into: &out)
            }
        }
        out.append(contentsOf: "</".utf8)
        out.append(contentsOf: name.utf8)
        out.append(UInt8(ascii: ">"))
    }

    private static let replacement: [UInt8] = [0xEF, 0xBF, 0xBD]
    private enum Entity {
        static let ampersand = Array("&amp;".utf8), lessThan = Array("&lt;".utf8), greaterThan = Array("&gt;".utf8)
        static let quote = Array("&quot;".utf8), tab = Array("&#9;".utf8), lineFeed = Array("&#10;".utf8)
        static let carriageReturn = Array("&#13;".utf8)
    }

    static func escape(_ s: String, attribute: Bool, into out: inout [UInt8]) {
        var s = s
        s.withUTF8 { escape($0, attribute: attribute, into: &out) }
    }

    /// Copies runs of bytes that need no escaping at once: a hand-off's JSON is a kilobyte of
    /// them, and byte-by-byte appends were the largest CPU cost of rendering it.
    private static func escape(_ bytes: UnsafeBufferPointer<UInt8>, attribute: Bool, into out: inout [UInt8]) {
        var copied = 0, index = 0
        while index < bytes.count {
            let byte = bytes[index]
            var length = 1
            let escaped: [UInt8]?
            switch byte {
            case UInt8(ascii: "&"): escaped = Entity.ampersand
            case UInt8(ascii: "<"): escaped = Entity.lessThan
            case UInt8(ascii: ">"): escaped = Entity.greaterThan
            case UInt8(ascii: "\"") where attribute: escaped = Entity.quote
            // A parser normalises these to spaces in attribute values: keep them as written.
            case 0x09 where attribute: escaped = Entity.tab
            case 0x0A where attribute: escaped = Entity.lineFeed
            case 0x0D where attribute: escaped = Entity.carriageReturn
            case 0x09, 0x0A, 0x0D: escaped = nil
            case 0x00..<0x20: escaped = replacement
            // U+FFFE and U+FFFF (EF BF BE, EF BF BF) are not XML characters either.
            case 0xEF where index + 2 < bytes.count && bytes[index + 1] == 0xBF && bytes[index + 2] >= 0xBE:
                escaped = replacement
                length = 3
            default: escaped = nil
            }
            if let escaped {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[copied..<index]))
                out.append(contentsOf: escaped)
                index += length
                copied = index
            } else {
                index += 1
            }
        }
        out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[copied..<bytes.count]))
    }
}

// MARK: - Stanza kinds

/// What an IQ request is dispatched on, as Prosody hooks `iq-get/host/urn:xmpp:ping:ping`:
/// its type and its one payload's name and namespace.
struct IQPayloadKey: Hashable, Sendable {
    let type: String
    let name: String
    let namespace: String

    /// The key of an IQ get or set with exactly one payload; nil for anything else.
    init?(request iq: XMLElement) {
        guard iq.name == "iq", let type = iq.type, type == "get" || type == "set",
              let payload = iq.firstChild, iq.children.count == 1 else { return nil }
        self.init(type: type, name: payload.name, namespace: payload.xmlns ?? "")
    }

    init(type: String, name: String, namespace: String) {
        self.type = type
        self.name = name
        self.namespace = namespace
    }
}

/// Typed constructors for the three stanza kinds, so callers say what they mean.
public enum Stanza {
    public enum IQType: String, Sendable { case get, set, result, error }

    public static func iq(_ type: IQType, to: String?, id: String? = nil, payload: XMLElement? = nil) -> XMLElement {
        XMLElement("iq", ["type": type.rawValue, "to": to, "id": id], children: payload.map { [$0] } ?? [])
    }

    public static func message(to: String, body: String, type: String = "chat") -> XMLElement {
        XMLElement("message", ["to": to, "type": type], children: [XMLElement("body", text: body)])
    }

    public static func presence(type: String? = nil, to: String? = nil, status: String? = nil) -> XMLElement {
        XMLElement("presence", ["type": type, "to": to], children: status.map { [XMLElement("status", text: $0)] } ?? [])
    }

    /// The result for an IQ `request`, addressed back to its sender with the same id.
    public static func result(for request: XMLElement, payload: XMLElement? = nil) -> XMLElement {
        iq(.result, to: request["from"], id: request["id"], payload: payload)
    }
}

extension XMLElement {
    public var isIQ: Bool { name == "iq" }
    public var type: String? { self["type"] }
    public var from: String? { self["from"] }
    public var to: String? { self["to"] }
    public var id: String? { self["id"] }
}
