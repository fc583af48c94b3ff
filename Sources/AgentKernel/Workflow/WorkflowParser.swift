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
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw WorkflowError.invalid("\(source): invalid YAML: \(yamlMessage(error))")
        }
        guard let root, let map = root.mapping else { throw fail(root, "expected a mapping with 'workflow' and 'steps'") }
        for (key, _) in map where !topKeys.contains(key.string ?? "") {
            throw fail(key, "unknown key '\(key.string ?? "?")' (allowed: \(topKeys.sorted().joined(separator: ", ")))")
        }
        guard let nameNode = map["workflow"] ?? map["name"], let name = nameNode.string, !name.isEmpty else {
            throw fail(root, "'workflow' (the workflow's name) is required")
        }
        guard name.range(of: #"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"#, options: .regularExpression) != nil else {
            throw fail(nameNode, "workflow name '\(name)' may use letters, digits, '.', '_' and '-' only")
        }
        var params: [String: JSONValue] = [:]
        if let node = map["params"] {
            guard node.mapping != nil else { throw fail(node, "'params' must be a mapping") }
            params = try jsonValue(node).object ?? [:]
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
            guard let action = step["action"]?.string,
                  action.range(of: #"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+$"#, options: .regularExpression) != nil else {
                throw fail(step["action"] ?? node, "step needs an 'action' like module.verb (e.g. build.image)")
            }
            let id = step["id"]?.string ?? action
            guard ids.insert(id).inserted else { throw fail(step["id"] ?? node, "step id '\(id)' is used twice") }
            var with: [String: JSONValue] = [:]
            if let node = step["with"] {
                guard node.mapping != nil else { throw fail(node, "'with' must be a mapping") }
                with = try jsonValue(node).object ?? [:]
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
            guard let seconds = node.float ?? node.int.map(Double.init), seconds > 0 else { throw fail(node, "'time_limit' must be seconds > 0") }
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
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch let error as YamlError {
            throw WorkflowError.invalid("\(source): invalid YAML: \(yamlMessage(error))")
        }
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
            document.params[key] = try jsonValue(node)
        }
        return document
    }

    /// A YAML node's value as JSON (through Yams' own reading of it: tags, numbers, booleans).
    private static func jsonValue(_ node: Node) throws -> JSONValue {
        try JSONValue(plain: try Yams.load(yaml: try Yams.serialize(node: node)))
    }

    /// One `KEY=VALUE`: the key, and the value as a YAML node (nothing after `=`: the empty string).
    private static func parameter(_ assignment: String) throws -> (key: String, value: Node) {
        guard let equals = assignment.firstIndex(of: "="), equals != assignment.startIndex else {
            throw WorkflowError.invalid("parameter '\(assignment)': expected KEY=VALUE")
        }
        let key = String(assignment[..<equals]), text = String(assignment[assignment.index(after: equals)...])
        do {
            return (key, try Yams.compose(yaml: text) ?? Node("", Tag(.str), .singleQuoted))
        } catch let error as YamlError {
            throw WorkflowError.invalid("parameter '\(key)': invalid YAML value: \(yamlMessage(error))")
        }
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
