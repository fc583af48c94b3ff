import Foundation
import Testing
@testable import ApplianceEngine

extension HeavySuite {
    @Suite struct SnapshotterTests {
        @Test func sameSetTwiceGivesSameIdAndDownloadsNothing() throws {
            let s = Fixtures.snapshotter()
            let (first, t1) = try Fixtures.time { try s.snapshot(suite: "bookworm", architecture: "amd64", packages: Fixtures.microPackages) }
            let (second, t2) = try Fixtures.time { try s.snapshot(suite: "bookworm", architecture: "amd64", packages: Fixtures.microPackages.reversed()) }
            print("snapshot: first \(String(format: "%.2f", t1)) s, \(first.bytesDownloaded) B downloaded; second \(String(format: "%.2f", t2)) s, \(second.bytesDownloaded) B")
            #expect(first.snapshot.id == second.snapshot.id)
            #expect(second.bytesDownloaded == 0)
            #expect(second.reusedExistingSnapshot)
            let snap = second.snapshot
            #expect(snap.package(named: "busybox-static") != nil)
            #expect(snap.packages.contains { $0.name.hasPrefix("linux-image-6.") })
            #expect(snap.packages.contains { $0.name == "libc6" }, "dependency closure should include libc6")
            // A real apt repository: Packages lists every .deb and the Release hashes it.
            let packages = try String(contentsOf: snap.directory.appendingPathComponent("Packages"), encoding: .utf8)
            #expect(packages.components(separatedBy: "\nPackage: ").count == snap.packages.count)
            let release = try String(contentsOf: snap.directory.appendingPathComponent("Release"), encoding: .utf8)
            #expect(release.contains(try SHA256Hex.of(file: snap.directory.appendingPathComponent("Packages.gz")).sha256))
            // The id is the digest of the sorted name=version=sha256 list.
            let lines = snap.packages.sorted { $0.name < $1.name }.map { "\($0.name)=\($0.version)=\($0.sha256)\n" }.joined()
            #expect(snap.id == SHA256Hex.of(string: lines))
        }

        @Test func unknownPackageIsNamed() throws {
            #expect {
                try Fixtures.snapshotter().snapshot(suite: "bookworm", architecture: "amd64",
                                                     packages: ["busybox-static", "no-such-package-baton"])
            } throws: { error in
                (error as? SnapshotError) == .unknownPackages(["no-such-package-baton"])
                    && "\(error)".contains("no-such-package-baton")
            }
        }

        @Test func worksOfflineFromCache() throws {
            _ = try Fixtures.microSnapshot()  // makes sure the cache is warm
            // A dead proxy makes every fetch fail, as an unreachable mirror would; listsMaxAge 0
            // forces the refresh attempt.
            let offline = try RepositorySnapshotter(root: Fixtures.workRoot.appendingPathComponent("repo"), listsMaxAge: 0,
                                                extraAptOptions: ["Acquire::http::Proxy=http://127.0.0.1:9"])
            let report = try offline.snapshot(suite: "bookworm", architecture: "amd64", packages: Fixtures.microPackages)
            #expect(report.offline)
            #expect(report.notes.contains { $0.contains("OFFLINE") })
            #expect(report.snapshot.id == (try Fixtures.microSnapshot()).id)
            #expect(report.bytesDownloaded == 0)
        }
    }
}
