import Foundation

/// Scratch left by work that was cut short (a crash, a kill): build trees (`.work-*`), staged
/// outputs (`.stage-*`), half-copied store objects. Each is removed by its own work when it
/// ends; what a crash left stays until a sweep. Only what is older than `age` goes, so that
/// work running meanwhile (another agent on the same root) keeps its own.
public enum Leftovers {
    /// Removes the entries of `directory` whose names start with one of `prefixes` (every
    /// entry if `prefixes` is empty) and that did not change for `age` seconds; returns their
    /// names.
    @discardableResult
    public static func sweep(_ directory: URL, prefixes: [String], olderThan age: TimeInterval = 24 * 3600) -> [String] {
        let fm = FileManager.default
        let cutoff = Date().addingTimeInterval(-age)
        var removed: [String] = []
        for name in ((try? fm.contentsOfDirectory(atPath: directory.path)) ?? []).sorted()
        where prefixes.isEmpty || prefixes.contains(where: name.hasPrefix) {
            let url = directory.appendingPathComponent(name)
            guard let modified = (try? fm.attributesOfItem(atPath: url.path))?[.modificationDate] as? Date, modified < cutoff else { continue }
            // Staged objects are read-only (0444 files in 0555 trees): made writable to go.
            _ = try? Tool.run(["chmod", "-R", "u+w", url.path], checkStatus: false)
            if (try? fm.removeItem(at: url)) != nil { removed.append(name) }
        }
        return removed
    }
}
