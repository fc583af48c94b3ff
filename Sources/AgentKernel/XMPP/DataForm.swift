/// XEP-0004 data forms: the shape of every command's input and output.
///
/// ```xml
/// <x xmlns='jabber:x:data' type='form'>
///   <title>Run a step</title>
///   <field var='name' type='text-single' label='Name'><required/><value>x</value></field>
/// </x>
/// ```
public struct DataForm: Sendable, Equatable {
    public enum Kind: String, Sendable { case form, submit, result, cancel }

    public struct Field: Sendable, Equatable {
        public enum FieldType: String, Sendable {
            case boolean, fixed, hidden
            case jidMulti = "jid-multi", jidSingle = "jid-single"
            case listMulti = "list-multi", listSingle = "list-single"
            case textMulti = "text-multi", textPrivate = "text-private", textSingle = "text-single"

            /// Whether a submitted form may give this field at most one value (XEP-0004 §3.3).
            public var takesOneValue: Bool {
                switch self {
                case .boolean, .hidden, .jidSingle, .listSingle, .textPrivate, .textSingle: true
                case .fixed, .jidMulti, .listMulti, .textMulti: false
                }
            }
        }
        public var variable: String?
        public var type: FieldType?
        public var label: String?
        public var description: String?
        public var required: Bool
        public var values: [String]
        public var options: [String]

        public init(_ variable: String?, type: FieldType? = .textSingle, label: String? = nil,
                    description: String? = nil, required: Bool = false, values: [String] = [], options: [String] = []) {
            self.variable = variable
            self.type = type
            self.label = label
            self.description = description
            self.required = required
            self.values = values
            self.options = options
        }

        public var value: String? { values.first }
    }

    public var kind: Kind
    public var title: String?
    public var instructions: String?
    public var fields: [Field]
    /// Table results (`<reported/>` + `<item/>`): column fields, then rows of var → value.
    public var reported: [Field]
    public var items: [[String: String]]

    public init(_ kind: Kind, title: String? = nil, instructions: String? = nil, fields: [Field] = [],
                reported: [Field] = [], items: [[String: String]] = []) {
        self.kind = kind
        self.title = title
        self.instructions = instructions
        self.fields = fields
        self.reported = reported
        self.items = items
    }

    public subscript(variable: String) -> String? { fields.first { $0.variable == variable }?.value }
    public func values(_ variable: String) -> [String] { fields.first { $0.variable == variable }?.values ?? [] }

    /// Values of a submitted form, by field name.
    public var submitted: [String: [String]] {
        var out: [String: [String]] = [:]
        for field in fields { if let name = field.variable { out[name] = field.values } }
        return out
    }

    // MARK: wire form

    public var element: XMLElement {
        var x = XMLElement("x", xmlns: NS.dataForms, ["type": kind.rawValue])
        if let title { x.append(XMLElement("title", text: title)) }
        if let instructions { x.append(XMLElement("instructions", text: instructions)) }
        for field in fields { x.append(Self.element(for: field, withValues: true)) }
        if !reported.isEmpty {
            x.append(XMLElement("reported", children: reported.map { Self.element(for: $0, withValues: false) }))
            for row in items {
                x.append(XMLElement("item", children: reported.compactMap(\.variable).map { name in
                    XMLElement("field", ["var": name], children: [XMLElement("value", text: row[name] ?? "")])
                }))
            }
        }
        return x
    }

    private static func element(for field: Field, withValues: Bool) -> XMLElement {
        var f = XMLElement("field", ["var": field.variable, "type": field.type?.rawValue, "label": field.label])
        if let description = field.description { f.append(XMLElement("desc", text: description)) }
        if field.required { f.append(XMLElement("required")) }
        if withValues { for value in field.values { f.append(XMLElement("value", text: value)) } }
        for option in field.options {
            f.append(XMLElement("option", children: [XMLElement("value", text: option)]))
        }
        return f
    }

    /// Parses `<x xmlns='jabber:x:data'>`; throws `bad-request` naming what is wrong.
    public init(parsing x: XMLElement) throws {
        guard x.name == "x", x.xmlns == NS.dataForms else {
            throw StanzaError(.badRequest, "expected a jabber:x:data form")
        }
        guard let kind = Kind(rawValue: x["type"] ?? "") else {
            throw StanzaError(.badRequest, "data form has no valid type (form, submit, result, cancel)")
        }
        func field(_ f: XMLElement) throws -> Field {
            var type: Field.FieldType? = nil
            if let raw = f["type"] {
                guard let known = Field.FieldType(rawValue: raw) else {
                    throw StanzaError(.badRequest, "field '\(f["var"] ?? "?")' has unknown type '\(raw)'")
                }
                type = known
            }
            return Field(f["var"], type: type, label: f["label"], description: f.child("desc")?.text,
                         required: f.child("required") != nil, values: f.children("value").map(\.text),
                         options: f.children("option").compactMap { $0.child("value")?.text })
        }
        self.kind = kind
        title = x.child("title")?.text
        instructions = x.child("instructions")?.text
        fields = try x.children("field").map(field)
        reported = try x.child("reported")?.children("field").map(field) ?? []
        items = x.children("item").map { item in
            var row: [String: String] = [:]
            for f in item.children("field") { if let name = f["var"] { row[name] = f.children("value").map(\.text).joined(separator: "\n") } }
            return row
        }
    }

    /// Checks submitted `values` against this form's fields; the error names the field.
    public func validate(_ values: [String: [String]]) throws {
        for field in fields {
            guard let name = field.variable, field.type != .fixed else { continue }
            let given = values[name] ?? []
            let takesOne = (field.type ?? .textSingle).takesOneValue  // no type: text-single (XEP-0004)
            if takesOne && given.count > 1 { throw StanzaError(.badRequest, "field '\(name)' takes one value") }
            // A single-valued field's one value is what handlers read: it must be the one given.
            if field.required && (takesOne ? (given.first ?? "").isEmpty : given.allSatisfy({ $0.isEmpty })) {
                throw StanzaError(.badRequest, "field '\(name)' is required")
            }
            switch field.type {
            case .boolean:
                for v in given where !["0", "1", "true", "false"].contains(v) {
                    throw StanzaError(.badRequest, "field '\(name)' must be a boolean (true/false), got '\(v)'")
                }
            case .listSingle, .listMulti:
                if !field.options.isEmpty {
                    for v in given where !field.options.contains(v) {
                        throw StanzaError(.badRequest, "field '\(name)': '\(v)' is not one of \(field.options.joined(separator: ", "))")
                    }
                }
            case .jidSingle, .jidMulti:
                for v in given where !v.isEmpty && JID(v) == nil {
                    throw StanzaError(.badRequest, "field '\(name)': '\(v)' is not a JID")
                }
            default: break
            }
        }
        let known = Set(fields.compactMap(\.variable))
        for name in values.keys where !known.contains(name) && name != "FORM_TYPE" {
            throw StanzaError(.badRequest, "unknown field '\(name)'")
        }
    }
}
