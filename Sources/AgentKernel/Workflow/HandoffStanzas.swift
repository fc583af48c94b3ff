/// The hand-off IQ: the whole document, as XEP-0335 JSON, for step `seq`.
///
/// ```xml
/// <iq type='set' to='build@baton.test/agent' id='h1'>
///   <handoff xmlns='urn:baton:workflow:0' workflow='3f2a9c01d2e4' seq='2'>
///     <json xmlns='urn:xmpp:json:0'>{"name":"micro-appliance","cursor":2,…}</json>
///   </handoff>
/// </iq>
/// ```
/// The receiver answers `result` only once the document is in its journal (synced), with
/// `<accepted xmlns='urn:baton:workflow:0' duplicate='true'/>` when it already had that step.
public enum HandoffStanzas {
    /// `json` is the document already encoded (the sender journals the same text).
    public static func handoff(_ document: WorkflowDocument, json: String? = nil) throws -> XMLElement {
        XMLElement("handoff", xmlns: NS.batonWorkflow, ["workflow": document.id, "seq": String(document.cursor)],
                   children: [XMLElement("json", xmlns: NS.json, text: try json ?? document.json())])
    }

    public static func accepted(duplicate: Bool) -> XMLElement {
        XMLElement("accepted", xmlns: NS.batonWorkflow, ["duplicate": duplicate ? "true" : "false"])
    }

    /// Reads a hand-off, returning the document and its JSON text as received; refuses
    /// (bad-request) anything malformed or inconsistent.
    public static func document(in handoff: XMLElement) throws -> (document: WorkflowDocument, json: String) {
        guard let json = handoff.child("json", xmlns: NS.json)?.text else {
            throw StanzaError(.badRequest, "handoff without a <json xmlns='\(NS.json)'/> document")
        }
        let document: WorkflowDocument
        do {
            document = try WorkflowDocument.from(json: json)
            try document.validate()
        } catch {
            throw StanzaError(.badRequest, "\(error)")
        }
        guard handoff["workflow"] == document.id, handoff["seq"] == String(document.cursor) else {
            throw StanzaError(.badRequest, "handoff attributes (workflow, seq) disagree with the document")
        }
        guard document.cursor < document.steps.count, !document.isFinished else {
            throw StanzaError(.badRequest, "workflow \(document.id) has no step \(document.cursor) left to run")
        }
        return (document, json)
    }
}
