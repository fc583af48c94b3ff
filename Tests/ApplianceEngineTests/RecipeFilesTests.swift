import Foundation
import Testing
@testable import ApplianceEngine

/// `files` entries are copied into an image tree whose symlinks point at host paths while it is
/// built: nothing may be written, chmod-ed or read through one.
@Suite struct RecipeFilesTests {
    /// A recipe directory with files/motd, an image root, and a "host" directory outside both.
    struct Layout {
        let base: URL, recipeDir: URL, root: URL, host: URL
        init() throws {
            base = try Fixtures.scratch("recipe-files")
            recipeDir = base.appendingPathComponent("recipe")
            root = base.appendingPathComponent("rootfs")
            host = base.appendingPathComponent("host")
            for d in [recipeDir.appendingPathComponent("files"), root, host] {
                try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
            }
            try Data("welcome\n".utf8).write(to: recipeDir.appendingPathComponent("files/motd"))
        }

        func pipeline(_ files: [Recipe.FileEntry]) throws -> BuildPipeline {
            var recipe = try Fixtures.microRecipe()
            recipe.files = files
            recipe.baseDirectory = recipeDir.path
            let snapshot = Snapshot(id: "none", suite: "bookworm", architecture: "amd64", requested: [], packages: [],
                                    directoryPath: base.path)
            return BuildPipeline(cacheRoot: base, builderVersion: "test", recipe: recipe, snapshot: snapshot,
                                 sourceDateEpoch: 0, progress: nil)
        }

        func entry(_ destination: String, source: String = "files/motd", mode: Int = 0o4755) -> Recipe.FileEntry {
            .init(source: source, destination: destination, mode: mode, uid: 0, gid: 0)
        }

        /// A file outside the image and the recipe directory, mode 0600: what a symlink must not reach.
        func hostFile(_ name: String) throws -> URL {
            let url = host.appendingPathComponent(name)
            try Data("host secret\n".utf8).write(to: url)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: url.path)
            return url
        }

        func mode(_ url: URL) throws -> Int {
            (try FileManager.default.attributesOfItem(atPath: url.path)[.posixPermissions] as? Int) ?? -1
        }
    }

    @Test func destinationThroughAbsoluteSymlinkIsRefused() throws {
        let l = try Layout()
        defer { try? FileManager.default.removeItem(at: l.base) }
        // Like Debian's var/run -> /run, but pointing at our stand-in for the host.
        try FileManager.default.createDirectory(at: l.root.appendingPathComponent("var"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: l.root.appendingPathComponent("var/run").path, withDestinationPath: l.host.path)
        let error = #expect(throws: BuildError.self) { try l.pipeline([l.entry("/var/run/x")]).applyFiles(l.root) }
        #expect(error?.description == "recipe file 'files/motd' → '/var/run/x' refused: '/var/run' is a symlink (to '\(l.host.path)'), "
            + "which is never followed; name the path without symlinks")
        #expect(try FileManager.default.contentsOfDirectory(atPath: l.host.path).isEmpty)
    }

    @Test func existingSymlinkAtDestinationIsReplacedNotFollowed() throws {
        let l = try Layout()
        defer { try? FileManager.default.removeItem(at: l.base) }
        let hostFile = try l.hostFile("shadow")
        try FileManager.default.createDirectory(at: l.root.appendingPathComponent("etc"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: l.root.appendingPathComponent("etc/motd").path, withDestinationPath: hostFile.path)
        try l.pipeline([l.entry("/etc/motd")]).applyFiles(l.root)
        #expect(try String(contentsOf: hostFile, encoding: .utf8) == "host secret\n")
        #expect(try l.mode(hostFile) == 0o600)
        let installed = l.root.appendingPathComponent("etc/motd")
        #expect(try String(contentsOf: installed, encoding: .utf8) == "welcome\n")
        #expect(try l.mode(installed) == 0o4755)
    }

    @Test func symlinkedSourceIsRefusedAndItsTargetUntouched() throws {
        let l = try Layout()
        defer { try? FileManager.default.removeItem(at: l.base) }
        let hostFile = try l.hostFile("passwd")
        try FileManager.default.createSymbolicLink(atPath: l.recipeDir.appendingPathComponent("files/link").path,
                                                   withDestinationPath: hostFile.path)
        let error = #expect(throws: BuildError.self) {
            try l.pipeline([l.entry("/etc/passwd", source: "files/link", mode: 0o777)]).applyFiles(l.root)
        }
        #expect(error?.description.contains("in the recipe directory, '/files/link' is a symlink") == true)
        #expect(try l.mode(hostFile) == 0o600)
        #expect(!FileManager.default.fileExists(atPath: l.root.appendingPathComponent("etc/passwd").path))
    }

    @Test func missingDirectoriesAreCreated() throws {
        let l = try Layout()
        defer { try? FileManager.default.removeItem(at: l.base) }
        try l.pipeline([l.entry("/opt/app/etc/motd", mode: 0o640)]).applyFiles(l.root)
        #expect(try l.mode(l.root.appendingPathComponent("opt/app")) == 0o755)
        #expect(try l.mode(l.root.appendingPathComponent("opt/app/etc/motd")) == 0o640)
    }
}
