import AgentKernel
import Foundation

/// Plain-text rendering of forms and tables for a terminal.
enum Render {
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in i == cells.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }

    static func outcome(_ outcome: ControlClient.CommandOutcome) -> String {
        var out: [String] = []
        for note in outcome.notes { out.append("\(note.kind == .info ? "" : note.kind.rawValue + ": ")\(note.text)") }
        if let form = outcome.form {
            if let title = form.title { out.append(title) }
            if let instructions = form.instructions { out.append(instructions) }
            let width = form.fields.compactMap { $0.variable?.count }.max() ?? 0
            for field in form.fields where field.type != .hidden {
                let name = field.variable ?? ""
                let marker = outcome.status == "executing" ? (field.required ? " (required)" : "") : ""
                let options = field.options.isEmpty ? "" : "  [\(field.options.joined(separator: "|"))]"
                let value = field.values.joined(separator: field.type == .textMulti ? "\n" + String(repeating: " ", count: width + 2) : ", ")
                out.append("\(name.padding(toLength: width, withPad: " ", startingAt: 0))  \(value)\(marker)\(options)")
            }
            if !form.reported.isEmpty {
                let columns = form.reported.compactMap(\.variable)
                out.append(table(form.reported.map { $0.label ?? $0.variable ?? "" }, form.items.map { row in columns.map { row[$0] ?? "" } }))
            }
        }
        return out.joined(separator: "\n")
    }
}

extension Render {
    /// A trail entry's log tail (its last 20 lines) under a heading; nil if it has none.
    static func logTail(of entry: WorkflowDocument.TrailEntry, indent: String = "") -> String? {
        guard let tail = entry.logTail?.trimmingCharacters(in: .whitespacesAndNewlines), !tail.isEmpty else { return nil }
        let lines = tail.split(separator: "\n", omittingEmptySubsequences: false).suffix(20).map { "\(indent)  | \($0)" }
        return (["\(indent)log tail of \(entry.step) (attempt \(entry.attempt)):"] + lines).joined(separator: "\n")
    }

    /// A moment in local time: `14:05:09` today, `2026-11-27 14:05` before; `-` if unknown.
    static func when(_ date: Date, now: Date = Date()) -> String {
        guard date != .distantPast else { return "-" }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = Calendar.current.isDate(date, inSameDayAs: now) ? "HH:mm:ss" : "yyyy-MM-dd HH:mm"
        return formatter.string(from: date)
    }

    /// `key  value` lines, keys aligned.
    static func pairs(_ pairs: [(String, String)]) -> String {
        let width = pairs.map(\.0.count).max() ?? 0
        return pairs.map { "\($0.0.padding(toLength: width, withPad: " ", startingAt: 0))  \($0.1)" }.joined(separator: "\n")
    }
}
