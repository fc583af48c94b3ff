import Testing
@testable import AgentKernel

/// `agentctl wf submit --param KEY=VALUE`: parameters set in a workflow's YAML before it is sent.
@Suite struct WorkflowParamTests {
    static let file = """
        # release the appliance
        workflow: micro
        params: { channel: testing, keep: 3 }
        steps:
          - { id: publish, action: release.publish }
        """

    @Test func setsAndAddsParamsReadAsYAML() throws {
        let yaml = try WorkflowParser.setting(params: ["channel=stable", "version=\"1.0\"", "count=3", "dry=true", "tags=[a, b]", "note="],
                                              in: Self.file, source: "micro.yaml")
        let document = try WorkflowParser.parse(yaml: yaml, source: "micro.yaml")
        #expect(document.params == ["channel": .string("stable"), "keep": .number(3), "version": .string("1.0"), "count": .number(3),
                                    "dry": .bool(true), "tags": .array([.string("a"), .string("b")]), "note": .string("")])
        #expect(document.name == "micro" && document.steps.map(\.action) == ["release.publish"])
    }

    @Test func aWorkflowWithoutParamsGetsThem() throws {
        let yaml = try WorkflowParser.setting(params: ["channel=stable"], in: "workflow: w\nsteps: [{ id: s, action: util.noop }]\n", source: "w.yaml")
        #expect(try WorkflowParser.parse(yaml: yaml, source: "w.yaml").params == ["channel": .string("stable")])
    }

    @Test func badAssignmentsAreRefusedPrecisely() {
        func message(_ assignment: String) -> String {
            do {
                _ = try WorkflowParser.setting(params: [assignment], in: Self.file, source: "micro.yaml")
                return "accepted"
            } catch { return "\(error)" }
        }
        #expect(message("channel") == "parameter 'channel': expected KEY=VALUE")
        #expect(message("=stable") == "parameter '=stable': expected KEY=VALUE")
        #expect(message("tags=[a, b").hasPrefix("parameter 'tags': invalid YAML value: "))
        #expect(throws: WorkflowError.self) { try WorkflowParser.setting(params: ["a=1"], in: "- just\n- a list\n", source: "l.yaml") }
    }
}
