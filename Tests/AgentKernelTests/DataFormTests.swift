import Testing
@testable import AgentKernel

@Suite struct DataFormTests {
    let form = DataForm(.form, title: "T", fields: [
        .init("name", required: true),
        .init("mode", type: .listSingle, options: ["fast", "slow"]),
        .init("flag", type: .boolean),
        .init("owner", type: .jidSingle),
    ])

    @Test func roundTripsThroughXML() throws {
        var withValues = form
        withValues.fields[0].values = ["x & y"]
        let parsed = try DataForm(parsing: withValues.element)
        #expect(parsed == withValues)
    }

    @Test func validationNamesTheField() {
        #expect(throws: StanzaError(.badRequest, "field 'name' is required")) { try form.validate([:]) }
        #expect(throws: StanzaError(.badRequest, "field 'mode': 'medium' is not one of fast, slow")) {
            try form.validate(["name": ["n"], "mode": ["medium"]])
        }
        #expect(throws: StanzaError(.badRequest, "field 'flag' must be a boolean (true/false), got 'yes'")) {
            try form.validate(["name": ["n"], "flag": ["yes"]])
        }
        #expect(throws: StanzaError(.badRequest, "unknown field 'colour'")) { try form.validate(["name": ["n"], "colour": ["red"]]) }
        #expect(throws: StanzaError(.badRequest, "field 'owner': 'not a jid@' is not a JID")) {
            try form.validate(["name": ["n"], "owner": ["not a jid@"]])
        }
        #expect(throws: Never.self) { try form.validate(["name": ["n"], "mode": ["fast"], "flag": ["true"]]) }
    }

    /// `agentctl run JID ping jid= jid=a@b.c` once crashed the agent: "required" was met by the
    /// second value, the handler read the first (empty) one.
    @Test func singleValuedFieldsTakeOneValueAndRequiredMeansThatOne() {
        #expect(throws: StanzaError(.badRequest, "field 'name' takes one value")) { try form.validate(["name": ["", "n"]]) }
        #expect(throws: StanzaError(.badRequest, "field 'owner' takes one value")) {
            try form.validate(["name": ["n"], "owner": ["", "a@b.c"]])
        }
        #expect(throws: StanzaError(.badRequest, "field 'flag' takes one value")) { try form.validate(["name": ["n"], "flag": ["true", "false"]]) }
        #expect(throws: StanzaError(.badRequest, "field 'name' is required")) { try form.validate(["name": [""]]) }
        let multi = DataForm(.form, fields: [.init("jids", type: .jidMulti, required: true)])
        #expect(throws: Never.self) { try multi.validate(["jids": ["", "a@b.c"]]) }
        #expect(throws: StanzaError(.badRequest, "field 'jids' is required")) { try multi.validate(["jids": [""]]) }
    }

    @Test func rejectsFormsOfUnknownType() {
        let bad = XMLElement("x", xmlns: NS.dataForms, ["type": "weird"])
        #expect(throws: StanzaError.self) { try DataForm(parsing: bad) }
    }
}
