@testable import AgentKernel
@testable import Agents
import ApplianceEngine
import Foundation
import Logging
import Testing

/// Bad input to the lifecycle and generic modules: a readable refusal, never a trap, never a
/// host path outside where it belongs. Module-level, so it lives here (the Agents target has no
/// unit-test target of its own); no XMPP server is needed.
@Suite struct ModuleInputValidationTests {
    let base: URL
    let settings: AgentSettings

    init() throws {
        base = FileManager.default.temporaryDirectory.appendingPathComponent("baton-module-input-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: base.appendingPathComponent("recipes"), withIntermediateDirectories: true)
        settings = AgentSettings(name: "t", connection: ConnectionSettings(jid: "t@baton.test", password: "x"),
                                 stateDirectory: base.appendingPathComponent("state").path,
                                 moduleSettings: ["lifecycle": "root: \(base.path)/shared\nrecipes: \(base.path)/recipes\n"])
    }

    func invocation(_ with: [String: JSONValue], context: [String: [String: JSONValue]] = [:]) -> StepInvocation {
        StepInvocation(workflowID: "w", workflowName: "w", step: .init(id: "s", action: "test.vm", with: with), params: [:],
                       context: context, earlierSteps: context.keys.sorted(), attempt: 1, trail: [], submitter: "ops@baton.test",
                       workspace: base.appendingPathComponent("ws"), logger: Logger(label: "t"), progress: { _ in })
    }

    func runCommand(_ module: ReleaseModule, _ node: String, _ values: [String: String]) async throws -> CommandResult {
        let command = try #require(module.commands.first { $0.node == node })
        return try await command.run(CommandInvocation(from: "anyone@baton.test", values: values.mapValues { [$0] }))
    }

    @Test func releaseCommandsRefuseBadNamesAndPaths() async throws {
        defer { try? FileManager.default.removeItem(at: base) }
        let module = try ReleaseModule(settings: settings)
        #expect(module.commands.first { $0.node == "release-verify" }?.requiresTrust == true)
        for (node, values) in [("releases", ["appliance": "../../../../etc", "channel": "ssh"]),
                               ("release-rollback", ["appliance": "micro", "channel": "../x"])] {
            let error = await #expect(throws: StanzaError.self) { try await runCommand(module, node, values) }
            #expect(error?.condition == .badRequest)
            #expect(error?.text?.contains("is not a valid release name") == true)
        }
        let error = await #expect(throws: StanzaError.self) { try await runCommand(module, "release-verify", ["dir": "/etc"]) }
        #expect(error?.condition == .badRequest)
        #expect(error?.text == "'/etc' is not a release directory: only directories under \(base.path)/shared/releases can be verified here")
    }

    /// A snapshot id names a directory: only a digest is taken, never a path elsewhere.
    @Test func snapshotIDsAreDigestsOnly() throws {
        defer { try? FileManager.default.removeItem(at: base) }
        let snapshotter = try RepositorySnapshotter(root: base.appendingPathComponent("repo"))
        // A snapshot.json planted outside the repository, and ids that would reach it.
        let planted = base.appendingPathComponent("elsewhere")
        try FileManager.default.createDirectory(at: planted, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: planted.appendingPathComponent("snapshot.json"))
        for id in ["../../elsewhere", planted.path, "", String(repeating: "A", count: 64), String(repeating: "0", count: 63) + "/"] {
            #expect(throws: SnapshotError.invalidID(id)) { try snapshotter.open(id: id) }
        }
        #expect(SnapshotError.invalidID("../x").description == "'../x' is not a snapshot id (64 lowercase hex digits, as repo.snapshot gives it)")
    }

    /// Without a container runtime, post scripts run as root in a chroot only where allowed.
    @Test func postScriptsWithoutARuntimeRunOnlyWhereAllowed() throws {
        defer { try? FileManager.default.removeItem(at: base) }
        struct NoRuntime: Error, CustomStringConvertible { var description: String { "runc: not found" } }
        let (refusing, said) = BuildModule.withoutRuntime(NoRuntime(), chrootAllowed: false)
        #expect(said.hasSuffix("; builds with post scripts fail until then"))
        let error = #expect(throws: RefusingPostScripts.Refusal.self) {
            try refusing.run(script: "true", name: "10-motd", root: base, environment: [:], timeout: 5)
        }
        #expect(error?.description == "post script 10-motd not run: no usable OCI runtime on this host (runc: not found); install runc, "
            + "or set post_scripts_chroot: true in module_settings.lifecycle to run post scripts as root in a chroot, which a script can leave")
        #expect(BuildModule.withoutRuntime(NoRuntime(), chrootAllowed: true).0 is NamespaceChrootRunner)
        var allowing = settings
        allowing.moduleSettings["lifecycle"] = "root: \(base.path)/shared\npost_scripts_chroot: true\n"
        #expect(try LifecycleSettings(allowing).postScriptsChroot)
        #expect(try LifecycleSettings(settings).postScriptsChroot == false)
        allowing.moduleSettings["lifecycle"] = "root: \(base.path)/shared\npost_scripts_chroot: maybe\n"
        #expect(throws: ConfigError(file: "module_settings.lifecycle", "post_scripts_chroot must be true or false")) { try LifecycleSettings(allowing) }
    }

    @Test func mirrorsAreURLs() throws {
        defer { try? FileManager.default.removeItem(at: base) }
        func lifecycle(_ yaml: String) throws -> LifecycleSettings {
            var settings = settings
            settings.moduleSettings["lifecycle"] = "root: \(base.path)/shared\n" + yaml
            return try LifecycleSettings(settings)
        }
        let set = try lifecycle("mirror: http://mirror.site.example/debian\nsecurity_mirror: https://security.debian.org/debian-security\n")
        #expect(set.mirror == "http://mirror.site.example/debian" && set.securityMirror == "https://security.debian.org/debian-security")
        #expect(try lifecycle("").mirror == nil)
        #expect(throws: ConfigError(file: "module_settings.lifecycle", "mirror must be an http, https or file URL, like http://deb.debian.org/debian")) {
            try lifecycle("mirror: deb.debian.org\n")
        }
    }

    @Test func recipePathMustBeInTheRecipesDirectory() throws {
        defer { try? FileManager.default.removeItem(at: base) }
        let lifecycle = try LifecycleSettings(settings)
        let resolved = { (path: String) in
            invocation([:], context: ["config": ["recipe_path": .string(path), "recipe_digest": .string("0")]])
        }
        for path in ["/etc/passwd", "\(base.path)/recipes/../secret.yaml", "\(base.path)/recipes-other/r.yaml"] {
            let error = #expect(throws: StepFailure.self) { try resolved(path).resolvedRecipe(lifecycle) }
            #expect(error?.description == "recipe_path '\(path)' is not inside the recipes directory \(base.path)/recipes; "
                + "only recipes that config.resolve found there can be used")
        }
        #expect(try lifecycle.recipeFile("\(base.path)/recipes/./micro.yaml").path == "\(base.path)/recipes/micro.yaml")
    }

    @Test func hugeNumbersFailTheStepInsteadOfTrapping() async throws {
        defer { try? FileManager.default.removeItem(at: base) }
        for timeout in [1e16, .infinity, .nan, -1] {
            let error = await #expect(throws: StepFailure.self) { _ = try await ProcessRunner().run(["/bin/true"], timeout: timeout) }
            #expect(error?.description == "timeout must be a number from 0.001 to 604800 seconds, not \(NumberArgument.text(timeout))")
        }
        #expect(try await ProcessRunner().run(["/bin/true"], timeout: 5).status == 0)

        // test.vm checks max_lifetime before it looks at any artifact.
        let recipe = base.appendingPathComponent("recipes/micro.yaml")
        try FileManager.default.copyItem(at: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("recipes/micro.yaml"), to: recipe)
        let digest = try Recipe.load(file: recipe).digest()
        let context: [String: [String: JSONValue]] = [
            "config": ["recipe_path": .string(recipe.path), "recipe_digest": .string(digest)],
            "build": ["artifacts": .object([:])],
        ]
        let step = invocation(["max_lifetime": .number(1e19)], context: context)
        let error = await #expect(throws: StepFailure.self) { _ = try await TestModule(settings: settings).run(step) }
        #expect(error?.description == "max_lifetime must be a number from 1 to 86400 seconds, not 1e+19")
        #expect(throws: StepFailure.self) { try ArtifactJSON.ref(.object(["sha256": .string("x"), "size": .number(1e300)]), "artifact") }
    }
}
