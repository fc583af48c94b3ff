import Foundation
import Yams

/// A format-neutral view of an uploaded document so JSON and YAML share one
/// validator (and so give identical error messages).
enum ConfigValue: Equatable {
    case string(String)
    case number(String)
    case bool(Bool)
    case array([ConfigValue])
    case object([String: ConfigValue])
    case null

    var typeName: String {
        switch self {
        case .string: return "a string"
        case .number: return "a number"
        case .bool: return "a boolean"
        case .array: return "a list"
        case .object: return "a mapping"
        case .null: return "null"
        }
    }

    static func parseJSON(_ data: Data) throws -> ConfigValue {
        do {
            return convert(try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]))
        } catch {
            throw LauncherError.malformedConfig(format: "JSON", detail: "\(error.localizedDescription)")
        }
    }

    private static func convert(_ any: Any) -> ConfigValue {
        switch any {
        case let s as String: return .string(s)
        case let n as NSNumber:
            // JSONSerialization on Linux hands booleans back as NSNumber too.
            if String(cString: n.objCType) == "c" { return .bool(n.boolValue) }
            return .number(n.stringValue)
        case let a as [Any]: return .array(a.map(convert))
        case let d as [String: Any]: return .object(d.mapValues(convert))
        default: return .null
        }
    }

    /// YAML is read as a node tree rather than `Yams.load` so scalars keep
    /// their literal text: `minor: 01` must stay "01", not become the int 1.
    static func parseYAML(_ data: Data) throws -> ConfigValue {
        guard let text = String(data: data, encoding: .utf8) else {
            throw LauncherError.malformedConfig(format: "YAML", detail: "not UTF-8")
        }
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw LauncherError.malformedConfig(format: "YAML", detail: "empty document")
            }
            return convert(node)
        } catch let e as LauncherError { throw e } catch {
            throw LauncherError.malformedConfig(format: "YAML", detail: "\(error)")
        }
    }

    private static func convert(_ node: Node) -> ConfigValue {
        switch node {
        case .scalar(let s):
            if s.style == .plain && (s.string == "~" || s.string == "null" || s.string.isEmpty) { return .null }
            return .string(s.string)
        case .sequence(let seq): return .array(seq.map(convert))
        case .mapping(let map):
            var d: [String: ConfigValue] = [:]
            for (k, v) in map { d[k.string ?? "\(k)"] = convert(v) }
            return .object(d)
        }
    }
}
