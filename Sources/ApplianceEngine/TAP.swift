import Foundation

/// Test Anything Protocol as printed by the guest on the serial console.
public struct TAPResult: Sendable, Equatable {
    public struct Line: Sendable, Equatable {
        public let number: Int
        public let ok: Bool
        public let description: String
        /// "# ..." lines that followed this result (the guest prints a failing check's output).
        public var diagnostics: [String]
    }
    public var plan: Int?
    /// What followed `#` on the plan line (`SKIP no contextualisation disk`).
    public var planComment: String?
    public var lines: [Line] = []

    /// Why the run fails when the recipe asked for `expected` checks, or nil if it passes:
    /// a plan of exactly `expected`, every planned test reported, all ok. Measured against
    /// the recipe, not the guest's own plan: a guest that finds no contextualisation disk
    /// plans nothing (`1..0 # SKIP`), and that passed with no check run.
    /// What is wrong with a printed plan that is not for `expected` checks; nil without a plan
    /// or with the right one.
    public func planMismatch(expecting expected: Int) -> String? {
        guard let plan, plan != expected else { return nil }
        return "the guest planned \(plan) of the recipe's \(expected) checks" + (planComment.map { " (\($0))" } ?? "")
    }

    public func failure(expecting expected: Int) -> String? {
        guard let plan else { return "no TAP plan printed" }
        if let mismatch = planMismatch(expecting: expected) { return mismatch }
        let failed = lines.filter { !$0.ok }.map(\.description)
        let missing = plan - lines.count
        guard !failed.isEmpty || missing != 0 else { return nil }
        return [failed.isEmpty ? nil : failed.joined(separator: ", "),
                missing > 0 ? "\(missing) never reported" : nil,
                missing < 0 ? "\(-missing) more reported than planned" : nil].compactMap { $0 }.joined(separator: "; ")
    }

    /// Parses TAP out of a console log that also holds kernel and init messages.
    public static func parse(_ text: String) -> TAPResult {
        var r = TAPResult()
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if r.plan == nil, line.hasPrefix("1.."), let n = Int(line.dropFirst(3).prefix { $0.isNumber }) {
                r.plan = n
                if let hash = line.firstIndex(of: "#") {
                    r.planComment = line[line.index(after: hash)...].trimmingCharacters(in: .whitespaces)
                }
            } else if let m = parseResult(line) {
                r.lines.append(m)
            } else if line.hasPrefix("# "), !r.lines.isEmpty, !line.hasPrefix("# baton-context") {
                r.lines[r.lines.count - 1].diagnostics.append(String(line.dropFirst(2)))
            }
        }
        return r
    }

    static func parseResult(_ line: String) -> Line? {
        let ok: Bool
        var rest: Substring
        if line.hasPrefix("ok ") { ok = true; rest = line.dropFirst(3) }
        else if line.hasPrefix("not ok ") { ok = false; rest = line.dropFirst(7) }
        else { return nil }
        guard let n = Int(rest.prefix { $0.isNumber }) else { return nil }
        rest = rest.drop { $0.isNumber }.drop { $0 == " " }
        if rest.hasPrefix("- ") { rest = rest.dropFirst(2) }
        return Line(number: n, ok: ok, description: String(rest), diagnostics: [])
    }

    /// JUnit XML for CI dashboards; a missing planned test is reported as a failure.
    public func junitXML(suite: String, seconds: Double, error: String? = nil) -> String {
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        let missing = max((plan ?? 0) - lines.count, 0)
        let failures = lines.filter { !$0.ok }.count + missing + (error == nil ? 0 : 1)
        let total = lines.count + missing + (error == nil ? 0 : 1)
        var x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        x += "<testsuite name=\"\(esc(suite))\" tests=\"\(total)\" failures=\"\(failures)\" time=\"\(String(format: "%.3f", seconds))\">\n"
        for l in lines {
            x += "  <testcase classname=\"\(esc(suite))\" name=\"\(esc(l.description))\""
            if l.ok { x += "/>\n" } else {
                x += ">\n    <failure message=\"not ok\">\(esc(l.diagnostics.joined(separator: "\n")))</failure>\n  </testcase>\n"
            }
        }
        if missing > 0 {
            for i in 0..<missing {
                x += "  <testcase classname=\"\(esc(suite))\" name=\"planned test \(lines.count + i + 1)\">\n    <failure message=\"did not run\"/>\n  </testcase>\n"
            }
        }
        if let error {
            x += "  <testcase classname=\"\(esc(suite))\" name=\"vm\">\n    <error message=\"\(esc(error))\"/>\n  </testcase>\n"
        }
        return x + "</testsuite>\n"
    }
}
