import Foundation
import Testing
@testable import LauncherEngine

/// Failures that need the engine (images, runtime); each must leave no
/// instance, mount or directory behind.
@Suite(.serialized) struct BadInputTests {
    func expectNothingLeft(_ engine: Launcher, _ state: String) async {
        #expect(await engine.list().isEmpty)
        #expect(procMounts(under: state).isEmpty)
        #expect(instanceDirs(state).isEmpty)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: "\(state)/runc")) ?? []).isEmpty)
    }

    func launchError(_ engine: Launcher, _ cfg: Data, minor: String) async throws -> LauncherError? {
        try await engine.upload(cfg, format: .json)
        do { _ = try await engine.launch(name: "bad", major: "1", minor: minor); return nil } catch let e as LauncherError { return e }
    }

    @Test func launchFailuresCleanUp() async throws {
        try await withEngine { engine, state in
            let missing = try await launchError(engine, configJSON(name: "bad", minor: "1", base: "nope.tar.gz"), minor: "1")
            #expect(missing == .imageNotFound(Fixtures.shared.imageDir + "/nope.tar.gz"))
            await expectNothingLeft(engine, state)

            let corrupt = try await launchError(engine, configJSON(name: "bad", minor: "2", base: "corrupt.tar.gz"), minor: "2")
            guard case .corruptImage(let path, _)? = corrupt else { Issue.record("got \(String(describing: corrupt))"); return }
            #expect(path.hasSuffix("corrupt.tar.gz"))
            // No half-unpacked layer may survive.
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(state)/layers").isEmpty)
            await expectNothingLeft(engine, state)

            let noScript = try await launchError(engine, configJSON(name: "bad", minor: "3", script: "/absent.sh"), minor: "3")
            #expect(noScript == .startupScriptMissing("/absent.sh"))
            await expectNothingLeft(engine, state)

            let quits = try await launchError(engine, configJSON(name: "bad", minor: "4", script: "/exit-at-once.sh"), minor: "4")
            guard case .startupExited(_, _, let log)? = quits else { Issue.record("got \(String(describing: quits))"); return }
            #expect(log.contains("bye"))
            await expectNothingLeft(engine, state)

            let owner = try await launchError(engine, configJSON(name: "bad", minor: "5", owner: "mallory"), minor: "5")
            #expect(owner == .unknownOwner("mallory"))
            await expectNothingLeft(engine, state)

            let missingMountSrc = try await launchError(engine, configJSON(name: "bad", minor: "6", mounts: ["absent.tar /x READ"]), minor: "6")
            #expect(missingMountSrc == .imageNotFound(Fixtures.shared.imageDir + "/absent.tar"))
            await expectNothingLeft(engine, state)
        }
    }

    @Test func unknownNamesAndDuplicates() async throws {
        try await withEngine { engine, state in
            await #expect(throws: LauncherError.unknownInstance("ghost")) { try await engine.destroy("ghost") }
            await #expect(throws: LauncherError.unknownInstance("ghost")) { try await engine.logs("ghost") }
            await #expect(throws: LauncherError.unknownInstance("ghost")) { _ = try await engine.exec("ghost", ["true"]) }
            await #expect(throws: LauncherError.unknownConfig("web 9.99")) { _ = try await engine.launch(name: "web", major: "9", minor: "99") }
            try await engine.upload(configJSON(), format: .json)
            try await engine.upload(configJSON(), format: .json) // identical: fine
            let yaml = "name: web\nmajor: 1\nminor: 01\nbase_image: basefs.tar.gz\nstartup_script: /start.sh\nmounts: []\n"
            try await engine.upload(Data(yaml.utf8), format: .yaml) // same content in YAML: fine
            await #expect(throws: LauncherError.duplicateConfig("web 1.01")) {
                try await engine.upload(configJSON(script: "/other.sh"), format: .json)
            }
            #expect(await engine.configs().count == 1)
            #expect(try await engine.destroyAll() == "Success")
        }
    }

    @Test func runOnceCollectsAndCleansUp() async throws {
        try await withEngine { engine, state in
            let r = try await engine.runOnce(image: .path("basefs.tar.gz"),
                                             command: ["sh", "-c", "echo hello $GREETING; echo data > /out.txt; exit 3"],
                                             env: ["GREETING": "world"], timeout: 30, collect: ["/out.txt", "/missing"])
            #expect(r.exitStatus == 3)
            #expect(r.output.contains("hello world"))
            #expect(r.files["/out.txt"] == Data("data\n".utf8))
            #expect(r.files["/missing"] == nil)
            #expect(!r.timedOut)
            await expectNothingLeft(engine, state)

            // A directory root fs works too (used in place, not copied).
            let d = try await engine.runOnce(image: .path(Fixtures.shared.imageDir + "/basedir"), command: ["hostname"])
            #expect(d.exitStatus == 0 && d.output.hasPrefix("run-"))

            let start = Date()
            let t = try await engine.runOnce(image: .path("basefs.tar.gz"), command: ["sleep", "100"], timeout: 1)
            #expect(t.timedOut)
            #expect(Date().timeIntervalSince(start) < 20)
            await expectNothingLeft(engine, state)
        }
    }

    /// Collected files are read on the host: neither '..' nor a symlink the container made may
    /// lead the read out of the container's root file system.
    @Test func runOnceCollectStaysInsideTheContainer() async throws {
        try await withEngine { engine, state in
            await #expect(throws: LauncherError.invalidField("collect", reason: "'/../../../../etc/shadow' contains '..'; "
                                                             + "name a path inside the container without it")) {
                _ = try await engine.runOnce(image: .path("basefs.tar.gz"), command: ["true"], collect: ["/../../../../etc/shadow"])
            }
            await expectNothingLeft(engine, state)

            // A link to the root on the way, and a link as the collected file itself.
            for (link, target, collect) in [("/tmp/l", "/", "/tmp/l/etc/passwd"), ("/tmp/p", "/etc/passwd", "/tmp/p")] {
                let refused = LauncherError.invalidField("collect", reason: "'\(collect)' goes through '\(link)', a symlink in the container; "
                                                         + "files are collected without following symlinks, so name the real path")
                await #expect(throws: refused) {
                    _ = try await engine.runOnce(image: .path("basefs.tar.gz"), command: ["busybox", "ln", "-s", target, link],
                                                 timeout: 30, collect: [collect])
                }
                await expectNothingLeft(engine, state)
            }
        }
    }

    @Test func limitsReachTheCgroup() async throws {
        try await withEngine { engine, state in
            try await engine.upload(configJSON(name: "lim", limits: "{\"memory\": \"64M\", \"pids\": 50, \"cpu\": 0.5}"), format: .json)
            let r = try await engine.launch(name: "lim", major: "1", minor: "01")
            let pidsFile = "/sys/fs/cgroup/pids/baton-launcher/\(r.instance)/pids.max"
            if FileManager.default.fileExists(atPath: "/sys/fs/cgroup/pids") {
                #expect(r.warnings.isEmpty)
                #expect((try? String(contentsOfFile: pidsFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == "50")
                let mem = try? String(contentsOfFile: "/sys/fs/cgroup/memory/baton-launcher/\(r.instance)/memory.limit_in_bytes", encoding: .utf8)
                #expect(mem?.trimmingCharacters(in: .whitespacesAndNewlines) == "\(64 << 20)")
            } else {
                #expect(!r.warnings.isEmpty)
            }
            try await engine.destroy(r.instance)
            #expect(!FileManager.default.fileExists(atPath: pidsFile))
        }
    }
}

/// The image's /etc/passwd is read for `startup_owner` without following symlinks.
@Suite struct OwnerLookupTests {
    @Test func aSymlinkedPasswdIsNotFollowedToTheHost() throws {
        let dir = NSTemporaryDirectory() + "baton-owner-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let rootfs = dir + "/rootfs", hostFile = dir + "/host-passwd"
        try FileManager.default.createDirectory(atPath: rootfs + "/etc", withIntermediateDirectories: true)
        let assembler = RootfsAssembler(layers: try LayerStore(layersDir: dir + "/layers"), imageDir: dir + "/images")
        let resolver = PathResolver(rootfs: rootfs)

        try "alice:x:1001:1002::/home/alice:/bin/sh\n".write(toFile: rootfs + "/etc/passwd", atomically: true, encoding: .utf8)
        let alice = try assembler.resolveOwner("alice", resolver: resolver)
        #expect(alice.uid == 1001 && alice.gid == 1002 && alice.home == "/home/alice")

        try FileManager.default.removeItem(atPath: rootfs + "/etc/passwd")
        try "evil:x:4242:4242::/home/evil:/bin/sh\n".write(toFile: hostFile, atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: rootfs + "/etc/passwd", withDestinationPath: hostFile)
        #expect(throws: LauncherError.self) { try assembler.resolveOwner("evil", resolver: resolver) }
        #expect(try assembler.resolveOwner("root", resolver: resolver).uid == 0)
    }
}

/// The startup script is looked up as the container will see it: an image's symlinks resolve
/// inside the image, never through the host's own files.
@Suite struct StartupScriptLookupTests {
    @Test func symlinksResolveInsideTheImage() throws {
        let dir = NSTemporaryDirectory() + "baton-script-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let rootfs = dir + "/rootfs", fm = FileManager.default
        try fm.createDirectory(atPath: rootfs + "/app/bin", withIntermediateDirectories: true)
        let assembler = RootfsAssembler(layers: try LayerStore(layersDir: dir + "/layers"), imageDir: dir + "/images")
        let resolver = PathResolver(rootfs: rootfs)
        try "#!/bin/sh\n".write(toFile: rootfs + "/app/bin/start.sh", atomically: true, encoding: .utf8)
        try fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: rootfs + "/app/bin/start.sh")

        // /opt -> / in the image: /opt/app/bin/start.sh is the image's /app/bin/start.sh. On the
        // host, rootfs/opt leads to the host's root, which has no /app/bin/start.sh.
        try fm.createSymbolicLink(atPath: rootfs + "/opt", withDestinationPath: "/")
        try #require(!fm.fileExists(atPath: "/app/bin/start.sh"))
        try assembler.checkScript("/opt/app/bin/start.sh", resolver: resolver)
        // A relative link, and `..` stopping at the container's root.
        try fm.createSymbolicLink(atPath: rootfs + "/run.sh", withDestinationPath: "../../app/bin/start.sh")
        try assembler.checkScript("/run.sh", resolver: resolver)

        // A script that exists on the host only: missing, though a host-side lookup through the
        // image's /opt link would find it.
        let hostOnly = dir + "/host-only.sh"
        try "#!/bin/sh\n".write(toFile: hostOnly, atomically: true, encoding: .utf8)
        try fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: hostOnly)
        #expect(throws: LauncherError.startupScriptMissing("/opt" + hostOnly)) {
            try assembler.checkScript("/opt" + hostOnly, resolver: resolver)
        }
        // A loop of links is missing too, not a hang.
        try fm.createSymbolicLink(atPath: rootfs + "/loop", withDestinationPath: "/loop")
        #expect(throws: LauncherError.startupScriptMissing("/loop")) { try assembler.checkScript("/loop", resolver: resolver) }
        // Not executable, or a directory: refused as before.
        try fm.setAttributes([.posixPermissions: 0o644], ofItemAtPath: rootfs + "/app/bin/start.sh")
        #expect(throws: LauncherError.startupScriptMissing("/run.sh")) { try assembler.checkScript("/run.sh", resolver: resolver) }
        #expect(throws: LauncherError.startupScriptMissing("/app")) { try assembler.checkScript("/app", resolver: resolver) }
    }
}
