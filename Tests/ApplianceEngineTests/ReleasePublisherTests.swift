import Foundation
import Testing
@testable import ApplianceEngine

@Suite struct ReleasePublisherTests {
    let inputs = ReleaseInputs(recipeDigest: "r" + String(repeating: "0", count: 63), snapshotID: "s", buildCacheKey: "k")

    func setup() throws -> (ReleasePublisher, URL, [URL], LogBox) {
        let base = try Fixtures.scratch("release")
        let art = base.appendingPathComponent("artifacts")
        try FileManager.default.createDirectory(at: art, withIntermediateDirectories: true)
        let a = art.appendingPathComponent("rootfs.squashfs"), b = art.appendingPathComponent("vmlinuz")
        try Data("squash".utf8).write(to: a)
        try Data("kernel".utf8).write(to: b)
        let logs = LogBox()
        let pub = ReleasePublisher(root: base.appendingPathComponent("releases"), keyPath: base.appendingPathComponent("keys/release.key"),
                                   retention: 2) { logs.add($0) }
        return (pub, base, [a, b], logs)
    }

    @Test func publishVerifyTamper() throws {
        let (pub, _, files, logs) = try setup()
        let trail = Data(#"{"steps":[{"agent":"build@baton","did":"build"}]}"#.utf8)
        let dir = try pub.publish(appliance: "micro", channel: "stable", version: "1.0", files: files, inputs: inputs, trail: trail)
        #expect(logs.all.contains { $0.contains("generated a new ed25519 key") })
        try pub.verify(dir)
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("manifest.json"))) as! [String: Any]
        #expect((manifest["inputs"] as? [String: String])?["recipe_digest"] == inputs.recipeDigest)
        #expect(((manifest["trail"] as? [String: Any])?["steps"] as? [Any])?.count == 1)
        #expect(try pub.latest(appliance: "micro", channel: "stable") == "1.0")
        #expect(throws: ReleaseError.versionExists("micro/stable/1.0")) {
            try pub.publish(appliance: "micro", channel: "stable", version: "1.0", files: files, inputs: inputs)
        }
        // Tamper with one published file.
        let target = dir.appendingPathComponent("vmlinuz")
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: target.path)
        try Data("evil".utf8).write(to: target)
        #expect(throws: ReleaseError.changedFile("vmlinuz")) { try pub.verify(dir) }
        // Forge SHA256SUMS to match: the signature catches it.
        let sums = try String(contentsOf: dir.appendingPathComponent("SHA256SUMS"), encoding: .utf8)
            .replacingOccurrences(of: SHA256Hex.of(data: Data("kernel".utf8)), with: SHA256Hex.of(data: Data("evil".utf8)))
        try sums.write(to: dir.appendingPathComponent("SHA256SUMS"), atomically: true, encoding: .utf8)
        #expect(throws: ReleaseError.badSignature("SHA256SUMS")) { try pub.verify(dir) }
    }

    @Test func extraFileIsRefused() throws {
        let (pub, _, files, _) = try setup()
        let dir = try pub.publish(appliance: "micro", channel: "stable", version: "1.0", files: files, inputs: inputs)
        try Data("x".utf8).write(to: dir.appendingPathComponent("backdoor.sh"))
        #expect(throws: ReleaseError.unexpectedFile("backdoor.sh")) { try pub.verify(dir) }
    }

    @Test func retentionAndRollback() throws {
        let (pub, _, files, _) = try setup()
        for v in ["1.0", "1.1", "1.10"] {
            try pub.publish(appliance: "micro", channel: "testing", version: v, files: files, inputs: inputs)
        }
        #expect(try pub.versions(appliance: "micro", channel: "testing") == ["1.1", "1.10"])  // retention 2, numeric order
        #expect(try pub.latest(appliance: "micro", channel: "testing") == "1.10")
        #expect(try pub.rollback(appliance: "micro", channel: "testing") == "1.1")
        #expect(try pub.latest(appliance: "micro", channel: "testing") == "1.1")
        try pub.verify(try pub.channelDir("micro", "testing").appendingPathComponent("latest"))
        #expect(throws: ReleaseError.noPreviousVersion("micro/testing")) { try pub.rollback(appliance: "micro", channel: "testing") }
        // No staging leftovers.
        let names = try FileManager.default.contentsOfDirectory(atPath: try pub.channelDir("micro", "testing").path)
        #expect(names.sorted() == ["1.1", "1.10", "latest"])
    }

    /// `releases` and `release-rollback` take appliance and channel from anyone: a '..' there
    /// must not reach a host directory through any entry point.
    @Test func badNamesAreRefusedEverywhere() throws {
        let (pub, _, files, _) = try setup()
        let parent = ReleaseError.invalidName("../../../../etc", field: "appliance")
        #expect(parent.description == "appliance '../../../../etc' is not a valid release name: it must start with a letter or digit, "
            + "use only letters, digits, '.', '_', '+' and '-', and not be 'latest'")
        #expect(throws: parent) { try pub.versions(appliance: "../../../../etc", channel: "ssh") }
        #expect(throws: parent) { try pub.latest(appliance: "../../../../etc", channel: "ssh") }
        #expect(throws: parent) { try pub.rollback(appliance: "../../../../etc", channel: "ssh") }
        #expect(throws: parent) { try pub.channelDir("../../../../etc", "ssh") }
        #expect(throws: ReleaseError.invalidName("a/b", field: "channel")) { try pub.versions(appliance: "micro", channel: "a/b") }
        #expect(throws: ReleaseError.invalidName("..", field: "channel")) {
            try pub.publish(appliance: "micro", channel: "..", version: "1.0", files: files, inputs: inputs)
        }
    }

    @Test func verifyIsConfinedToTheReleasesRoot() throws {
        let (pub, base, files, _) = try setup()
        let dir = try pub.publish(appliance: "micro", channel: "stable", version: "1.0", files: files, inputs: inputs)
        #expect(try pub.releaseDirectory(dir.path).path == dir.resolvingSymlinksInPath().path)
        #expect(try pub.releaseDirectory("micro/stable/latest").path == dir.resolvingSymlinksInPath().path)
        let root = base.appendingPathComponent("releases").path
        #expect(throws: ReleaseError.outsideReleases("/etc", root: root)) { try pub.releaseDirectory("/etc") }
        #expect(throws: ReleaseError.outsideReleases("../artifacts", root: root)) { try pub.releaseDirectory("../artifacts") }
        #expect(throws: ReleaseError.outsideReleases(root, root: root)) { try pub.releaseDirectory(root) }
        // A symlink inside the root does not lead the check out of it.
        try FileManager.default.createSymbolicLink(atPath: root + "/escape", withDestinationPath: "/etc")
        #expect(throws: ReleaseError.outsideReleases("escape", root: root)) { try pub.releaseDirectory("escape") }
        #expect(ReleaseError.outsideReleases("/etc", root: "/r").description
            == "'/etc' is not a release directory: only directories under /r can be verified here")
    }

    @Test func keyInsideReleaseTreeIsRefused() throws {
        let (_, base, files, _) = try setup()
        let pub = ReleasePublisher(root: base.appendingPathComponent("releases"),
                                   keyPath: base.appendingPathComponent("releases/release.key"))
        #expect(throws: ReleaseError.self) {
            try pub.publish(appliance: "micro", channel: "stable", version: "1.0", files: files, inputs: inputs)
        }
        #expect(!FileManager.default.fileExists(atPath: base.appendingPathComponent("releases/release.key").path))
    }
}

final class LogBox: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func add(_ s: String) { lock.lock(); lines.append(s); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
}
