import Foundation
import Testing
@testable import ApplianceEngine

@Suite struct ArtifactCollectorTests {
    @Test func keepsWhatBuildsAndReleasesReferenceAndDropsTheRest() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("gc-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let store = try ArtifactStore(root: root.appendingPathComponent("artifacts"))
        func put(_ text: String) throws -> ArtifactRef {
            let file = root.appendingPathComponent(UUID().uuidString)
            try text.write(to: file, atomically: true, encoding: .utf8)
            return try store.put(file)
        }
        let built = try put("image"), released = try put("release file"), orphan = try put("old report")
        let entry = root.appendingPathComponent("builds/builds/key1")
        try FileManager.default.createDirectory(at: entry, withIntermediateDirectories: true)
        try #"{"artifacts":[{"format":"squashfs","file":"x","sha256":"\#(built.sha256)","size":5}]}"#
            .write(to: entry.appendingPathComponent("build.json"), atomically: true, encoding: .utf8)
        let release = root.appendingPathComponent("releases/app/testing/1.0")
        try FileManager.default.createDirectory(at: release, withIntermediateDirectories: true)
        try "\(released.sha256)  app.squashfs\n".write(to: release.appendingPathComponent("SHA256SUMS"), atomically: true, encoding: .utf8)

        // With a grace period everything is recent and kept.
        let gentle = ArtifactCollector(store: store, buildCache: root.appendingPathComponent("builds"),
                                       releases: root.appendingPathComponent("releases"))
        #expect(try gentle.collect().removed == 0)
        let strict = ArtifactCollector(store: store, buildCache: root.appendingPathComponent("builds"),
                                       releases: root.appendingPathComponent("releases"), grace: 0)
        let result = try strict.collect()
        #expect(result.removed == 1)
        #expect(store.contains(built) && store.contains(released))
        #expect(!store.contains(orphan))
    }
}
