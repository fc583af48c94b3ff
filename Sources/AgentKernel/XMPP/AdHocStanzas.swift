/// XEP-0050 stanza shapes.
///
/// ```xml
/// <iq type='set' to='build@baton.test/agent' id='1'>
///   <command xmlns='http://jabber.org/protocol/commands' node='status' action='execute'/>
/// </iq>
/// <iq type='result' id='1'>
///   <command xmlns='http://jabber.org/protocol/commands' node='status' sessionid='s1' status='completed'>
///     <note type='info'>…</note>
///     <x xmlns='jabber:x:data' type='result'>…</x>
///   </command>
/// </iq>
/// ```
public enum AdHocStanzas {
    public enum Action: String, Sendable { case execute, next, prev, complete, cancel }
    public enum Status: String, Sendable { case executing, completed, canceled }

    public struct Note: Sendable, Equatable {
        public enum Kind: String, Sendable { case info, warn, error }
        public var kind: Kind
        public var text: String
        public init(_ kind: Kind, _ text: String) { self.kind = kind; self.text = text }
    }

    public static func request(node: String, action: Action = .execute, sessionID: String? = nil, form: DataForm? = nil) -> XMLElement {
        XMLElement("command", xmlns: NS.commands, ["node": node, "action": action.rawValue, "sessionid": sessionID],
                   children: form.map { [$0.element] } ?? [])
    }

    public static func response(node: String, sessionID: String, status: Status, form: DataForm? = nil,
                                notes: [Note] = [], allowed: [Action] = []) -> XMLElement {
        var command = XMLElement("command", xmlns: NS.commands, ["node": node, "sessionid": sessionID, "status": status.rawValue])
        if status == .executing, !allowed.isEmpty {
            let execute = allowed.contains(.complete) ? Action.complete : (allowed.first ?? .complete)
            command.append(XMLElement("actions", ["execute": execute.rawValue],
                                      children: allowed.filter { $0 != .cancel && $0 != .execute }.map { XMLElement($0.rawValue) }))
        }
        for note in notes { command.append(XMLElement("note", ["type": note.kind.rawValue], text: note.text)) }
        if let form { command.append(form.element) }
        return command
    }

    /// XEP-0050 §4.6 application conditions.
    public static func condition(_ name: String) -> XMLElement { XMLElement(name, xmlns: NS.commands) }
}
