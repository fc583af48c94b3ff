/// A small, immutable XML tree: the one representation of a stanza on the Swift side.
///
/// Every stanza that crosses the libstrophe seam is converted to or from this type, so nothing
/// outside `StropheSession` ever builds XML by concatenating strings. Attribute values and text
/// are escaped by `xml` (and by libstrophe on the wire).
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

    // MARK: serialising (logs, tests, JSON containers); the wire goes through libstrophe

    public var xml: String {
        var out = "<" + name
        for (key, value) in attributes { out += " \(key)=\"\(Self.escape(value, quote: true))\"" }
        if nodes.isEmpty { return out + "/>" }
        out += ">"
        for node in nodes {
            switch node {
            case .element(let e): out += e.xml
            case .text(let t): out += Self.escape(t, quote: false)
            }
        }
        return out + "</\(name)>"
    }
    public var description: String { xml }

    static func escape(_ s: String, quote: Bool) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for ch in s.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"" where quote: out += "&quot;"
            case "'" where quote: out += "&apos;"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
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
