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

    static func escape(_ s: String, attribute: Bool, into out: inout [UInt8]) {
        let utf8 = s.utf8
        var index = utf8.startIndex
        while index != utf8.endIndex {
            let byte = utf8[index]
            switch byte {
            case UInt8(ascii: "&"): out.append(contentsOf: "&amp;".utf8)
            case UInt8(ascii: "<"): out.append(contentsOf: "&lt;".utf8)
            case UInt8(ascii: ">"): out.append(contentsOf: "&gt;".utf8)
            case UInt8(ascii: "\"") where attribute: out.append(contentsOf: "&quot;".utf8)
            // A parser normalises these to spaces in attribute values: keep them as written.
            case 0x09 where attribute: out.append(contentsOf: "&#9;".utf8)
            case 0x0A where attribute: out.append(contentsOf: "&#10;".utf8)
            case 0x0D where attribute: out.append(contentsOf: "&#13;".utf8)
            case 0x09, 0x0A, 0x0D: out.append(byte)
            case 0x00..<0x20: out.append(contentsOf: replacement)
            case 0xEF:
                // U+FFFE and U+FFFF (EF BF BE, EF BF BF) are not XML characters either.
                let next = utf8.index(after: index)
                if next != utf8.endIndex, utf8[next] == 0xBF, utf8.index(after: next) != utf8.endIndex,
                   utf8[utf8.index(after: next)] >= 0xBE {
                    out.append(contentsOf: replacement)
                    index = utf8.index(after: utf8.index(after: next))
                    continue
                }
                out.append(byte)
            default: out.append(byte)
            }
            index = utf8.index(after: index)
        }
    }
}

// MARK: - Stanza kinds

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
