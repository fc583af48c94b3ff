import Foundation
import Testing
@testable import ApplianceEngine

/// Which of the host's apt sources snapshots download from.
@Suite struct HostAptSourcesTests {
    @Test func debianArchivesWinOverThirdPartyOnesListedFirst() throws {
        let etc = FileManager.default.temporaryDirectory.appendingPathComponent("baton-apt-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: etc) }
        try FileManager.default.createDirectory(at: etc.appendingPathComponent("sources.list.d"), withIntermediateDirectories: true)
        // Sorted before debian.sources, and a plain suite name, as Debian's are.
        try "deb [signed-by=/usr/share/keyrings/grafana.key] https://apt.grafana.com stable main\n"
            .write(to: etc.appendingPathComponent("sources.list.d/apt.grafana.list"), atomically: true, encoding: .utf8)
        try "deb https://packages.example.org/security-tools bookworm-security main\n"
            .write(to: etc.appendingPathComponent("sources.list.d/b-tools.list"), atomically: true, encoding: .utf8)
        try """
            Types: deb
            URIs: http://mirror.site.example/debian/
            Suites: bookworm bookworm-updates
            Components: main

            Types: deb
            URIs: http://security.debian.org/debian-security
            Suites: bookworm-security
            Components: main
            """.write(to: etc.appendingPathComponent("sources.list.d/debian.sources"), atomically: true, encoding: .utf8)
        let mirrors = try #require(HostAptSources.detect(etc: etc.path))
        #expect(mirrors.main == "http://mirror.site.example/debian/")
        #expect(mirrors.security == "http://security.debian.org/debian-security")
    }

    @Test func withoutADebianArchiveTheFirstPlainSuiteIsTaken() throws {
        let etc = FileManager.default.temporaryDirectory.appendingPathComponent("baton-apt-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: etc) }
        try FileManager.default.createDirectory(at: etc, withIntermediateDirectories: true)
        try "deb http://proxy.site.example/apt bookworm main\n".write(to: etc.appendingPathComponent("sources.list"), atomically: true, encoding: .utf8)
        #expect(HostAptSources.detect(etc: etc.path)?.main == "http://proxy.site.example/apt")
    }
}
