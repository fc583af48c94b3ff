import Foundation
import Testing
@testable import ApplianceEngine

extension HeavySuite {
    @Suite struct MicroBuildTests {
        @Test func buildTwiceIsBitIdenticalAndSecondIsCached() throws {
            let snapshot = try Fixtures.microSnapshot()
            let recipe = try Fixtures.microRecipe()
            // Two independent cache roots: the second build really rebuilds.
            let a = try Fixtures.scratch("build-a"), b = try Fixtures.scratch("build-b")
            defer { try? FileManager.default.removeItem(at: a); try? FileManager.default.removeItem(at: b) }
            let phases = PhaseLog()
            let (r1, t1) = try Fixtures.time {
                try MicroImageBuilder(cacheRoot: a).build(recipe: recipe, snapshot: snapshot,
                                                          sourceDateEpoch: Fixtures.sourceDateEpoch) { phases.add($0.phase) }
            }
            let (r2, t2) = try Fixtures.time {
                try MicroImageBuilder(cacheRoot: b).build(recipe: recipe, snapshot: snapshot, sourceDateEpoch: Fixtures.sourceDateEpoch)
            }
            let (r3, t3) = try Fixtures.time {
                try MicroImageBuilder(cacheRoot: a).build(recipe: recipe, snapshot: snapshot, sourceDateEpoch: Fixtures.sourceDateEpoch)
            }
            print("micro build: cold \(String(format: "%.2f", t1)) s, rebuild \(String(format: "%.2f", t2)) s, cached \(String(format: "%.3f", t3)) s")
            #expect(!r1.fromCache && !r2.fromCache && r3.fromCache)
            #expect(t3 < 1.0)
            #expect(r1.cacheKey == r2.cacheKey)
            for f in [Recipe.Format.squashfs, .tar, .initramfs, .kernel] {
                let h1 = try SHA256Hex.of(file: #require(r1.url(f))).sha256
                let h2 = try SHA256Hex.of(file: #require(r2.url(f))).sha256
                #expect(h1 == h2, "\(f) differs between two builds")
            }
            for f in Recipe.Format.allCases { #expect(r1.artifact(f) != nil, "missing \(f)") }
            #expect(phases.all.contains("squashfs") && phases.all.last == "done")
            // Recipe file and post script landed in the tree.
            let list = try Tool.run(["tar", "-tvf", #require(r1.url(.tar)).path]).stdoutString
            #expect(list.contains("./etc/motd") && list.contains("./etc/baton-stamp") && list.contains("./sbin/baton-context"))
            let ext4 = try Tool.run(["dumpe2fs", "-h", #require(r1.url(.ext4)).path]).stdoutString
            #expect(ext4.contains("Filesystem UUID:          \(ImageEmitter.uuid(fromHex: r1.cacheKey))"))
            let refs = try r1.store(in: ArtifactStore(root: a.appendingPathComponent("cas")))
            #expect(refs[.squashfs]?.sha256 == r1.artifact(.squashfs)?.sha256)
            let qinfo = try Tool.run(["qemu-img", "info", #require(r1.url(.qcow2)).path]).stdoutString
            #expect(qinfo.contains("file format: qcow2"))
        }

        @Test func changedInputChangesCacheKey() throws {
            let snapshot = try Fixtures.microSnapshot()
            var recipe = try Fixtures.microRecipe()
            let builder = MicroImageBuilder(cacheRoot: try Fixtures.scratch("key"))
            let k1 = try builder.cacheKey(recipe: recipe, snapshot: snapshot, sourceDateEpoch: 1)
            recipe.version.minor += 1
            #expect(try builder.cacheKey(recipe: recipe, snapshot: snapshot, sourceDateEpoch: 1) != k1)
            #expect(try builder.cacheKey(recipe: try Fixtures.microRecipe(), snapshot: snapshot, sourceDateEpoch: 2) != k1)
        }
    }
}

final class PhaseLog: @unchecked Sendable {
    private let lock = NSLock()
    private var phases: [String] = []
    func add(_ p: String) { lock.lock(); phases.append(p); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return phases }
}
