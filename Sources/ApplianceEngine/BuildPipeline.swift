import Foundation

/// Steps shared by the micro and debian builders: cache lookup, guest tooling, recipe files,
/// post scripts, format emission, kernel + initramfs, cache commit.
public struct BuildPipeline: Sendable {
    let cacheRoot: URL
    let builderVersion: String
    let recipe: Recipe
    let snapshot: Snapshot
    let sourceDateEpoch: Int
    let progress: BuildProgressHandler?
    var postScripts: any PostScriptRunner = NamespaceChrootRunner()

    var buildsDir: URL { cacheRoot.appendingPathComponent("builds") }
    var debs: DebExtractor { DebExtractor(cacheDir: cacheRoot.appendingPathComponent("debs")) }

    func inputs() throws -> [String: String] {
        ["builder": builderVersion, "recipe": try recipe.digest(), "files": try recipe.filesDigest(),
         "snapshot": snapshot.id, "source_date_epoch": String(sourceDateEpoch),
         // Where post scripts ran can show in the tree (e.g. mount points a runtime creates).
         "post_scripts": String(describing: type(of: postScripts))]
    }

    /// Digest of every input; the cache key.
    func cacheKey() throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = .sortedKeys
        return SHA256Hex.of(data: try enc.encode(try inputs()))
    }

    func report(_ phase: String, _ percent: Double?) { progress?(BuildProgress(phase: phase, percent: percent)) }

    func cached(_ key: String, started: Date) -> BuildResult? {
        let dir = buildsDir.appendingPathComponent(key)
        guard let data = try? Data(contentsOf: dir.appendingPathComponent("build.json")),
              let rec = try? JSONDecoder().decode(BuildRecord.self, from: data) else { return nil }
        report("cached", 100)
        return BuildResult(cacheKey: key, directory: dir, artifacts: rec.artifacts, fromCache: true,
                           seconds: Date().timeIntervalSince(started))
    }

    /// Runs the whole build; `makeRootfs` fills the (empty, existing) root directory.
    func run(makeRootfs: (URL) throws -> Void) throws -> BuildResult {
        let started = Date()
        let key = try cacheKey()
        if let hit = cached(key, started: started) { return hit }
        try FileManager.default.createDirectory(at: buildsDir, withIntermediateDirectories: true)
        let stage = buildsDir.appendingPathComponent(".stage-\(UUID().uuidString)")
        let work = buildsDir.appendingPathComponent(".work-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: stage); try? FileManager.default.removeItem(at: work) }
        let rootfs = work.appendingPathComponent("rootfs")
        try mkdir(stage, 0o755)
        try mkdir(work, 0o755)
        try mkdir(rootfs, 0o755)

        report("rootfs", 5)
        try makeRootfs(rootfs)
        report("guest-tools", 30)
        try installGuestTools(rootfs)
        report("files", 35)
        try applyFiles(rootfs)
        report("post", 40)
        try runPostScripts(rootfs)

        let emitter = ImageEmitter(sourceDateEpoch: sourceDateEpoch, uuid: ImageEmitter.uuid(fromHex: key),
                                   label: recipe.name)
        try emitter.clampTimes(rootfs)
        var outputs: [(Recipe.Format, String)] = []
        let formats = Set(recipe.formats)
        let step = 50.0 / Double(max(formats.count, 1))
        var pct = 50.0
        func out(_ f: String) -> URL { stage.appendingPathComponent(f) }
        if formats.contains(.tar) {
            report("tar", pct); pct += step
            try emitter.tar(rootfs, to: out("rootfs.tar")); outputs.append((.tar, "rootfs.tar"))
        }
        if formats.contains(.squashfs) {
            report("squashfs", pct); pct += step
            try emitter.squashfs(rootfs, to: out("rootfs.squashfs")); outputs.append((.squashfs, "rootfs.squashfs"))
        }
        if formats.contains(.ext4) || formats.contains(.qcow2) {
            report("ext4", pct); pct += step
            let raw = formats.contains(.ext4) ? out("rootfs.ext4") : work.appendingPathComponent("rootfs.ext4")
            try emitter.ext4(rootfs, to: raw)
            if formats.contains(.ext4) { outputs.append((.ext4, "rootfs.ext4")) }
            if formats.contains(.qcow2) {
                report("qcow2", pct); pct += step
                try emitter.qcow2(from: raw, to: out("rootfs.qcow2")); outputs.append((.qcow2, "rootfs.qcow2"))
            }
        }
        if formats.contains(.kernel) || formats.contains(.initramfs) {
            report("kernel", pct); pct += step
            let (vmlinuz, modules) = try kernel()
            if formats.contains(.kernel) {
                try FileManager.default.copyItem(at: vmlinuz, to: out("vmlinuz")); outputs.append((.kernel, "vmlinuz"))
            }
            if formats.contains(.initramfs) {
                report("initramfs", pct); pct += step
                let dir = work.appendingPathComponent("initramfs")
                try buildInitramfsTree(dir, modules: modules)
                try emitter.initramfs(dir, to: out("initramfs.gz")); outputs.append((.initramfs, "initramfs.gz"))
            }
        }
        report("digest", 98)
        var artifacts: [BuiltArtifact] = []
        for (format, file) in outputs {
            let (sha, size) = try SHA256Hex.of(file: out(file))
            artifacts.append(BuiltArtifact(format: format, file: file, sha256: sha, size: size))
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(BuildRecord(cacheKey: key, inputs: try inputs(), artifacts: artifacts))
            .write(to: stage.appendingPathComponent("build.json"))
        let final = buildsDir.appendingPathComponent(key)
        // A concurrent identical build may have won the rename; its result is equally valid.
        if rename(stage.path, final.path) != 0, cached(key, started: started) == nil {
            throw POSIXError(.init(rawValue: errno) ?? .EIO)
        }
        report("done", 100)
        return BuildResult(cacheKey: key, directory: final, artifacts: artifacts, fromCache: false,
                           seconds: Date().timeIntervalSince(started))
    }

    func mkdir(_ url: URL, _ mode: Int) throws {
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: url.path)
    }

    func write(_ text: String, to url: URL, mode: Int) throws {
        try mkdir(url.deletingLastPathComponent(), 0o755)
        try Data(text.utf8).write(to: url)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: url.path)
    }

    func symlink(_ target: String, at url: URL) throws {
        if (try? FileManager.default.destinationOfSymbolicLink(atPath: url.path)) != nil
            || FileManager.default.fileExists(atPath: url.path) { return }
        try FileManager.default.createSymbolicLink(atPath: url.path, withDestinationPath: target)
    }

    /// Root of the extracted busybox-static package.
    func busyboxTree() throws -> URL {
        guard let pkg = snapshot.package(named: "busybox-static") else {
            throw BuildError.missingPackage("busybox-static", "the guest tools and initramfs need it; add it to packages")
        }
        return try debs.extract(snapshot.debURL(pkg), sha256: pkg.sha256)
    }

    func applets(_ busybox: URL) throws -> [String] {
        try Tool.run([busybox.path, "--list"]).stdoutString.split(separator: "\n").map(String.init).sorted()
    }

    /// busybox at /usr/lib/baton with its own applet dir, so the guest scripts need nothing
    /// from the image itself.
    func installGuestTools(_ root: URL) throws {
        let bb = try busyboxTree().appendingPathComponent("bin/busybox")
        let dir = root.appendingPathComponent("usr/lib/baton")
        try mkdir(dir.appendingPathComponent("bin"), 0o755)
        let dest = dir.appendingPathComponent("busybox")
        if !FileManager.default.fileExists(atPath: dest.path) {
            try FileManager.default.copyItem(at: bb, to: dest)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dest.path)
        }
        for a in try applets(bb) { try symlink("../busybox", at: dir.appendingPathComponent("bin/\(a)")) }
        try write(GuestScripts.batonInit, to: root.appendingPathComponent("sbin/baton-init"), mode: 0o755)
        try write(GuestScripts.batonContext, to: root.appendingPathComponent("sbin/baton-context"), mode: 0o755)
        try write((recipe.context.hostname ?? recipe.name) + "\n", to: root.appendingPathComponent("etc/hostname"), mode: 0o644)
        try write("NAME=\(recipe.name)\nVERSION=\(recipe.version.string)\nPROFILE=\(recipe.profile.rawValue)\nSNAPSHOT=\(snapshot.id)\n",
                  to: root.appendingPathComponent("etc/baton-release"), mode: 0o644)
        for d in ["proc", "sys", "dev", "run", "tmp"] { try mkdir(root.appendingPathComponent(d), d == "tmp" ? 0o1777 : 0o755) }
    }

    /// Copies each `files` entry into the image. Both sides are walked without following
    /// symlinks (see ConfinedTree): the image's own links point at host paths while we build.
    func applyFiles(_ root: URL) throws {
        let sources = ConfinedTree(root: recipe.sourceDirectory.path)
        let image = ConfinedTree(root: root.path)
        for f in recipe.files {
            let src = recipe.sourceURL(f)
            guard FileManager.default.fileExists(atPath: src.path) else { throw BuildError.missingFile(src.path) }
            func refused(_ why: String) -> BuildError { .unsafeFile(source: f.source, destination: f.destination, reason: why) }
            let data: Data
            do throws(ConfinedTree.Refusal) { data = try sources.read(f.source) } catch { throw refused("in the recipe directory, \(error.reason)") }
            do throws(ConfinedTree.Refusal) {
                try image.write(data, to: f.destination, mode: f.mode, uid: f.uid, gid: f.gid)
            } catch { throw refused(error.reason) }
        }
    }

    /// Post scripts run inside the image (a container: no network, nothing leaks to the host).
    func runPostScripts(_ root: URL) throws {
        let environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "SOURCE_DATE_EPOCH": String(sourceDateEpoch)]
        for p in recipe.post {
            let result: (status: Int32, output: String)
            do {
                result = try postScripts.run(script: p.script, name: p.name, root: root, environment: environment, timeout: 600)
            } catch {
                throw BuildError.postScriptFailed(p.name, "\(error)")
            }
            guard result.status == 0 else {
                throw BuildError.postScriptFailed(p.name, "exit status \(result.status): \(Tool.tail(result.output, lines: 10))")
            }
        }
    }

    /// vmlinuz and the ordered module files from the snapshot's linux-image packages.
    func kernel() throws -> (URL, [URL]) {
        let images = snapshot.packages.filter { $0.name.hasPrefix("linux-image-") }
        for pkg in images.sorted(by: { $0.name > $1.name }) {
            let tree = try debs.extract(snapshot.debURL(pkg), sha256: pkg.sha256)
            let boot = tree.appendingPathComponent("boot")
            guard let v = (try? FileManager.default.contentsOfDirectory(atPath: boot.path))?
                .filter({ $0.hasPrefix("vmlinuz-") }).sorted().last else { continue }
            let kver = String(v.dropFirst("vmlinuz-".count))
            let modules = try KernelModules(moduleRoot: tree.appendingPathComponent("lib/modules/\(kver)")).resolve()
            return (boot.appendingPathComponent(v), modules)
        }
        throw BuildError.missingPackage("linux-image-*", "kernel/initramfs formats need a kernel; add linux-image-cloud-amd64 to packages")
    }

    func buildInitramfsTree(_ dir: URL, modules: [URL]) throws {
        let bb = try busyboxTree().appendingPathComponent("bin/busybox")
        for d in ["bin", "dev", "proc", "sys", "mnt", "newroot", "etc", "lib/modules"] {
            try mkdir(dir.appendingPathComponent(d), 0o755)
        }
        try FileManager.default.copyItem(at: bb, to: dir.appendingPathComponent("bin/busybox"))
        for a in try applets(bb) { try symlink("busybox", at: dir.appendingPathComponent("bin/\(a)")) }
        var names: [String] = []
        for m in modules {
            try FileManager.default.copyItem(at: m, to: dir.appendingPathComponent("lib/modules/\(m.lastPathComponent)"))
            names.append(m.lastPathComponent)
        }
        try write(names.joined(separator: "\n") + "\n", to: dir.appendingPathComponent("etc/baton-modules"), mode: 0o644)
        try write(GuestScripts.initramfsInit, to: dir.appendingPathComponent("init"), mode: 0o755)
        // The kernel opens /dev/console before /init runs; without the node early output is lost.
        try Tool.run(["mknod", "-m", "600", dir.appendingPathComponent("dev/console").path, "c", "5", "1"])
    }
}
