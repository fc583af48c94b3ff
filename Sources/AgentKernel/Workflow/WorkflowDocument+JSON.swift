import Foundation

/// The document as `JSONValue`, both ways, under the same key names as its `Codable`
/// conformance (`CodingKeys`): `json()` and `from(json:)` go through here and `JSONText`, the
/// fast path every hand-off takes. A test checks the result against `JSONEncoder`'s.
extension WorkflowDocument {
    var jsonValue: JSONValue {
        typealias K = CodingKeys
        var o: [String: JSONValue] = [
            K.name.stringValue: .string(name),
            K.params.stringValue: .object(params),
            K.notify.stringValue: .array(notify.map { .string($0) }),
            K.steps.stringValue: .array(steps.map(\.jsonValue)),
            K.onFailure.stringValue: .object(["retries": .number(Double(onFailure.retries)), "then": .string(onFailure.then.rawValue)]),
            K.id.stringValue: .string(id),
            K.submitter.stringValue: .string(submitter),
            K.submitted.stringValue: .string(Timestamp.string(submitted)),
            K.cursor.stringValue: .number(Double(cursor)),
            K.context.stringValue: .object(context.mapValues { .object($0) }),
            K.trail.stringValue: .array(trail.map(\.jsonValue)),
            K.attempts.stringValue: .object(attempts.mapValues { .number(Double($0)) }),
            K.status.stringValue: .string(status.rawValue),
        ]
        if let timeLimit { o[K.timeLimit.stringValue] = .number(timeLimit) }
        if let reason { o[K.reason.stringValue] = .string(reason) }
        return .object(o)
    }

    init(jsonValue value: JSONValue) throws {
        typealias K = CodingKeys
        let o = try JSONFields(value, path: "")
        name = try o.string(K.name)
        params = try o.object(K.params)
        notify = try o.array(K.notify).enumerated().map { try JSONFields.string($1, path: o.path(K.notify, $0)) }
        steps = try o.array(K.steps).enumerated().map { try Step(jsonValue: $1, path: o.path(K.steps, $0)) }
        let policy = try JSONFields(o.required(K.onFailure), path: o.path(K.onFailure))
        onFailure = FailurePolicy(retries: try policy.int("retries"), then: try policy.enumeration("then"))
        timeLimit = try o.optionalNumber(K.timeLimit)
        id = try o.string(K.id)
        submitter = try o.string(K.submitter)
        submitted = try o.date(K.submitted)
        cursor = try o.int(K.cursor)
        context = try o.object(K.context).reduce(into: [:]) { out, member in
            guard case .object(let outputs) = member.value else { throw JSONFields.wrongType(o.path(K.context, member.key), "an object") }
            out[member.key] = outputs
        }
        trail = try o.array(K.trail).enumerated().map { try TrailEntry(jsonValue: $1, path: o.path(K.trail, $0)) }
        attempts = try o.object(K.attempts).reduce(into: [:]) { out, member in
            out[member.key] = try JSONFields.int(member.value, path: o.path(K.attempts, member.key))
        }
        status = try o.enumeration(K.status)
        reason = try o.optionalString(K.reason)
    }
}

extension WorkflowDocument.Step {
    var jsonValue: JSONValue { .object(["id": .string(id), "action": .string(action), "with": .object(with)]) }

    init(jsonValue value: JSONValue, path: String) throws {
        let o = try JSONFields(value, path: path)
        self.init(id: try o.string("id"), action: try o.string("action"), with: try o.object("with"))
    }
}

extension WorkflowDocument.TrailEntry {
    var jsonValue: JSONValue {
        typealias K = CodingKeys
        var o: [String: JSONValue] = [
            K.step.stringValue: .string(step), K.action.stringValue: .string(action), K.agent.stringValue: .string(agent),
            K.attempt.stringValue: .number(Double(attempt)), K.started.stringValue: .string(Timestamp.string(started)),
            K.status.stringValue: .string(status), K.outputs.stringValue: .object(outputs),
        ]
        if let finished { o[K.finished.stringValue] = .string(Timestamp.string(finished)) }
        if let error { o[K.error.stringValue] = .string(error) }
        if let logTail { o[K.logTail.stringValue] = .string(logTail) }
        return .object(o)
    }

    init(jsonValue value: JSONValue, path: String) throws {
        typealias K = CodingKeys
        let o = try JSONFields(value, path: path)
        self.init(step: try o.string(K.step), action: try o.string(K.action), agent: try o.string(K.agent),
                  attempt: try o.int(K.attempt), started: try o.date(K.started), finished: try o.optionalDate(K.finished),
                  status: try o.string(K.status), outputs: try o.object(K.outputs), error: try o.optionalString(K.error),
                  logTail: try o.optionalString(K.logTail))
    }
}

/// Typed reads from one JSON object, with errors that say where: "missing 'cursor' at ''",
/// "wrong type at 'steps.0.id': expected a string" (the wording `JSONDecoder` errors get).
struct JSONFields {
    let members: [String: JSONValue]
    let path: String

    init(_ value: JSONValue, path: String) throws {
        guard case .object(let members) = value else { throw Self.wrongType(path, "an object") }
        self.members = members
        self.path = path
    }

    static func wrongType(_ path: String, _ expected: String) -> WorkflowError {
        .invalid("wrong type at '\(path)': expected \(expected)")
    }

    func path(_ key: some CodingKey) -> String { path(key.stringValue) }
    func path(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
    func path(_ key: some CodingKey, _ index: Int) -> String { "\(path(key)).\(index)" }
    func path(_ key: some CodingKey, _ member: String) -> String { "\(path(key)).\(member)" }

    func required(_ key: some CodingKey) throws -> JSONValue { try required(key.stringValue) }
    func required(_ key: String) throws -> JSONValue {
        guard let value = members[key] else { throw WorkflowError.invalid("missing '\(key)' at '\(path)'") }
        return value
    }
    /// nil when absent or null, as `decodeIfPresent` has it.
    func optional(_ key: some CodingKey) -> JSONValue? {
        guard let value = members[key.stringValue], value != .null else { return nil }
        return value
    }

    static func string(_ value: JSONValue, path: String) throws -> String {
        guard case .string(let s) = value else { throw wrongType(path, "a string") }
        return s
    }
    static func int(_ value: JSONValue, path: String) throws -> Int {
        guard case .number(let n) = value, n == n.rounded(), abs(n) < 9e15 else { throw wrongType(path, "an integer") }
        return Int(n)
    }

    func string(_ key: some CodingKey) throws -> String { try string(key.stringValue) }
    func string(_ key: String) throws -> String { try Self.string(required(key), path: path(key)) }
    func int(_ key: some CodingKey) throws -> Int { try int(key.stringValue) }
    func int(_ key: String) throws -> Int { try Self.int(required(key), path: path(key)) }
    func object(_ key: some CodingKey) throws -> [String: JSONValue] { try object(key.stringValue) }
    func object(_ key: String) throws -> [String: JSONValue] {
        guard case .object(let o) = try required(key) else { throw Self.wrongType(path(key), "an object") }
        return o
    }
    func array(_ key: some CodingKey) throws -> [JSONValue] {
        guard case .array(let a) = try required(key) else { throw Self.wrongType(path(key), "an array") }
        return a
    }
    func enumeration<T: RawRepresentable<String>>(_ key: some CodingKey) throws -> T { try enumeration(key.stringValue) }
    func enumeration<T: RawRepresentable<String>>(_ key: String) throws -> T {
        let text = try string(key)
        guard let value = T(rawValue: text) else { throw WorkflowError.invalid("'\(text)' is not a valid value at '\(path(key))'") }
        return value
    }
    func date(_ key: some CodingKey) throws -> Date {
        let text = try string(key)
        guard let date = Timestamp.date(text) else { throw WorkflowError.invalid("'\(text)' is not an ISO 8601 time at '\(path(key))'") }
        return date
    }
    func optionalString(_ key: some CodingKey) throws -> String? {
        try optional(key).map { try Self.string($0, path: path(key)) }
    }
    func optionalNumber(_ key: some CodingKey) throws -> Double? {
        try optional(key).map { value in
            guard case .number(let n) = value else { throw Self.wrongType(path(key), "a number") }
            return n
        }
    }
    func optionalDate(_ key: some CodingKey) throws -> Date? {
        guard optional(key) != nil else { return nil }
        return try date(key)
    }
}
