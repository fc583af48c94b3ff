import Foundation
import Testing
@testable import AgentKernel

/// The hand-written JSON path of the workflow document (`JSONText`, `WorkflowDocument+JSON`)
/// must write and read exactly what the `Codable` conformance does.
@Suite struct DocumentJSONTests {
    /// A document using every field and every kind of JSON value, with text that needs escaping.
    static func richDocument() throws -> WorkflowDocument {
        var document = WorkflowDocument(
            name: "micro-appliance",
            steps: [
                .init(id: "configure", action: "config.render", with: ["release": .string("1.2/rc"), "sizes": .array([.number(3), .number(1.5), .number(-2)])]),
                .init(id: "build", action: "build.image", with: ["flags": .object(["quiet": .bool(true), "none": .null])]),
                .init(id: "test", action: "test.vm"),
            ],
            params: ["suite": .string("bookworm"), "big": .number(1e20), "small": .number(1e-7), "tenth": .number(0.1),
                     "text": .string("quote \" backslash \\ tab \t newline \n bell \u{7} esc \u{1B} slash / é ✓ 🚀")],
            notify: ["ops@baton.test", "shift@baton.test/phone"],
            onFailure: .init(retries: 2, then: .park), timeLimit: 3600.5)
            .submitted(by: "alice@baton.test/laptop", id: "3f2a0c1d9e8b", at: Date(timeIntervalSince1970: 1_795_896_774.882))
        document.cursor = 2
        document.attempts = ["configure": 1, "build": 2]
        document.context = ["configure": ["digest": .string("sha256:ab")], "build": ["image": .string("a.img"), "mb": .number(512)]]
        document.trail = [
            .init(step: "configure", action: "config.render", agent: "config@baton.test/agent", attempt: 1,
                  started: Date(timeIntervalSince1970: 1_795_897_975.001), finished: Date(timeIntervalSince1970: 1_795_897_975.25),
                  status: "done", outputs: ["digest": .string("sha256:ab")]),
            .init(step: "build", action: "build.image", agent: "build@baton.test/agent", attempt: 1,
                  started: Date(timeIntervalSince1970: 1_795_897_976), finished: nil, status: "failed", outputs: [:],
                  error: "mke2fs: \"no space\"", logTail: "line 1\nline 2\r\n\u{1B}[31mred\u{1B}[0m"),
        ]
        document.reason = "retrying build"
        return document
    }

    @Test func writesWhatJSONEncoderWrites() throws {
        let document = try Self.richDocument()
        let codable = String(decoding: try WorkflowDocument.encoder.encode(document), as: UTF8.self)
        #expect(try document.json() == codable)
    }

    @Test func readsWhatJSONDecoderReads() throws {
        let text = try Self.richDocument().json()
        let fast = try WorkflowDocument.from(json: text)
        let codable = try WorkflowDocument.decoder.decode(WorkflowDocument.self, from: Data(text.utf8))
        #expect(fast == codable)
        #expect(try fast.json() == text)
        #expect(fast.trail[1].finished == nil && fast.trail[1].logTail?.hasSuffix("\u{1B}[0m") == true)
        #expect(fast.params["text"]?.string?.contains("🚀") == true)
    }

    @Test func timestampsKeepMilliseconds() throws {
        let date = Date(timeIntervalSince1970: 1_795_896_774.882)
        #expect(Timestamp.string(date) == "2026-11-28T20:12:54.882Z")
        let read = try #require(Timestamp.date("2026-11-28T20:12:54.882Z"))
        #expect(abs(read.timeIntervalSince(date)) < 0.0005)
        #expect(Timestamp.string(read) == "2026-11-28T20:12:54.882Z")
        // Other ISO 8601 forms still read; impossible dates do not.
        #expect(Timestamp.date("2026-11-28T21:12:54+01:00") == Date(timeIntervalSince1970: 1_795_896_774))
        #expect(Timestamp.date("2026-02-30T00:00:00Z") == nil)
        #expect(Timestamp.date("yesterday") == nil)
    }

    @Test func numbersRoundTrip() throws {
        for number in [0, 3, -2, 1.5, 0.1, 1e20, 1e-7, 123_456_789_012_345, -0.0] as [Double] {
            let text = JSONValue.number(number).jsonText
            #expect(text == String(decoding: try JSONEncoder().encode(number), as: UTF8.self), "\(number)")
            #expect(try JSONValue(parsing: text) == .number(number))
        }
    }

    @Test func malformedTextIsRefusedWithItsPlace() throws {
        let cases: [(String, String)] = [
            (#"{"a":1"#, "byte 6: unexpected end of text in an object"),
            (#"{"a":1} x"#, "byte 8: unexpected text after the value"),
            (#"{"a":"\q"}"#, "byte 8: unknown escape in a string"),
            (#"{"a":01}"#, "byte 5: leading zero in a number"),
            (#"["\ud800"]"#, "byte 8: unpaired surrogate in a string"),
            ("{\"a\":\"\u{1}\"}", "byte 6: control character in a string"),
            (String(repeating: "[", count: 300), "nested too deeply"),
        ]
        for (text, expected) in cases {
            #expect(throws: JSONSyntaxError.self) { try JSONValue(parsing: text) }
            do {
                _ = try JSONValue(parsing: text)
            } catch {
                #expect("\(error)".contains(expected), "\(text): \(error)")
            }
        }
    }

    @Test func documentErrorsSayWhere() throws {
        var value = try JSONValue(parsing: try Self.richDocument().json())
        guard case .object(var members) = value else { Issue.record("not an object"); return }
        members["cursor"] = nil
        value = .object(members)
        #expect(throws: WorkflowError.invalid("workflow JSON: missing 'cursor' at ''")) {
            try WorkflowDocument.from(json: value.jsonText)
        }
        members["cursor"] = .number(1.5)
        #expect(throws: WorkflowError.invalid("workflow JSON: wrong type at 'cursor': expected an integer")) {
            try WorkflowDocument.from(json: JSONValue.object(members).jsonText)
        }
        members["cursor"] = .number(1)
        members["steps"] = .array([.object(["id": .number(1), "action": .string("a"), "with": .object([:])])])
        #expect(throws: WorkflowError.invalid("workflow JSON: wrong type at 'steps.0.id': expected a string")) {
            try WorkflowDocument.from(json: JSONValue.object(members).jsonText)
        }
        #expect(throws: WorkflowError.invalid("workflow JSON: not valid JSON at byte 0: unexpected character")) {
            try WorkflowDocument.from(json: "<xml/>")
        }
    }
}
