import Foundation
import Synchronization
@testable import ApplianceEngine

/// Shared, persistent work area: the apt download cache and build cache survive between runs
/// on purpose (that is what "warm" means); per-test scratch dirs are created fresh.
enum Fixtures {
    static let workRoot = URL(fileURLWithPath: ProcessInfo.processInfo.environment["BATON_TEST_ROOT"] ?? "/var/tmp/baton-appliance-tests")
    static let packageDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let sourceDateEpoch = 1_700_000_000
    static let microPackages = ["busybox-static", "linux-image-cloud-amd64"]

    static func snapshotter(extra: [String] = []) -> RepositorySnapshotter {
        try! RepositorySnapshotter(root: workRoot.appendingPathComponent("repo"), extraAptOptions: extra)
    }

    static func scratch(_ name: String) throws -> URL {
        let url = workRoot.appendingPathComponent("scratch/\(name)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func microRecipe() throws -> Recipe {
        try Recipe.load(file: packageDir.appendingPathComponent("recipes/micro.yaml"))
    }

    private static let snapshotCache = Mutex<Snapshot?>(nil)

    /// The micro snapshot, made once per test process.
    static func microSnapshot() throws -> Snapshot {
        try snapshotCache.withLock { cached in
            if let cached { return cached }
            let s = try snapshotter().snapshot(suite: "bookworm", architecture: "amd64", packages: microPackages).snapshot
            cached = s
            return s
        }
    }

    static func microBuild() throws -> BuildResult {
        try MicroImageBuilder(cacheRoot: workRoot.appendingPathComponent("build"))
            .build(recipe: try microRecipe(), snapshot: try microSnapshot(), sourceDateEpoch: sourceDateEpoch)
    }

    static func time<T>(_ body: () throws -> T) rethrows -> (T, Double) {
        let t0 = Date()
        let r = try body()
        return (r, Date().timeIntervalSince(t0))
    }
}
