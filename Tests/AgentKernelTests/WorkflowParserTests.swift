import Foundation
import Logging
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

/// Input that must be refused with a sentence — never a crash, never a path outside the agent.
@Suite struct WorkflowInputLimitsTests {
    static func message(_ yaml: String) -> String {
        do {
            _ = try WorkflowParser.parse(yaml: yaml, source: "w.yaml")
            return "accepted"
        } catch { return "\(error)" }
    }

    @Test func stepIdsAreNamesNotPaths() {
        #expect(Self.message("workflow: w\nsteps:\n  - { id: ../../../tmp/victim, action: util.noop }\n")
            == "w.yaml:3:11: step id '../../../tmp/victim' may use letters, digits, '.', '_' and '-' only (at most 64)")
        #expect(Self.message("workflow: w\nsteps:\n  - { id: .hidden, action: util.noop }\n").contains("step id '.hidden'"))
        #expect(Self.message("workflow: w\nsteps:\n  - { id: build-1.x_y, action: util.noop }\n") == "accepted")
    }

    @Test func timeLimitsMustBeFiniteAndSane() {
        for value in [".inf", "-.inf", ".nan", "1e300", "0", "-5", "2592001"] {
            #expect(Self.message("workflow: w\ntime_limit: \(value)\nsteps: [{ id: s, action: util.noop }]\n")
                == "w.yaml:2:13: 'time_limit' must be seconds, more than 0 and at most 2592000 (30 days)", "time_limit: \(value)")
        }
        #expect(Self.message("workflow: w\ntime_limit: 2592000\nsteps: [{ id: s, action: util.noop }]\n") == "accepted")
    }

    @Test func deepNestingIsRefusedBeforeYamsRecursesIntoIt() {
        let flow = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(Self.message("workflow: w\nparams: { x: \(flow) }\nsteps: [{ id: s, action: util.noop }]\n")
            == "w.yaml: nested more than 64 levels deep")
        let compact = String(repeating: "- ", count: 20_000) + "x"
        #expect(Self.message("workflow: w\nparams:\n  x:\n    \(compact)\nsteps: [{ id: s, action: util.noop }]\n")
            == "w.yaml: nested more than 64 levels deep")
        // Forty levels are fine.
        let fine = String(repeating: "[", count: 40) + "1" + String(repeating: "]", count: 40)
        #expect(Self.message("workflow: w\nparams: { x: \(fine) }\nsteps: [{ id: s, action: util.noop }]\n") == "accepted")
    }

    @Test func aliasBombsAreRefused() {
        var yaml = "workflow: w\nparams:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...9 {
            let uses = Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ")
            yaml += "  a\(level): &a\(level) [\(uses)]\n"
        }
        yaml += "steps: [{ id: s, action: util.noop }]\n"
        #expect(Self.message(yaml) == "w.yaml: stands for more than 100000 values or 64 levels (aliases used over and over?)")
        // An alias used a few times is fine.
        let small = try? WorkflowParser.parse(yaml: "workflow: w\nparams: { a: &v [1, 2], b: *v }\nsteps: [{ id: s, action: util.noop }]\n", source: "w.yaml")
        #expect(small?.params["b"] == .array([.number(1), .number(2)]))
    }

    @Test func scalarsKeepTheirYAMLMeaningAndDatesStayText() throws {
        let document = try WorkflowParser.parse(yaml: """
            workflow: w
            params: { released: 2024-01-01, n: 3, f: 1.5, yes: true, nothing: ~, version: "1.0", hex: 0x10 }
            steps:
              - id: s
                action: shell.run
                with:
                  command: |
                    if [ -f "it's here" ]; then echo '[{' ; fi   # brackets in a script
            """, source: "w.yaml")
        #expect(document.params == ["released": .string("2024-01-01"), "n": .number(3), "f": .number(1.5), "yes": .bool(true),
                                    "nothing": .null, "version": .string("1.0"), "hex": .number(16)])
        #expect(document.steps[0].with["command"]?.string?.hasPrefix("if [ -f") == true)
    }

    @Test func nameAndActionChecksFollowTheirPatterns() {
        let samples = ["a", "build-1.x_y", "B2", "", ".x", "-x", "_x", "a/b", "../x", "a b", "é", "x" + String(repeating: "y", count: 63),
                       "x" + String(repeating: "y", count: 64), "build.image", "a.b.c", "a.", ".a", "a..b", "A.b", "a.B", "1a.b", "a-1.b_2",
                       "shell", "shell.run!", "a.b-", "a.-"]
        for sample in samples {
            #expect(WorkflowDocument.isName(sample) == (sample.range(of: WorkflowDocument.namePattern, options: .regularExpression) != nil), "name '\(sample)'")
            #expect(WorkflowDocument.isAction(sample) == (sample.range(of: WorkflowDocument.actionPattern, options: .regularExpression) != nil), "action '\(sample)'")
        }
    }

    @Test func handOffsAreCheckedLikeAuthoredWorkflows() throws {
        let good = WorkflowDocument(name: "w", steps: [.init(id: "s", action: "util.noop")]).submitted(by: "a@b")
        func refusal(_ change: (inout WorkflowDocument) -> Void) -> String {
            var document = good
            change(&document)
            let element = try! HandoffStanzas.handoff(document)
            do {
                _ = try HandoffStanzas.document(in: element)
                return "accepted"
            } catch let error as StanzaError {
                return "\(error.condition.rawValue): \(error.text ?? "")"
            } catch { return "\(error)" }
        }
        #expect(refusal { _ in } == "accepted")
        #expect(refusal { $0.cursor = -1 } == "bad-request: workflow \(good.id): cursor -1 is outside its 1 steps")
        #expect(refusal { $0.steps[0].id = "../../etc" }.hasPrefix("bad-request: workflow \(good.id): step id '../../etc'"))
        #expect(refusal { $0.timeLimit = 1e300 }.contains("'time_limit' must be seconds"))
        #expect(refusal { $0.id = "../x" }.contains("id '../x' may use letters"))
    }
}

@Suite struct StepInvocationTests {
    /// Of several earlier steps with an output of the same name, the last one's is taken. It
    /// came from whichever step a dictionary gave first, which varies from process to process
    /// (twenty steps here, so that picking by chance passes one run in twenty).
    @Test func earlierOutputIsTheMostRecentStepsOne() {
        let steps = (0..<20).map { "step\($0)" }
        let context = Dictionary(uniqueKeysWithValues: steps.enumerated().map { ($1, ["snapshot_id": JSONValue.number(Double($0))]) })
        let invocation = StepInvocation(workflowID: "w", workflowName: "w", step: .init(id: "build", action: "build.image"), params: [:],
                                        context: context, earlierSteps: steps, attempt: 1, trail: [], submitter: "ops@baton.test",
                                        workspace: URL(fileURLWithPath: "/nonexistent"), logger: Logger(label: "t"), progress: { _ in })
        #expect(invocation.earlierOutput("snapshot_id") == .number(19))
        #expect(invocation.earlierOutput("absent") == nil)
    }
}
