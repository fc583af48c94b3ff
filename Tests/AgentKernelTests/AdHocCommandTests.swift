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
        // The session stays, for the mended form.
        let done = try await service.handle(submit("two", .complete, session: session, ["b": "x"]), from: "ops@x/1", trusted: true)
        #expect(try DataForm(parsing: #require(done.child("x")))["ab"] == "1x")
    }

    @Test func completeOnlyWhereOffered() async throws {
        let first = try await service.handle(AdHocStanzas.request(node: "two"), from: "ops@x/1", trusted: true)
        let session = try #require(first["sessionid"])
        let early = await #expect(throws: StanzaError.self) {
            try await service.handle(submit("two", .complete, session: session, ["a": "1"]), from: "ops@x/1", trusted: true)
        }
        #expect(early?.condition == .badRequest && early?.text == "'complete' is not offered at stage 1 of 2 of 'two'")
        let second = try await service.handle(submit("two", .next, session: session, ["a": "1"]), from: "ops@x/1", trusted: true)
        #expect(second["status"] == "executing")
    }

    /// A double click on Finish sends the last stage twice: the command runs once.
    @Test func aSessionsLastStageRunsOnceWhenSentTwice() async throws {
        let runs = Locked(0)
        let slow = AdHocCommandService(commands: [
            // Its form takes a moment to make (real ones read the journal or the disk).
            AdHocCommand(node: "slow", name: "Slow", stages: [{ _ in
                try await Task.sleep(for: .milliseconds(50))
                return DataForm(.form, fields: [.init("a", required: true)])
            }]) { _ in
                runs.withLock { $0 += 1 }
                try await Task.sleep(for: .milliseconds(200))
                return .text("ran")
            },
        ])
        let first = try await slow.handle(AdHocStanzas.request(node: "slow"), from: "ops@x/1", trusted: true)
        let session = try #require(first["sessionid"])
        let finish = submit("slow", .complete, session: session, ["a": "1"])
        async let one = try? slow.handle(finish, from: "ops@x/1", trusted: true)
        async let two = try? slow.handle(finish, from: "ops@x/1", trusted: true)
        let outcomes = await [one, two]
        #expect(outcomes.filter { $0?["status"] == "completed" }.count == 1)
        #expect(runs.value == 1)
    }

    /// XEP-0050: an expired session is not-allowed + session-expired (a client can say so), an
    /// unknown one bad-request + bad-sessionid; a session expires after a quiet while, not a
    /// long one.
    @Test func expiredSessionsAreToldApartFromUnknownOnes() async throws {
        let quick = AdHocCommandService(commands: service.commands, sessionLifetime: .seconds(1))
        let first = try await quick.handle(AdHocStanzas.request(node: "two"), from: "ops@x/1", trusted: true)
        let session = try #require(first["sessionid"])
        // Active every half second, it outlives the 1 s lifetime.
        try await Task.sleep(for: .milliseconds(600))
        _ = try await quick.handle(submit("two", .next, session: session, ["a": "1"]), from: "ops@x/1", trusted: true)
        try await Task.sleep(for: .milliseconds(600))
        _ = try await quick.handle(submit("two", .prev, session: session, [:]), from: "ops@x/1", trusted: true)
        try await Task.sleep(for: .milliseconds(1500))
        let expired = await #expect(throws: StanzaError.self) {
            try await quick.handle(submit("two", .next, session: session, ["a": "1"]), from: "ops@x/1", trusted: true)
        }
        #expect(expired?.condition == .notAllowed && expired?.appCondition?.name == "session-expired")
        let unknown = await #expect(throws: StanzaError.self) {
            try await quick.handle(submit("two", .next, session: "never-was", ["a": "1"]), from: "ops@x/1", trusted: true)
        }
        #expect(unknown?.condition == .badRequest && unknown?.appCondition?.name == "bad-sessionid")
    }

    @Test func unfinishedSessionsAreBoundedPerJID() async throws {
        for _ in 0..<AdHocCommandService.maximumSessionsPerJID {
            _ = try await service.handle(AdHocStanzas.request(node: "two"), from: "flood@x/1", trusted: true)
        }
        let refused = await #expect(throws: StanzaError.self) {
            try await service.handle(AdHocStanzas.request(node: "two"), from: "flood@x/1", trusted: true)
        }
        #expect(refused?.condition == .resourceConstraint)
        let other = try await service.handle(AdHocStanzas.request(node: "two"), from: "ops@x/1", trusted: true)
        #expect(other["status"] == "executing")
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
