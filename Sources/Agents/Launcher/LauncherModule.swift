import AgentKernel
import ApplianceEngine
import Foundation
import LauncherEngine
import Yams

/// The container launcher as an agent module: `ctr-*` ad-hoc commands, chat commands, and the
/// step actions `container.run` and `test.container`.
///
/// ```yaml
/// module_settings:
///   launcher: { state_dir: /var/lib/baton/launcher, image_dir: /srv/images, runtime: auto }   # or runtime: /usr/bin/crun
/// ```
public final class LauncherModule: StepRunner {
    public let name = "launcher"
    public var actions: [String] { ["container.run", "test.container"] }
    let stateDir: String, imageDir: String, runtime: RuntimeChoice
    let lifecycle: LifecycleSettings
    private let launcher = Locked<Launcher?>(nil)

    public init(settings: AgentSettings) throws {
        var section: [String: Any] = [:]
        if let yaml = settings.moduleSettings["launcher"] {
            guard let map = try Yams.load(yaml: yaml) as? [String: Any] else { throw ConfigError(file: "module_settings.launcher", "must be a mapping") }
            section = map
        }
        for key in section.keys where !["state_dir", "image_dir", "runtime"].contains(key) {
            throw ConfigError(file: "module_settings.launcher", "unknown setting '\(key)' (known: image_dir, runtime, state_dir)")
        }
        stateDir = section["state_dir"] as? String ?? settings.stateDirectory + "/launcher"
        imageDir = section["image_dir"] as? String ?? settings.stateDirectory + "/images"
        let choice = section["runtime"] as? String ?? "auto"
        runtime = choice == "auto" ? .auto : .binary(choice)
        lifecycle = try LifecycleSettings(settings)
    }

    public func start(_ agent: AgentContext) async throws {
        try FileManager.default.createDirectory(atPath: imageDir, withIntermediateDirectories: true)
        let engine = try await Launcher(stateDir: stateDir, imageDir: imageDir, runtime: runtime, store: JournalLauncherStore(journal: agent.journal))
        agent.logger(for: name).info("container runtime: \(engine.runtimeReport)")
        launcher.withLock { $0 = engine }
    }

    public func stop() async {}

    var engine: Launcher {
        get throws {
            guard let engine = launcher.value else { throw StanzaError(.resourceConstraint, "the launcher is still starting") }
            return engine
        }
    }

    // MARK: - Steps

    public func run(_ invocation: StepInvocation) async throws -> StepOutcome {
        invocation.step.action == "test.container" ? try await containerTests(invocation) : try await containerRun(invocation)
    }

    /// `container.run`: `with: { image: <artifact ref | path in image_dir>, config: "name major minor",
    /// command: "sh text", env: {}, timeout: 60, collect: [/path] }`
    private func containerRun(_ invocation: StepInvocation) async throws -> StepOutcome {
        guard let command = invocation.argument("command")?.string else { throw StepFailure("container.run needs 'command'") }
        let image: RunOnceImage
        if let config = invocation.argument("config")?.string {
            let parts = config.split(separator: " ").map(String.init)
            guard parts.count == 3 else { throw StepFailure("container.run: 'config' is 'NAME MAJOR MINOR'") }
            image = .config(name: parts[0], major: parts[1], minor: parts[2])
        } else if let ref = invocation.argument("image"), ref.object != nil {
            image = .path(try ArtifactJSON.verifiedPath(ref, "image", in: try lifecycle.store()).path)
        } else if let path = invocation.argument("image")?.string {
            image = .path(path)
        } else {
            throw StepFailure("container.run needs 'image' (artifact reference or file in image_dir) or 'config'")
        }
        var env: [String: String] = [:]
        for (k, v) in invocation.argument("env")?.object ?? [:] { env[k] = v.description }
        let collect = (invocation.argument("collect")?.array ?? []).compactMap(\.string)
        let result = try await engine.runOnce(image: image, command: ["/bin/sh", "-c", command], env: env,
                                              timeout: invocation.argument("timeout")?.number ?? 300, collect: collect)
        let tail = String(result.output.split(separator: "\n", omittingEmptySubsequences: false).suffix(30).joined(separator: "\n"))
        if result.timedOut { throw StepFailure("container command timed out", logTail: tail) }
        guard result.exitStatus == 0 else { throw StepFailure("container command exited with status \(result.exitStatus)", logTail: tail) }
        let store = try lifecycle.store()
        var files: [String: JSONValue] = [:]
        for (path, data) in result.files {
            let temp = invocation.workspace.appendingPathComponent(UUID().uuidString)
            try data.write(to: temp)
            files[path] = ArtifactJSON.value(try store.put(temp))
        }
        return StepOutcome(outputs: ["exit_status": .number(0), "files": .object(files)], logTail: tail)
    }

    /// `test.container`: the recipe's container tests, each a script run in the built root fs.
    private func containerTests(_ invocation: StepInvocation) async throws -> StepOutcome {
        let recipe = try invocation.resolvedRecipe(lifecycle)
        let artifacts = try invocation.required("artifacts", from: "build.image")
        let rootfs = try ArtifactJSON.verifiedPath(artifacts["tar"], "rootfs tar", in: try lifecycle.store())
        guard !recipe.tests.container.isEmpty else { throw StepFailure("recipe \(recipe.name) has no tests.container scripts") }
        var tap = ["1..\(recipe.tests.container.count)"]
        var failures: [String] = []
        for (index, test) in recipe.tests.container.enumerated() {
            invocation.progress("container test \(index + 1)/\(recipe.tests.container.count): \(test.name)")
            let result = try await engine.runOnce(image: .path(rootfs.path), command: ["/bin/sh", "-c", test.script],
                                                  timeout: invocation.argument("timeout")?.number ?? 120)
            let ok = result.exitStatus == 0 && !result.timedOut
            tap.append("\(ok ? "ok" : "not ok") \(index + 1) - \(test.name)")
            if !ok {
                failures.append(test.name)
                tap += result.output.split(separator: "\n").suffix(10).map { "# \($0)" }
            }
        }
        let report = invocation.workspace.appendingPathComponent("container.tap")
        try (tap.joined(separator: "\n") + "\n").write(to: report, atomically: true, encoding: .utf8)
        let ref = try lifecycle.store().put(report)
        guard failures.isEmpty else {
            throw StepFailure("container tests failed: \(failures.joined(separator: ", "))", logTail: tap.joined(separator: "\n"))
        }
        return StepOutcome(outputs: ["checks": .number(Double(recipe.tests.container.count)), "tap": ArtifactJSON.value(ref)],
                           logTail: tap.joined(separator: "\n"))
    }

    // MARK: - Commands

    static func lines(_ lines: [String], empty: String) -> CommandResult {
        .fields("Result", [("result", lines.isEmpty ? empty : lines.joined(separator: "\n"))])
    }

    public var commands: [AdHocCommand] {
        func form(_ fields: [DataForm.Field]) -> DataForm { DataForm(.form, fields: fields) }
        let instance = DataForm.Field("instance", label: "Instance", required: true)
        return [
            AdHocCommand(node: "ctr-status", name: "Launcher status", requiresTrust: false) { [self] _ in
                .fields("Launcher", [("runtime", try engine.runtimeReport), ("state_dir", stateDir), ("image_dir", imageDir)])
            },
            AdHocCommand(node: "ctr-upload", name: "Register a container config", form: form([
                .init("config", type: .textMulti, label: "Config (JSON or YAML)", required: true),
                .init("format", type: .listSingle, label: "Format", values: ["json"], options: ["json", "yaml"]),
            ])) { [self] invocation in
                let text = invocation.values["config"]?.joined(separator: "\n") ?? ""
                let config = try await upload(text, format: invocation.value("format") ?? "json")
                return .fields("Uploaded", [("config", "\(config.name) \(config.major) \(config.minor)")])
            },
            AdHocCommand(node: "ctr-cfginfo", name: "List container configs", requiresTrust: false) { [self] _ in
                Self.lines(try await engine.configs(), empty: "no configs")
            },
            AdHocCommand(node: "ctr-launch", name: "Launch an instance", form: form([
                .init("name", required: true), .init("major", required: true), .init("minor", required: true),
            ])) { [self] invocation in
                let result = try await launch(invocation.required("name"), invocation.required("major"), invocation.required("minor"))
                return CommandResult(form: DataForm(.result, fields: [.init("instance", values: [result.instance])]),
                                     notes: result.warnings.map { .init(.warn, $0) })
            },
            AdHocCommand(node: "ctr-list", name: "Running instances", requiresTrust: false) { [self] _ in
                Self.lines(await (try engine).list().map(\.line), empty: "no instances")
            },
            AdHocCommand(node: "ctr-destroy", name: "Destroy an instance", form: form([instance])) { [self] invocation in
                try await mapErrors { try await engine.destroy(invocation.required("instance")) }
                return .text("Success")
            },
            AdHocCommand(node: "ctr-destroyall", name: "Destroy every instance") { [self] _ in
                .text(try await mapErrors { try await engine.destroyAll() })
            },
            AdHocCommand(node: "ctr-logs", name: "Instance console log", form: form([instance])) { [self] invocation in
                .fields("Log", [("log", try await mapErrors { try await engine.logs(invocation.required("instance")) })])
            },
            AdHocCommand(node: "ctr-exec", name: "Run a command in an instance", form: form([
                instance, .init("command", label: "Command (sh)", required: true),
            ])) { [self] invocation in
                let result = try await mapErrors {
                    try await engine.exec(invocation.required("instance"), ["/bin/sh", "-c", invocation.required("command")])
                }
                return .fields("exec", [("status", String(result.status)), ("output", result.output)])
            },
        ]
    }

    func upload(_ text: String, format: String) async throws -> LauncherConfig {
        guard let format = LauncherConfig.Format(rawValue: format) else { throw StanzaError(.badRequest, "format must be json or yaml") }
        return try await mapErrors { try await engine.upload(Data(text.utf8), format: format) }
    }

    func launch(_ name: String, _ major: String, _ minor: String) async throws -> LaunchResult {
        try await mapErrors { try await engine.launch(name: name, major: major, minor: minor) }
    }

    /// Launcher errors become precise IQ errors: unknown things are item-not-found, the rest bad-request.
    func mapErrors<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch let error as LauncherError {
            switch error {
            case .unknownConfig, .unknownInstance, .imageNotFound: throw StanzaError(.itemNotFound, error.description)
            case .duplicateConfig: throw StanzaError(.conflict, error.description)
            case .mountFailed, .runtimeUnavailable, .runtimeFailed, .timedOut, .ioFailure:
                throw StanzaError(.internalServerError, error.description)
            default: throw StanzaError(.badRequest, error.description)
            }
        }
    }

    public var chatCommands: [ChatCommand] {
        [
            ChatCommand("upload", usage: "upload JSON", summary: "register a container config (JSON on one line)") { [self] args, _ in
                let config = try await upload(args.joined(separator: " "), format: "json")
                return "Uploaded \(config.name) \(config.major) \(config.minor)"
            },
            ChatCommand("cfginfo", summary: "container configs, one per line") { [self] _, _ in
                let lines = try await engine.configs()
                return lines.isEmpty ? "no configs" : lines.joined(separator: "\n")
            },
            ChatCommand("launch", usage: "launch NAME MAJOR MINOR", summary: "start a container instance") { [self] args, _ in
                guard args.count == 3 else { return "Usage: launch NAME MAJOR MINOR" }
                return try await launch(args[0], args[1], args[2]).instance
            },
            ChatCommand("list", summary: "running container instances") { [self] _, _ in
                let lines = await (try engine).list().map(\.line)
                return lines.isEmpty ? "no instances" : lines.joined(separator: "\n")
            },
            ChatCommand("destroy", usage: "destroy INSTANCE", summary: "stop and remove an instance") { [self] args, _ in
                guard let name = args.first else { return "Usage: destroy INSTANCE" }
                try await mapErrors { try await engine.destroy(name) }
                return "Success"
            },
            ChatCommand("destroyall", summary: "stop and remove every instance") { [self] _, _ in
                try await mapErrors { try await engine.destroyAll() }
            },
            ChatCommand("logs", usage: "logs INSTANCE", summary: "an instance's console log") { [self] args, _ in
                guard let name = args.first else { return "Usage: logs INSTANCE" }
                return try await mapErrors { try await engine.logs(name) }
            },
            ChatCommand("exec", usage: "exec INSTANCE CMD…", summary: "run a command in an instance") { [self] args, _ in
                guard args.count >= 2 else { return "Usage: exec INSTANCE CMD…" }
                let result = try await mapErrors { try await engine.exec(args[0], ["/bin/sh", "-c", args.dropFirst().joined(separator: " ")]) }
                return "status \(result.status)\n\(result.output)"
            },
        ]
    }
}
