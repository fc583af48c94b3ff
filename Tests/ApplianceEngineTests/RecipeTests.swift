import Foundation
import Testing
@testable import ApplianceEngine

@Suite struct RecipeTests {
    static let valid = """
    name: t
    version: {major: 1, minor: 2}
    os: {suite: bookworm, architecture: amd64}
    profile: micro
    packages: [busybox-static]
    formats: [squashfs, tar]
    """

    func issues(_ yaml: String) -> [RecipeIssue] {
        do { _ = try Recipe.parse(yaml: yaml, file: "r.yaml"); return [] } catch let e as RecipeError { return e.issues } catch { return [] }
    }

    @Test func examplesLoad() throws {
        let micro = try Recipe.load(file: Fixtures.packageDir.appendingPathComponent("recipes/micro.yaml"))
        #expect(micro.profile == .micro && micro.tests.vm.count == 3 && micro.files.first?.mode == 0o644)
        let debian = try Recipe.load(file: Fixtures.packageDir.appendingPathComponent("recipes/debian.yaml"))
        #expect(debian.profile == .debian && debian.context.method == .glideinwms)
    }

    @Test func unknownKeyNamesLine() {
        let found = issues(Self.valid + "\nflavour: vanilla\n")
        #expect(found.count == 1)
        #expect(found.first?.line == 7)
        #expect(found.first?.description.hasPrefix("r.yaml:7:1: recipe: unknown key 'flavour'") == true)
    }

    @Test func nestedUnknownKeyNamesLine() {
        let yaml = Self.valid + "\ncontext:\n  method: nocloud\n  lifetime: 5\n"
        let found = issues(yaml)
        #expect(found.map(\.line) == [9])
        #expect(found.first?.message.contains("unknown key 'lifetime'") == true)
    }

    @Test func pathTraversalRefused() {
        let yaml = Self.valid + """

        files:
          - source: ../../etc/shadow
            destination: /etc/x
          - source: /etc/passwd
            destination: /etc/y
          - source: ok.txt
            destination: /etc/../../host
          - source: ok.txt
            destination: relative/path
        """
        let found = issues(yaml)
        #expect(found.map(\.line) == [8, 10, 13, 15])
        #expect(found[0].message.contains("'..'") && found[1].message.contains("relative"))
        #expect(found[2].message.contains("leave the image") && found[3].message.contains("absolute"))
    }

    @Test func badValuesAndYAMLSyntax() {
        #expect(issues(Self.valid.replacingOccurrences(of: "profile: micro", with: "profile: fedora")).first?.line == 4)
        #expect(issues(Self.valid.replacingOccurrences(of: "tar]", with: "vmdk]")).first?.message.contains("'vmdk' unknown") == true)
        #expect(issues("name: [unclosed\n").first?.message.hasPrefix("YAML:") == true)
        #expect(issues(Self.valid + "\ntests:\n  vm:\n    - {name: x, run: 'true'}\n").first?.message.contains("needs format") == true)
    }

    @Test func canonicalFormIsStable() throws {
        let a = try Recipe.parse(yaml: Self.valid)
        let reordered = """
        formats: [tar, squashfs]
        profile: micro
        packages: [busybox-static]
        os: {architecture: amd64, suite: bookworm}
        version: {minor: 2, major: 1}
        name: t
        """
        let b = try Recipe.parse(yaml: reordered)
        #expect(try a.canonical() == b.canonical())
        #expect(try a.digest() == b.digest())
        let json = String(decoding: try a.canonical(), as: UTF8.self)
        #expect(json.hasPrefix("{\"context\":"))
        var c = a
        c.packages.append("cpio")
        #expect(try c.digest() != a.digest())
    }
}
