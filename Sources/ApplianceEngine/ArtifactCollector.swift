import Foundation

/// Garbage collection of the artifact store that keeps everything still referenced: the
/// outputs of every build-cache entry, every file of every release, and — so that workflows in
/// flight never lose an input — anything stored within `grace`.
public struct ArtifactCollector: Sendable {
    public let store: ArtifactStore
    public let buildCache: URL
    public let releases: URL
    public let grace: TimeInterval

    public init(store: ArtifactStore, buildCache: URL, releases: URL, grace: TimeInterval = 24 * 3600) {
        self.store = store
        self.buildCache = buildCache
        self.releases = releases
        self.grace = grace
    }

    /// The digests still referenced.
    public func referenced() throws -> Set<String> {
        var keep = Set<String>()
        let fm = FileManager.default
        // Build cache entries: <cache>/builds/<key>/build.json lists each output's sha256.
        let builds = buildCache.appendingPathComponent("builds")
        for key in (try? fm.contentsOfDirectory(atPath: builds.path)) ?? [] {
            guard let data = fm.contents(atPath: builds.appendingPathComponent("\(key)/build.json").path),
                  let record = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let artifacts = record["artifacts"] as? [[String: Any]] else { continue }
            for artifact in artifacts { if let sha = artifact["sha256"] as? String { keep.insert(sha) } }
        }
        // Releases: every SHA256SUMS under <releases>/<appliance>/<channel>/<version>/.
        if let walker = fm.enumerator(at: releases, includingPropertiesForKeys: nil) {
            for case let url as URL in walker where url.lastPathComponent == "SHA256SUMS" {
                let text = (try? String(contentsOf: url, encoding: .utf8)) ?? ""
                for line in text.split(separator: "\n") { if let sha = line.split(separator: " ").first { keep.insert(String(sha)) } }
            }
        }
        // Recent objects: inputs of workflows still running.
        let objects = store.root.appendingPathComponent("objects")
        let cutoff = Date().addingTimeInterval(-grace)
        for shard in (try? fm.contentsOfDirectory(atPath: objects.path)) ?? [] {
            let dir = objects.appendingPathComponent(shard)
            for name in (try? fm.contentsOfDirectory(atPath: dir.path)) ?? [] {
                let modified = (try? fm.attributesOfItem(atPath: dir.appendingPathComponent(name).path)[.modificationDate] as? Date) ?? .distantPast
                if modified > cutoff { keep.insert(name) }
            }
        }
        return keep
    }

    @discardableResult
    public func collect() throws -> (removed: Int, bytes: Int64, kept: Int) {
        let cutoff = Date().addingTimeInterval(-grace)
        let keep = try referenced()
        let (removed, bytes) = try store.gc(keep: keep, storedBefore: cutoff)
        return (removed, bytes, keep.count)
    }
}
