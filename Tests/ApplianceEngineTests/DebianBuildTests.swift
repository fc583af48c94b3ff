import Foundation
import Testing
@testable import ApplianceEngine

extension HeavySuite {
    @Suite struct DebianBuildTests {
        @Test func debianImageBuildsFromSnapshotOnlyAndBoots() throws {
            let recipe = try Recipe.load(file: Fixtures.packageDir.appendingPathComponent("recipes/debian.yaml"))
            let (report, ts) = try Fixtures.time {
                try Fixtures.snapshotter().snapshot(suite: recipe.os.suite, architecture: recipe.os.architecture,
                                                    packages: recipe.packages, includeEssential: true)
            }
            let snap = report.snapshot
            #expect(snap.package(named: "apt") != nil && snap.package(named: "dpkg") != nil)
            let builder = DebianImageBuilder(cacheRoot: Fixtures.workRoot.appendingPathComponent("build"))
            let (build, tb) = try Fixtures.time { try builder.build(recipe: recipe, snapshot: snap, sourceDateEpoch: Fixtures.sourceDateEpoch) }
            let image = try #require(VMImage(build: build))
            let (r, tv) = try Fixtures.time {
                try VMTester(workDir: try Fixtures.scratch("vm-debian")).run(image: image, checks: recipe.tests.vm, context: recipe.context, name: "debian")
            }
            print("debian: snapshot \(String(format: "%.2f", ts)) s (\(report.bytesDownloaded) B), build \(String(format: "%.2f", tb)) s (cached: \(build.fromCache)), vm \(String(format: "%.2f", tv)) s accel \(r.accelerator)")
            // Nothing of the build host: no source pointing at its snapshot directory (marked
            // trusted), no resolv.conf of its own; the sources list names the snapshot.
            let tar = try #require(build.url(.tar)).path
            let list = try Tool.run(["tar", "-xOf", tar, "./etc/apt/sources.list"]).stdoutString
            #expect(list == DebianImageBuilder.sourcesList(snapshot: snap.id) + "\n")
            #expect(!list.contains(snap.directory.path) && list.contains(snap.id))
            let members = try Tool.run(["tar", "-tf", tar]).stdoutString.split(separator: "\n")
            #expect(!members.contains("./etc/resolv.conf"))
            #expect(r.passed, "\(r.serialLog)")
            #expect(r.serialLog.contains("method=glideinwms"))
        }
    }
}
