import Foundation
import Testing
@testable import AgentKernel

@Suite struct WorkflowEventTests {
    let document = WorkflowDocument(name: "micro", steps: [.init(id: "image", action: "build.image"), .init(id: "vm", action: "test.vm")])
        .submitted(by: "ops@baton.test/laptop", id: "3f2a9c01d2e4")

    @Test func aBatchCarriesItsEventsInOrder() throws {
        let started = WorkflowEvent(.started, document: document, agent: "build@baton.test/agent", step: document.steps[0])
        let done = WorkflowEvent(.done, document: document, agent: "build@baton.test/agent", step: document.steps[0], elapsed: 41.2)
        let payload = WorkflowEvent.batch([started, done])
        #expect(payload.name == "events" && payload.xmlns == NS.batonWorkflow && payload.children.count == 2)
        let events = WorkflowEvent.events(in: payload)
        #expect(events.map(\.kind) == [.started, .done])
        #expect(events.last?.line == "[micro 3f2a] build.image on build@baton.test/agent done in 41.2s (1/2)")
        #expect(events.first?.workflow == "3f2a9c01d2e4")
    }

    @Test func aSingleEventIsReadToo() throws {
        let parked = WorkflowEvent(.parked, document: document, agent: "cfg@baton.test/agent", message: "no agent offers test.vm")
        #expect(WorkflowEvent.events(in: parked.element).map(\.message) == ["no agent offers test.vm"])
        #expect(WorkflowEvent.events(in: XMLElement("event", xmlns: "urn:other:0")).isEmpty)
        #expect(WorkflowEvent.events(in: nil).isEmpty)
    }

    @Test func writesWhatJSONEncoderWrites() throws {
        let full = WorkflowEvent(.done, document: document, agent: "build@baton.test/agent", step: document.steps[1],
                                 elapsed: 41.234, message: "quotes \" and / slashes, 🚀, \u{1B}[0m")
        let bare = WorkflowEvent(.submitted, document: document, agent: "cfg@baton.test/agent")
        for event in [full, bare] {
            let codable = String(decoding: try WorkflowDocument.encoder.encode(event), as: UTF8.self)
            #expect(event.jsonText == codable)
            #expect(WorkflowEvent(element: event.element)?.jsonText == event.jsonText)
        }
    }

    @Test func elapsedReadsAsPrintfWritesIt() {
        for seconds in [0, 0.04, 0.96, 1, 9.94, 41.23, 59.99, 3600.5, 86_399.97] {
            #expect(WorkflowEvent.tenths(seconds) == String(format: "%.1f", seconds), "\(seconds)")
        }
    }
}
