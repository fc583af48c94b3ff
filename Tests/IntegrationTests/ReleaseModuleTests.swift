@testable import AgentKernel
@testable import Agents
@testable import ApplianceEngine
import Foundation
import Logging
import Testing

/// `release.publish` as the module runs it, on small files put into a real artifact store: no
/// XMPP server, build or VM (the lifecycle integration test runs the whole chain).
@Suite struct ReleaseModuleTests {
    let base: URL

    init() throws {
        base = FileManager.default.temporaryDirectory.appendingPathComponent("baton-release-module-\(UUID().uuidString.prefix(8))")
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("recipes")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: source, to: base.appendingPathComponent("recipes"))
    }

    /// A release agent whose lifecycle root (artifacts and releases) is `root`, its state in `base`.
    func module(root: URL, settings extra: String = "signing_key_create: true\n") throws -> ReleaseModule {
        let settings = AgentSettings(name: "release", connection: ConnectionSettings(jid: "release@baton.test", password: "x"),
                                     stateDirectory: base.appendingPathComponent("state").path,
                                     moduleSettings: ["lifecycle": "root: \(root.path)\nrecipes: \(base.path)/recipes\n" + extra])
        return try ReleaseModule(settings: settings)
    }

    /// The step as a workflow reaches it: the micro recipe resolved, a squashfs in the store
    /// whose content (and build cache key) is `build`.
    func invocation(root: URL, build: String, with: [String: JSONValue] = [:]) throws -> StepInvocation {
        let recipePath = base.appendingPathComponent("recipes/micro.yaml")
        let digest = try Recipe.load(file: recipePath).digest()
        let file = base.appendingPathComponent("image-\(build)")
        try Data("image \(build)".utf8).write(to: file)
        let ref = try ArtifactStore(root: root.appendingPathComponent("artifacts")).put(file)
        let context: [String: [String: JSONValue]] = [
            "configure": ["recipe_path": .string(recipePath.path), "recipe_digest": .string(digest)],
            "packages": ["snapshot_id": .string("snapshot")],
            "image": ["cache_key": .string("key-\(build)"), "artifacts": .object(["squashfs": ArtifactJSON.value(ref)])],
        ]
        return StepInvocation(workflowID: "w-\(build)", workflowName: "micro-appliance",
                              step: .init(id: "publish", action: "release.publish", with: with), params: [:], context: context, earlierSteps: ["configure", "packages", "image"],
                              attempt: 1, trail: [], submitter: "ops@baton.test",
                              workspace: base.appendingPathComponent("state/work/w-\(build)/publish"), logger: Logger(label: "t"),
                              progress: { _ in })
    }

    /// Through the module: new inputs always get a version above every earlier one, though
    /// retention has deleted the first (the old first-free choice took 1.0 again).
    @Test func newInputsNeverTakeAnEarlierVersion() async throws {
        defer { try? FileManager.default.removeItem(at: base) }
        let root = base.appendingPathComponent("shared")
        let module = try module(root: root, settings: "retention: 2\nsigning_key_create: true\n")
        var versions: [String] = []
        for build in ["a", "b", "c", "d"] {
            versions.append(try #require(try await module.run(try invocation(root: root, build: build)).outputs["version"]?.string))
        }
        #expect(versions == ["1.0", "1.0.1", "1.0.2", "1.0.3"])
        // The first build's inputs again: its release is gone, so it is published anew, higher.
        let again = try await module.run(try invocation(root: root, build: "a")).outputs
        #expect(again["version"]?.string == "1.0.4" && again["already_published"] == nil)
        #expect(try module.publisher.versions(appliance: "micro-smoke", channel: "testing") == ["1.0.3", "1.0.4"])
        #expect(try module.publisher.rollback(appliance: "micro-smoke", channel: "testing") == "1.0.3")
    }

    /// The lifecycle root (artifacts, releases) on another file system than state_dir, as when
    /// /var/lib/baton/shared is a mount of its own: the release is published. The files used to
    /// be hard-linked from the store into the step's workspace, which failed with EXDEV.
    @Test func lifecycleRootOnAnotherFileSystem() async throws {
        // Not skipped where it cannot run: it fails, saying why (Debian and containers have a tmpfs /dev/shm).
        try #require(Self.shmIsAnotherFileSystem, "needs /dev/shm writable and on another file system than the temporary directory")
        let root = URL(fileURLWithPath: "/dev/shm/baton-release-module-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: base); try? FileManager.default.removeItem(at: root) }
        let module = try module(root: root)
        let outputs = try await module.run(try invocation(root: root, build: "a")).outputs
        #expect(outputs["version"]?.string == "1.0")
        let dir = try #require(outputs["release_dir"]?.string)
        try module.publisher.verify(URL(fileURLWithPath: dir))
        #expect(FileManager.default.contents(atPath: dir + "/micro-smoke.squashfs") == Data("image a".utf8))
    }

    static var shmIsAnotherFileSystem: Bool {
        var shm = stat(), tmp = stat()
        return access("/dev/shm", W_OK) == 0 && stat("/dev/shm", &shm) == 0
            && stat(FileManager.default.temporaryDirectory.path, &tmp) == 0 && shm.st_dev != tmp.st_dev
    }

    /// signing_key_create reaches the publisher; without it a missing key fails the step.
    @Test func signingKeyIsCreatedOnlyWhenConfigured() async throws {
        defer { try? FileManager.default.removeItem(at: base) }
        let root = base.appendingPathComponent("shared")
        let error = await #expect(throws: StepFailure.self) { try await module(root: root, settings: "").run(try invocation(root: root, build: "a")) }
        #expect(error?.description.hasPrefix("no signing key at \(root.path)/keys/release.ed25519") == true, "\(error.map { "\($0)" } ?? "")")
        #expect(throws: ConfigError.self) { try module(root: root, settings: "signing_key_create: maybe\n") }
        #expect(try await module(root: root).run(try invocation(root: root, build: "a")).outputs["version"]?.string == "1.0")
    }

    /// A pinned version is not dropped in silence when the inputs are published already: the
    /// same version is the rerun it is, another fails the step saying why.
    @Test func pinnedVersionOtherThanThePublishedOneFails() async throws {
        defer { try? FileManager.default.removeItem(at: base) }
        let root = base.appendingPathComponent("shared")
        let module = try module(root: root)
        #expect(try await module.run(try invocation(root: root, build: "a", with: ["version": .string("2.0")])).outputs["version"]?.string == "2.0")
        let error = await #expect(throws: StepFailure.self) {
            try await module.run(try invocation(root: root, build: "a", with: ["version": .string("2.1")]))
        }
        #expect(error?.description == "version 2.1 is pinned, but these inputs are already published as 2.0 in micro-smoke/testing, "
            + "and a release is published once per inputs: pin 2.0, leave version out, or change the inputs")
        let again = try await module.run(try invocation(root: root, build: "a", with: ["version": .string("2.0")])).outputs
        #expect(again["version"]?.string == "2.0" && again["already_published"] == JSONValue.bool(true))
        #expect(try module.publisher.versions(appliance: "micro-smoke", channel: "testing") == ["2.0"])
    }
}
