import Foundation
import Yams

/// Reads authored workflows (YAML) with errors that point at the line and column.
///
/// ```yaml
/// workflow: micro-appliance
/// params: { release: "1.0" }
/// notify: [ops@baton.test]
/// steps:
///   - { id: configure, action: config.resolve, with: { recipe: micro } }
///   - { id: image, action: build.image }
/// on_failure: { retries: 1, then: notify }
/// time_limit: 3600
/// ```
public enum WorkflowParser {
    /// Larger documents are refused before parsing (spool files, `submit` forms).
    public static let maximumBytes = 256 * 1024
    static let topKeys: Set<String> = ["workflow", "name", "params", "notify", "steps", "on_failure", "time_limit"]
    static let stepKeys: Set<String> = ["id", "action", "with"]

    public static func parse(data: Data, source: String) throws -> WorkflowDocument {
        guard data.count <= maximumBytes else { throw WorkflowError.tooLarge(bytes: data.count, limit: maximumBytes) }
        guard let text = String(data: data, encoding: .utf8) else {
            throw WorkflowError.invalid("\(source): not UTF-8 text")
        }
        return try parse(yaml: text, source: source)
    }

    public static func parse(yaml: String, source: String) throws -> WorkflowDocument {
        guard yaml.utf8.count <= maximumBytes else { throw WorkflowError.tooLarge(bytes: yaml.utf8.count, limit: maximumBytes) }
        func fail(_ node: Node?, _ message: String) -> WorkflowError {
            if let mark = node?.mark { return .invalid("\(source):\(mark.line):\(mark.column): \(message)") }
            return .invalid("\(source): \(message)")
        }
        let root = try compose(yaml, source: source)
        guard let root, let map = root.mapping else { throw fail(root, "expected a mapping with 'workflow' and 'steps'") }
        for (key, _) in map where !topKeys.contains(key.string ?? "") {
            throw fail(key, "unknown key '\(key.string ?? "?")' (allowed: \(topKeys.sorted().joined(separator: ", ")))")
        }
        guard let nameNode = map["workflow"] ?? map["name"], let name = nameNode.string, !name.isEmpty else {
            throw fail(root, "'workflow' (the workflow's name) is required")
        }
        guard WorkflowDocument.isName(name) else {
            throw fail(nameNode, "workflow name '\(name)' may use letters, digits, '.', '_' and '-' only")
        }
        var params: [String: JSONValue] = [:]
        if let node = map["params"] {
            guard node.mapping != nil else { throw fail(node, "'params' must be a mapping") }
            params = try jsonValue(node, source: source).object ?? [:]
        }
        var notify: [String] = []
        if let node = map["notify"] {
            guard let seq = node.sequence else { throw fail(node, "'notify' must be a list of JIDs") }
            notify = try seq.map { entry in
                guard let s = entry.string, JID(s)?.local != nil else { throw fail(entry, "'\(entry.string ?? "?")' is not a JID") }
                return s
            }
        }
        guard let stepsNode = map["steps"], let stepNodes = stepsNode.sequence, !stepNodes.isEmpty else {
            throw fail(map["steps"] ?? root, "'steps' must be a non-empty list")
        }
        var ids = Set<String>()
        let steps = try stepNodes.map { node -> WorkflowDocument.Step in
            guard let step = node.mapping else { throw fail(node, "each step must be a mapping with id and action") }
            for (key, _) in step where !stepKeys.contains(key.string ?? "") {
                throw fail(key, "unknown step key '\(key.string ?? "?")' (allowed: action, id, with)")
            }
            guard let action = step["action"]?.string, WorkflowDocument.isAction(action) else {
                throw fail(step["action"] ?? node, "step needs an 'action' like module.verb (e.g. build.image)")
            }
            let id = step["id"]?.string ?? action
            guard WorkflowDocument.isName(id) else {
                // It names the step's workspace directory: no '/', no leading '.'.
                throw fail(step["id"] ?? node, "step id '\(id)' may use letters, digits, '.', '_' and '-' only (at most 64)")
            }
            guard ids.insert(id).inserted else { throw fail(step["id"] ?? node, "step id '\(id)' is used twice") }
            var with: [String: JSONValue] = [:]
            if let node = step["with"] {
                guard node.mapping != nil else { throw fail(node, "'with' must be a mapping") }
                with = try jsonValue(node, source: source).object ?? [:]
            }
            return .init(id: id, action: action, with: with)
        }
        var policy = WorkflowDocument.FailurePolicy()
        if let node = map["on_failure"] {
            guard let failure = node.mapping else { throw fail(node, "'on_failure' must be a mapping {retries, then}") }
            for (key, value) in failure {
                switch key.string {
                case "retries", "retry":
                    guard let n = value.int, (0...10).contains(n) else { throw fail(value, "'retries' must be 0…10") }
                    policy.retries = n
                case "then":
                    guard let then = value.string.flatMap(WorkflowDocument.FailurePolicy.Then.init(rawValue:)) else {
                        throw fail(value, "'then' must be 'notify' or 'park'")
                    }
                    policy.then = then
                default: throw fail(key, "unknown on_failure key '\(key.string ?? "?")' (allowed: retries, then)")
                }
            }
        }
        var timeLimit: Double? = nil
        if let node = map["time_limit"] {
            guard let seconds = node.float ?? node.int.map(Double.init) else { throw fail(node, "'time_limit' must be a number of seconds") }
            if let problem = WorkflowDocument.timeLimitProblem(seconds) { throw fail(node, problem) }
            timeLimit = seconds
        }
        return WorkflowDocument(name: name, steps: steps, params: params, notify: notify, onFailure: policy, timeLimit: timeLimit)
    }

    /// `yaml` with entries of its `params` set from `KEY=VALUE` assignments, VALUE read as YAML
    /// (`3`, `true`, `"1.0"`, `[a, b]`; nothing after `=` is the empty string). The rest of the
    /// document stays as it was, but comments and layout are not kept. For
    /// `agentctl wf submit --param`: one workflow file, many runs.
    public static func setting(params assignments: [String], in yaml: String, source: String) throws -> String {
        guard !assignments.isEmpty else { return yaml }
        let root = try compose(yaml, source: source)
        guard let root, var map = root.mapping else { throw WorkflowError.invalid("\(source): a workflow is a mapping") }
        var params = map["params"]?.mapping ?? Node.Mapping([])
        for assignment in assignments {
            let (key, value) = try parameter(assignment)
            params[key] = value
        }
        map["params"] = .mapping(params)
        return try Yams.serialize(node: .mapping(map))
    }

    /// `document` with entries of its `params` set from `KEY=VALUE` assignments, read as in
    /// `setting(params:in:source:)`. For the `submit` command and chat's `submit NAME KEY=VALUE`.
    public static func applying(params assignments: [String], to document: WorkflowDocument) throws -> WorkflowDocument {
        var document = document
        for assignment in assignments {
            let (key, node) = try parameter(assignment)
            document.params[key] = try jsonValue(node, source: "parameter '\(key)'")
        }
        return document
    }

    // MARK: - Reading YAML safely

    /// Deeper documents are refused before Yams reads them: its composer recurses once per
    /// level, and a thread of Swift's pool has a small stack (a spool file of 100 000 `[`
    /// would crash the agent — and again on every start, as the file is still claimed).
    public static let maximumDepth = 64
    /// Documents that stand for more values than this, counting every use of an alias, are
    /// refused: a few lines of nested aliases can stand for billions.
    public static let maximumValues = 100_000

    /// `yaml` composed into nodes, once its nesting and size are known to be sane.
    static func compose(_ yaml: String, source: String, invalid: String = "invalid YAML") throws -> Node? {
        guard nestingBound(yaml) <= maximumDepth else {
            throw WorkflowError.invalid("\(source): nested more than \(maximumDepth) levels deep")
        }
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch let error as YamlError {
            throw WorkflowError.invalid("\(source): \(invalid): \(yamlMessage(error))")
        }
        if let root {
            var budget = maximumValues
            guard fits(root, depth: 0, budget: &budget) else {
                throw WorkflowError.invalid("\(source): stands for more than \(maximumValues) values or \(maximumDepth) levels (aliases used over and over?)")
            }
        }
        return root
    }

    /// Whether `node`, with aliases expanded, stays within the depth and the value budget.
    private static func fits(_ node: Node, depth: Int, budget: inout Int) -> Bool {
        budget -= 1
        guard budget >= 0, depth <= maximumDepth else { return false }
        switch node {
        case .scalar: return true
        case .sequence(let sequence): return sequence.allSatisfy { fits($0, depth: depth + 1, budget: &budget) }
        case .mapping(let mapping):
            return mapping.allSatisfy { fits($0.key, depth: depth + 1, budget: &budget) && fits($0.value, depth: depth + 1, budget: &budget) }
        }
    }

    /// An upper bound on how deeply `yaml` nests, from its text alone: block levels (steps of
    /// indentation, and `- `, `? `, `: ` indicators opening a line) plus open flow brackets.
    /// Quoted text and comments are skipped; brackets in a block scalar (a shell script) count
    /// too, which can only raise the bound.
    static func nestingBound(_ yaml: String) -> Int {
        let space = UInt8(ascii: " "), hash = UInt8(ascii: "#")
        let indicators: Set<UInt8> = [UInt8(ascii: "-"), UInt8(ascii: "?"), UInt8(ascii: ":")]
        let opensQuoteAfter: Set<UInt8> = [UInt8(ascii: ":"), UInt8(ascii: "-"), UInt8(ascii: "["), UInt8(ascii: "{"),
                                           UInt8(ascii: ","), UInt8(ascii: "?")]
        var deepest = 0, flow = 0
        var indents: [Int] = []
        for line in yaml.utf8.split(separator: UInt8(ascii: "\n")) {
            let bytes = Array(line)
            var i = 0
            while i < bytes.count, bytes[i] == space { i += 1 }
            guard i < bytes.count, bytes[i] != hash, bytes[i] != UInt8(ascii: "\r") else { continue }
            var level = flow
            if flow == 0 {
                while let last = indents.last, last > i { indents.removeLast() }
                if indents.last != i { indents.append(i) }
                level = indents.count
                while i + 1 < bytes.count, indicators.contains(bytes[i]), bytes[i + 1] == space {
                    level += 1
                    i += 2
                    while i < bytes.count, bytes[i] == space { i += 1 }
                }
            } else {
                level = indents.count + flow
            }
            deepest = max(deepest, level)
            var quote: UInt8? = nil
            var previous = space
            while i < bytes.count {
                let byte = bytes[i]
                if let open = quote {
                    if byte == UInt8(ascii: "\\"), open == UInt8(ascii: "\"") { i += 1 } else if byte == open { quote = nil }
                } else if byte == UInt8(ascii: "'") || byte == UInt8(ascii: "\"") {
                    // A quote opens a quoted scalar only where a value begins; in `it's` it is text.
                    if previous == space || opensQuoteAfter.contains(previous) { quote = byte }
                } else if byte == hash, previous == space {
                    break
                } else if byte == UInt8(ascii: "[") || byte == UInt8(ascii: "{") {
                    flow += 1
                    level += 1
                    deepest = max(deepest, level)
                } else if byte == UInt8(ascii: "]") || byte == UInt8(ascii: "}") {
                    flow = max(0, flow - 1)
                    level -= 1
                }
                if byte != space { previous = byte }
                i += 1
            }
        }
        return deepest
    }

    /// A YAML node's value as JSON: null, booleans and numbers as YAML 1.1 resolves them,
    /// everything else as its text (a date like `2024-01-01` stays the string it was written).
    /// Only called on composed documents, which `fits` has bounded.
    private static func jsonValue(_ node: Node, source: String) throws -> JSONValue {
        switch node {
        case .scalar(let scalar):
            let tag = node.tag
            if tag == Tag(.null) { return .null }
            if tag == Tag(.bool), let value = node.bool { return .bool(value) }
            if tag == Tag(.int), let value = node.int { return .number(Double(value)) }
            if tag == Tag(.float), let value = node.float {
                guard value.isFinite else {
                    let mark = node.mark.map { ":\($0.line):\($0.column)" } ?? ""
                    throw WorkflowError.invalid("\(source)\(mark): '\(scalar.string)' is not a number JSON can carry")
                }
                return .number(value)
            }
            return .string(scalar.string)
        case .sequence(let sequence):
            return .array(try sequence.map { try jsonValue($0, source: source) })
        case .mapping(let mapping):
            var object: [String: JSONValue] = [:]
            for (key, value) in mapping { object[key.string ?? "\(key.any)"] = try jsonValue(value, source: source) }
            return .object(object)
        }
    }

    /// One `KEY=VALUE`: the key, and the value as a YAML node (nothing after `=`: the empty string).
    private static func parameter(_ assignment: String) throws -> (key: String, value: Node) {
        guard let equals = assignment.firstIndex(of: "="), equals != assignment.startIndex else {
            throw WorkflowError.invalid("parameter '\(assignment)': expected KEY=VALUE")
        }
        let key = String(assignment[..<equals]), text = String(assignment[assignment.index(after: equals)...])
        return (key, try compose(text, source: "parameter '\(key)'", invalid: "invalid YAML value") ?? Node("", Tag(.str), .singleQuoted))
    }

    static func yamlMessage(_ error: YamlError) -> String {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _):
            return "line \(mark.line), column \(mark.column): \(problem)" + (context.map { " (\($0.text))" } ?? "")
        default:
            return "\(error)"
        }
    }

    /// Finds `name` (or `name.yaml`) in `directory`, refusing names that would leave it.
    public static func load(named name: String, in directory: String) throws -> WorkflowDocument {
        guard !name.contains("/"), !name.hasPrefix(".") else { throw WorkflowError.invalid("workflow name '\(name)' may not contain '/' or start with '.'") }
        for candidate in [name, name + ".yaml", name + ".yml"] {
            let path = (directory as NSString).appendingPathComponent(candidate)
            if let data = FileManager.default.contents(atPath: path) { return try parse(data: data, source: candidate) }
        }
        throw WorkflowError.unknownWorkflow(name)
    }
}
