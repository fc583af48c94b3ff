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
                                   retention: 2, createKey: true) { logs.add($0) }
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
        #expect(names.sorted() == [".ledger", ".lock", "1.1", "1.10", "latest"])
    }

    func inputs(_ n: Int) -> ReleaseInputs { ReleaseInputs(recipeDigest: inputs.recipeDigest, snapshotID: "s", buildCacheKey: "k\(n)") }

    /// Retention deletes old releases, not their versions: with retention 2, after 1.0 … 1.0.4 the
    /// next release is 1.0.5, not 1.0 again (the first free name), and rollback goes down the
    /// versions that exist.
    @Test func versionsAreNeverReused() throws {
        let (pub, _, files, _) = try setup()
        let named = files.map { ($0.lastPathComponent, $0) }
        var published: [String] = []
        for n in 0..<7 {
            let version = try pub.publish(appliance: "micro", channel: "testing", version: .next(base: "1.0"), files: named, inputs: inputs(n)).version
            #expect(published.allSatisfy { ReleasePublisher.versionLess($0, version) }, "\(version) after \(published)")
            published.append(version)
        }
        #expect(published == ["1.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4", "1.0.5", "1.0.6"])
        #expect(try pub.versions(appliance: "micro", channel: "testing") == ["1.0.5", "1.0.6"])
        #expect(try pub.latest(appliance: "micro", channel: "testing") == "1.0.6")
        #expect(try pub.rollback(appliance: "micro", channel: "testing") == "1.0.5")
        #expect(throws: ReleaseError.noPreviousVersion("micro/testing")) { try pub.rollback(appliance: "micro", channel: "testing") }
        // A pinned version is never one used before, nor below the highest.
        #expect(throws: ReleaseError.versionUsedBefore("micro/testing/1.0")) {
            try pub.publish(appliance: "micro", channel: "testing", version: "1.0", files: files, inputs: inputs(8))
        }
        #expect(throws: ReleaseError.versionNotAbove("1.0.4.1", highest: "1.0.6", channel: "micro/testing")) {
            try pub.publish(appliance: "micro", channel: "testing", version: "1.0.4.1", files: files, inputs: inputs(8))
        }
        // So is a recipe whose version went back below one published.
        #expect(throws: ReleaseError.versionNotAbove("0.9", highest: "1.0.6", channel: "micro/testing")) {
            try pub.publish(appliance: "micro", channel: "testing", version: .next(base: "0.9"), files: named, inputs: inputs(8))
        }
        #expect(try pub.publish(appliance: "micro", channel: "testing", version: .next(base: "1.1"), files: named, inputs: inputs(8)).version == "1.1")
        #expect(try pub.latest(appliance: "micro", channel: "testing") == "1.1")
    }

    /// A publish that stops between the rename into place and the switch of `latest` (a crash):
    /// the rerun that finds the release points `latest` at it and applies retention.
    @Test func rerunFinishesAPublishCutShort() throws {
        let (pub, base, files, _) = try setup()
        let named = files.map { ($0.lastPathComponent, $0) }
        for n in 0..<2 { try pub.publish(appliance: "micro", channel: "testing", version: .next(base: "1.0"), files: named, inputs: inputs(n)) }
        struct Crash: Error {}
        let crashing = ReleasePublisher(root: pub.root, keyPath: base.appendingPathComponent("keys/release.key"), retention: 2,
                                        log: nil, afterRename: { throw Crash() })
        #expect(throws: Crash.self) {
            try crashing.publish(appliance: "micro", channel: "testing", version: .next(base: "1.0"), files: named, inputs: inputs(2))
        }
        #expect(try pub.latest(appliance: "micro", channel: "testing") == "1.0.1")
        #expect(try pub.versions(appliance: "micro", channel: "testing") == ["1.0", "1.0.1", "1.0.2"])
        let rerun = { try pub.publish(appliance: "micro", channel: "testing", version: .next(base: "1.0"), files: named, inputs: self.inputs(2),
                                      oncePerInputs: true) }
        #expect(try rerun() == .init(dir: pub.channelDir("micro", "testing").appendingPathComponent("1.0.2"), version: "1.0.2", alreadyPublished: true))
        #expect(try pub.latest(appliance: "micro", channel: "testing") == "1.0.2")
        #expect(try pub.versions(appliance: "micro", channel: "testing") == ["1.0.1", "1.0.2"])
        // Finished once: a rollback now stays.
        #expect(try pub.rollback(appliance: "micro", channel: "testing") == "1.0.1")
        #expect(try rerun().alreadyPublished)
        #expect(try pub.latest(appliance: "micro", channel: "testing") == "1.0.1")
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

    /// A key is generated only when allowed: a mistyped path fails and creates nothing.
    @Test func missingKeyIsNotGeneratedUnlessAllowed() throws {
        let (_, base, files, _) = try setup()
        let typo = base.appendingPathComponent("keys/relaese.key")
        let pub = ReleasePublisher(root: base.appendingPathComponent("releases"), keyPath: typo)
        #expect(throws: ReleaseError.noKeyFile(typo.path)) {
            try pub.publish(appliance: "micro", channel: "stable", version: "1.0", files: files, inputs: inputs)
        }
        #expect(ReleaseError.noKeyFile("/k").description == "no signing key at /k: check the path in signing_key; to generate a new key "
            + "there, set signing_key_create: true (releases signed with a new key do not verify against an earlier public key)")
        #expect(!FileManager.default.fileExists(atPath: typo.path))
        #expect(!FileManager.default.fileExists(atPath: base.appendingPathComponent("releases/micro").path))
    }

    /// Like ssh: a key file group or others may read or write is refused, whatever else is right.
    @Test func keyFileOpenToOthersIsRefused() throws {
        let (pub, base, files, _) = try setup()
        try pub.publish(appliance: "micro", channel: "stable", version: "1.0", files: files, inputs: inputs)
        let key = base.appendingPathComponent("keys/release.key")
        #expect(try FileManager.default.attributesOfItem(atPath: key.path)[.posixPermissions] as? Int == 0o600)
        for mode in [0o640, 0o604, 0o620] {
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: key.path)
            #expect(throws: ReleaseError.keyFileTooOpen(key.path, mode: String(mode, radix: 8))) {
                try pub.publish(appliance: "micro", channel: "stable", version: "1.1", files: files, inputs: inputs)
            }
        }
        #expect(ReleaseError.keyFileTooOpen("/k", mode: "644").description
            == "signing key file /k has permissions 0644: group and others must have no access to it (chmod 600 /k)")
        try FileManager.default.setAttributes([.posixPermissions: 0o400], ofItemAtPath: key.path)
        try pub.publish(appliance: "micro", channel: "stable", version: "1.1", files: files, inputs: inputs)
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
