import Foundation

/// Parses `startup_env` ("A=1;B=${A}:x") into an ordered environment.
enum EnvExpander {
    static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// Splits on `;` and checks each non-empty entry is NAME=value.
    static func parse(_ spec: String) throws -> [(String, String)] {
        try spec.split(separator: ";", omittingEmptySubsequences: true).compactMap { raw in
            let entry = raw.trimmingCharacters(in: .whitespaces)
            if entry.isEmpty { return nil }
            guard let eq = entry.firstIndex(of: "="), eq != entry.startIndex else {
                throw LauncherError.invalidField("startup_env", reason: "entry '\(entry)' is not NAME=value")
            }
            let name = String(entry[..<eq])
            guard name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
                throw LauncherError.invalidField("startup_env", reason: "'\(name)' is not a valid variable name")
            }
            return (name, String(entry[entry.index(after: eq)...]))
        }
    }

    /// Expands `${VAR}` from entries already seen, then from `defaults`,
    /// else empty (like a shell); returns defaults overridden by entries,
    /// as OCI `KEY=value` strings in a stable order.
    static func expand(_ spec: String, defaults: [(String, String)]) throws -> [String] {
        var values: [String: String] = [:]
        var order: [String] = []
        for (k, v) in defaults { if values[k] == nil { order.append(k) }; values[k] = v }
        let defaultMap = values
        var seen: [String: String] = [:]
        for (k, raw) in try parse(spec) {
            let v = substitute(raw) { seen[$0] ?? defaultMap[$0] ?? "" }
            seen[k] = v
            if values[k] == nil { order.append(k) }
            values[k] = v
        }
        return order.map { "\($0)=\(values[$0]!)" }
    }

    private static func substitute(_ s: String, lookup: (String) -> String) -> String {
        var out = ""
        var i = s.startIndex
        while i < s.endIndex {
            if s[i] == "$", s.index(after: i) < s.endIndex, s[s.index(after: i)] == "{",
               let close = s[i...].firstIndex(of: "}") {
                out += lookup(String(s[s.index(i, offsetBy: 2)..<close]))
                i = s.index(after: close)
            } else {
                out.append(s[i]); i = s.index(after: i)
            }
        }
        return out
    }
}
