import Testing
@testable import AgentKernel

/// The XEP-0050 session logic, driven directly (no network): stages, validation, trust, cancel.
@Suite struct AdHocCommandTests {
    let service = AdHocCommandService(commands: [
        AdHocCommand(node: "two", name: "Two stages", stages: [
            { _ in DataForm(.form, fields: [.init("a", required: true)]) },
            { values in DataForm(.form, title: "after \(values["a"]?.first ?? "")", fields: [.init("b", type: .listSingle, required: true, options: ["x", "y"])]) },
        ]) { invocation in .fields("done", [("ab", (invocation.value("a") ?? "") + (invocation.value("b") ?? ""))]) },
        AdHocCommand(node: "open", name: "Open", requiresTrust: false) { _ in .text("hello") },
    ])

    func submit(_ node: String, _ action: AdHocStanzas.Action, session: String?, _ values: [String: String]) -> XMLElement {
        AdHocStanzas.request(node: node, action: action, sessionID: session,
                             form: DataForm(.submit, fields: values.map { DataForm.Field($0.key, type: nil, values: [$0.value]) }))
    }

    @Test func walksTheStages() async throws {
        let first = try await service.handle(AdHocStanzas.request(node: "two"), from: "ops@x/1", trusted: true)
        #expect(first["status"] == "executing")
        let session = try #require(first["sessionid"])
        #expect(first.child("actions")?["execute"] == "next")
        let second = try await service.handle(submit("two", .next, session: session, ["a": "1"]), from: "ops@x/1", trusted: true)
        #expect(try DataForm(parsing: #require(second.child("x"))).title == "after 1")
        #expect(second.child("actions")?.child("prev") != nil)
        let done = try await service.handle(submit("two", .complete, session: session, ["b": "y"]), from: "ops@x/1", trusted: true)
        #expect(done["status"] == "completed")
        #expect(try DataForm(parsing: #require(done.child("x")))["ab"] == "1y")
        // The session is gone once completed.
        await #expect(throws: StanzaError.self) {
            try await service.handle(submit("two", .complete, session: session, ["b": "y"]), from: "ops@x/1", trusted: true)
        }
    }

    @Test func badValueIsBadRequestNamingTheField() async throws {
        let first = try await service.handle(AdHocStanzas.request(node: "two"), from: "ops@x/1", trusted: true)
        let session = try #require(first["sessionid"])
        _ = try await service.handle(submit("two", .next, session: session, ["a": "1"]), from: "ops@x/1", trusted: true)
        await #expect(throws: StanzaError(.badRequest, "field 'b': 'z' is not one of x, y")) {
            try await service.handle(submit("two", .complete, session: session, ["b": "z"]), from: "ops@x/1", trusted: true)
        }
    }

    @Test func batchExecuteValidatesAllStages() async throws {
        let done = try await service.handle(submit("two", .execute, session: nil, ["a": "p", "b": "x"]), from: "ops@x/1", trusted: true)
        #expect(done["status"] == "completed")
        await #expect(throws: StanzaError(.badRequest, "field 'b' is required")) {
            try await service.handle(submit("two", .execute, session: nil, ["a": "p"]), from: "ops@x/1", trusted: true)
        }
    }

    @Test func untrustedIsForbiddenUnlessCommandIsOpen() async throws {
        await #expect(throws: StanzaError.self) {
            try await service.handle(AdHocStanzas.request(node: "two"), from: "evil@y/1", trusted: false)
        }
        let open = try await service.handle(AdHocStanzas.request(node: "open"), from: "evil@y/1", trusted: false)
        #expect(open.child("note")?.text == "hello")
    }

    @Test func cancelAndForeignSessions() async throws {
        let first = try await service.handle(AdHocStanzas.request(node: "two"), from: "ops@x/1", trusted: true)
        let session = try #require(first["sessionid"])
        await #expect(throws: StanzaError(.forbidden, "session '\(session)' belongs to another JID")) {
            try await service.handle(submit("two", .next, session: session, ["a": "1"]), from: "other@x/1", trusted: true)
        }
        let canceled = try await service.handle(AdHocStanzas.request(node: "two", action: .cancel, sessionID: session), from: "ops@x/1", trusted: true)
        #expect(canceled["status"] == "canceled")
    }

    @Test func unknownNodeAndAction() async throws {
        await #expect(throws: StanzaError(.itemNotFound, "no command 'nope' on this agent")) {
            try await service.handle(AdHocStanzas.request(node: "nope"), from: "ops@x/1", trusted: true)
        }
        let bad = XMLElement("command", xmlns: NS.commands, ["node": "two", "action": "dance"])
        let error = await #expect(throws: StanzaError.self) { try await service.handle(bad, from: "ops@x/1", trusted: true) }
        #expect(error?.condition == .badRequest)
    }
}
