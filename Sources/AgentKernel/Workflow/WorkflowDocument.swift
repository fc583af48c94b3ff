import Foundation

/// The document that travels from agent to agent: the plan (steps) and, as it goes, what
/// happened (trail) and what earlier steps produced (context). See docs/workflow.md.
public struct WorkflowDocument: Codable, Sendable, Equatable {
    public struct Step: Codable, Sendable, Equatable {
        public var id: String
        public var action: String
        public var with: [String: JSONValue]
        public init(id: String, action: String, with: [String: JSONValue] = [:]) {
            self.id = id
            self.action = action
            self.with = with
        }
    }

    public struct FailurePolicy: Codable, Sendable, Equatable {
        public enum Then: String, Codable, Sendable { case notify, park }
        /// Extra attempts of a failed step before giving up.
        public var retries: Int
        /// After the last attempt: `notify` ends the workflow as failed (and says so);
        /// `park` keeps it, failed step pending, until someone resubmits or cancels it.
        public var then: Then
        public init(retries: Int = 0, then: Then = .notify) { self.retries = retries; self.then = then }
    }

    public enum Status: String, Codable, Sendable { case running, parked, completed, failed, cancelled }

    public struct TrailEntry: Codable, Sendable, Equatable {
        public var step: String
        public var action: String
        public var agent: String
        public var attempt: Int
        public var started: Date
        public var finished: Date?
        public var status: String
        public var outputs: [String: JSONValue]
        public var error: String?
        public var logTail: String?

        enum CodingKeys: String, CodingKey {
            case step, action, agent, attempt, started, finished, status, outputs, error
            case logTail = "log_tail"
        }
    }

    // The plan, as authored.
    public var name: String
    public var params: [String: JSONValue]
    public var notify: [String]
    public var steps: [Step]
    public var onFailure: FailurePolicy
    /// Seconds the whole workflow may take from submission.
    public var timeLimit: Double?

    // Run-time state.
    public var id: String
    public var submitter: String
    public var submitted: Date
    public var cursor: Int
    public var context: [String: [String: JSONValue]]
    public var trail: [TrailEntry]
    public var attempts: [String: Int]
    public var status: Status
    public var reason: String?

    enum CodingKeys: String, CodingKey {
        case name, params, notify, steps, id, submitter, submitted, cursor, context, trail, attempts, status, reason
        case onFailure = "on_failure"
        case timeLimit = "time_limit"
    }

    public init(name: String, steps: [Step], params: [String: JSONValue] = [:], notify: [String] = [],
                onFailure: FailurePolicy = .init(), timeLimit: Double? = nil) {
        self.name = name
        self.params = params
        self.notify = notify
        self.steps = steps
        self.onFailure = onFailure
        self.timeLimit = timeLimit
        id = ""
        submitter = ""
        submitted = Date(timeIntervalSince1970: 0)
        cursor = 0
        context = [:]
        trail = []
        attempts = [:]
        status = .running
    }

    public var currentStep: Step? { cursor < steps.count ? steps[cursor] : nil }
    public var isFinished: Bool { status == .completed || status == .failed || status == .cancelled }
    public var deadline: Date? { timeLimit.map { submitted.addingTimeInterval($0) } }
    /// `micro-appliance 3f2a`: how chat messages name a workflow.
    public var shortName: String { "\(name) \(id.prefix(4))" }

    /// Stamps a freshly authored document for its first hand-off.
    public func submitted(by submitter: String, id: String = WorkflowDocument.newID(), at date: Date = Date()) -> WorkflowDocument {
        var doc = self
        doc.id = id
        doc.submitter = submitter
        doc.submitted = date
        doc.cursor = 0
        doc.status = .running
        return doc
    }

    public static func newID() -> String {
        UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(12).description
    }

    // MARK: JSON for the wire and the journal

    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Milliseconds matter: trails and events time steps that take well under a second.
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Timestamp.string(date))
        }
        return encoder
    }()
    public static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            guard let date = Timestamp.date(text) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "'\(text)' is not an ISO 8601 time"))
            }
            return date
        }
        return decoder
    }()

    /// The document as compact JSON, keys sorted (see `JSONText`).
    public func json() throws -> String { jsonValue.jsonText }

    // MARK: What a document may hold

    /// Workflow names, step ids and workflow ids: they become directory names (a step's
    /// workspace is `state_dir/work/ID/STEP`), so no '/', no leading '.', and not too long.
    /// (The rules as patterns; `isName`/`isAction` implement them, and a test holds them equal.)
    static let namePattern = #"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"#
    static let actionPattern = #"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+$"#
    /// The longest `time_limit`: 30 days. Longer is almost certainly a typo, and the limit
    /// becomes a timer in milliseconds.
    public static let maximumTimeLimit: Double = 30 * 24 * 3600

    // Checked by hand rather than with the patterns above: every hand-off checks a dozen names,
    // and Foundation compiles a pattern on each use (tens of µs each, on the hand-off's path).
    static func isName(_ text: String) -> Bool {
        let bytes = text.utf8
        guard let first = bytes.first, bytes.count <= 64, isAlphanumeric(first) else { return false }
        return bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    static func isAction(_ text: String) -> Bool {
        let parts = text.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count >= 2, let module = parts.first, let first = module.first,
              first >= UInt8(ascii: "a"), first <= UInt8(ascii: "z") else { return false }
        return parts.allSatisfy { part in
            !part.isEmpty && part.allSatisfy { isLowerAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
        }
    }

    private static func isLowerAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        isLowerAlphanumeric(byte) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
    }

    /// Why `seconds` cannot be a `time_limit`, or nil if it can.
    static func timeLimitProblem(_ seconds: Double) -> String? {
        seconds.isFinite && seconds > 0 && seconds <= maximumTimeLimit ? nil
            : "'time_limit' must be seconds, more than 0 and at most \(Int(maximumTimeLimit)) (30 days)"
    }

    /// Checks what the JSON reader cannot: the rules the YAML parser applies to an authored
    /// workflow, and a run-time state that makes sense. A hand-off from another agent comes
    /// through here, so nothing in it can point a workspace outside `state_dir` or crash
    /// the agent that runs its step.
    public func validate() throws {
        func fail(_ message: String) -> WorkflowError { .invalid("workflow \(id.isEmpty ? name : id): \(message)") }
        guard Self.isName(name) else { throw fail("name '\(name)' may use letters, digits, '.', '_' and '-' only") }
        guard Self.isName(id) else { throw fail("id '\(id)' may use letters, digits, '.', '_' and '-' only") }
        guard !steps.isEmpty else { throw fail("no steps") }
        var ids = Set<String>()
        for step in steps {
            guard Self.isName(step.id) else { throw fail("step id '\(step.id)' may use letters, digits, '.', '_' and '-' only") }
            guard ids.insert(step.id).inserted else { throw fail("step id '\(step.id)' is used twice") }
            guard Self.isAction(step.action) else { throw fail("step \(step.id): '\(step.action)' is not an action like module.verb") }
        }
        guard (0...steps.count).contains(cursor) else { throw fail("cursor \(cursor) is outside its \(steps.count) steps") }
        guard (0...10).contains(onFailure.retries) else { throw fail("'retries' must be 0…10") }
        if let timeLimit, let problem = Self.timeLimitProblem(timeLimit) { throw fail(problem) }
        for (step, attempt) in attempts where !(0...1000).contains(attempt) {
            throw fail("step \(step): attempt \(attempt) is out of range")
        }
    }

    public static func from(json: String) throws -> WorkflowDocument {
        do {
            return try WorkflowDocument(jsonValue: JSONValue(parsing: json))
        } catch let error as JSONSyntaxError {
            throw WorkflowError.invalid("workflow JSON: \(error)")
        } catch WorkflowError.invalid(let message) {
            throw WorkflowError.invalid("workflow JSON: \(message)")
        }
    }
}

public enum WorkflowError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalid(String)
    case unknownWorkflow(String)
    case tooLarge(bytes: Int, limit: Int)

    public var description: String {
        switch self {
        case .invalid(let message): message
        case .unknownWorkflow(let name): "no workflow named '\(name)'"
        case .tooLarge(let bytes, let limit): "workflow is \(bytes) bytes; the limit is \(limit)"
        }
    }
}
