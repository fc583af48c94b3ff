import Foundation
import Testing
@testable import ApplianceEngine

/// What a crash left behind goes at the next start; what runs meanwhile stays.
@Suite struct LeftoversTests {
    @Test func onlyOldScratchWithTheRightNamesGoes() throws {
        let dir = try Fixtures.scratch("leftovers")
        let fm = FileManager.default
        let twoDaysAgo = Date().addingTimeInterval(-2 * 24 * 3600)
        func make(_ name: String, old: Bool, readOnly: Bool = false) throws {
            let url = dir.appendingPathComponent(name)
            try fm.createDirectory(at: url.appendingPathComponent("rootfs/etc"), withIntermediateDirectories: true)
            try Data("x".utf8).write(to: url.appendingPathComponent("rootfs/etc/hostname"))
            if readOnly { _ = try Tool.run(["chmod", "-R", "a-w", url.path]) }
            if old { try fm.setAttributes([.modificationDate: twoDaysAgo], ofItemAtPath: url.path) }
        }
        try make(".work-crashed", old: true)
        try make(".stage-crashed", old: true, readOnly: true)
        try make(".work-running", old: false)
        try make("0a1b2c-cached-build", old: true)
        let removed = Leftovers.sweep(dir, prefixes: [".work-", ".stage-"])
        #expect(removed == [".stage-crashed", ".work-crashed"])
        #expect(try fm.contentsOfDirectory(atPath: dir.path).sorted() == [".work-running", "0a1b2c-cached-build"])
        // Every entry of a directory of scratch only (the store's tmp/).
        #expect(Leftovers.sweep(dir, prefixes: []) == ["0a1b2c-cached-build"])
    }
}
