import AgentKernel
import ApplianceEngine
import Foundation
import LauncherEngine

/// `build.image`: root file system from the snapshot only, recipe files and post scripts,
/// then the formats asked for — reproducible and cached by the digest of all inputs.
public struct BuildModule: StepRunner {
    public let name = "build"
    public var actions: [String] { ["build.image"] }
    let settings: LifecycleSettings
    let containerState: String
    /// Post scripts run in a container on the OCI runtime; the namespace+chroot runner only if
    /// no runtime works on this host and the operator allows it (said in the log at start).
    private let postScripts = Locked<any PostScriptRunner>(RefusingPostScripts(reason: "the build module has not started"))

    public init(settings: AgentSettings) throws {
        self.settings = try LifecycleSettings(settings)
        containerState = settings.stateDirectory + "/build-containers"
    }

    public func start(_ agent: AgentContext) async throws {
        let logger = agent.logger(for: name)
        // Left by builds and copies cut short by a crash or a kill.
        let swept = Leftovers.sweep(settings.builds.appendingPathComponent("builds"), prefixes: [".work-", ".stage-"])
            + Leftovers.sweep(settings.artifacts.appendingPathComponent("tmp"), prefixes: [])
        if !swept.isEmpty { logger.notice("removed \(swept.count) scratch entr\(swept.count == 1 ? "y" : "ies") left by builds cut short: \(swept.joined(separator: ", "))") }
        do {
            let launcher = try await Launcher(stateDir: containerState, imageDir: containerState + "/images")
            postScripts.withLock { $0 = LauncherPostScripts(launcher: launcher) }
            logger.info("post scripts run in containers: \(launcher.runtimeReport)")
        } catch {
            let (runner, message) = Self.withoutRuntime(error, chrootAllowed: settings.postScriptsChroot)
            postScripts.withLock { $0 = runner }
            logger.warning("\(message)")
        }
    }

    /// What runs post scripts where the runtime failed (`error`), and what the log says of it.
    static func withoutRuntime(_ error: any Error, chrootAllowed: Bool) -> (any PostScriptRunner, String) {
        if chrootAllowed {
            return (NamespaceChrootRunner(), "no usable OCI runtime (\(error)); post scripts run as root with unshare + chroot (post_scripts_chroot)")
        }
        let reason = "no usable OCI runtime on this host (\(error)); install runc, or set post_scripts_chroot: true in "
            + "module_settings.lifecycle to run post scripts as root in a chroot, which a script can leave"
        return (RefusingPostScripts(reason: reason), reason + "; builds with post scripts fail until then")
    }

    public func run(_ invocation: StepInvocation) async throws -> StepOutcome {
        let recipe = try invocation.resolvedRecipe(settings)
        guard let id = try invocation.required("snapshot_id", from: "repo.snapshot").string else {
            throw StepFailure("snapshot_id is not a string")
        }
        let snapshot: Snapshot
        do { snapshot = try RepositorySnapshotter.open(id: id, root: settings.repo) } catch {
            throw StepFailure("snapshot \(id) is not in \(settings.repo.path): \(error)")
        }
        let epoch = try invocation.argument("source_date_epoch")?.number
            .map { try NumberArgument.integer($0, "source_date_epoch", in: 0...4_102_444_800, unit: "seconds since 1970 (up to 2100)") }
            ?? settings.sourceDateEpoch
        let cache = settings.builds
        let progress = invocation.progress
        let runner = postScripts.value
        let result = try await offloaded { () throws -> BuildResult in
            let report: BuildProgressHandler = { p in
                progress(p.percent.map { "\(p.phase) \(Int($0))%" } ?? p.phase)
            }
            switch recipe.profile {
            case .micro: return try MicroImageBuilder(cacheRoot: cache, postScripts: runner).build(recipe: recipe, snapshot: snapshot, sourceDateEpoch: epoch, progress: report)
            case .debian: return try DebianImageBuilder(cacheRoot: cache, postScripts: runner).build(recipe: recipe, snapshot: snapshot, sourceDateEpoch: epoch, progress: report)
            }
        }
        let store = try settings.store()
        let refs = try result.store(in: store)
        var artifacts: [String: JSONValue] = [:]
        for (format, ref) in refs { artifacts[format.rawValue] = ArtifactJSON.value(ref) }
        invocation.progress(result.fromCache ? "answered from the build cache" : String(format: "built in %.1fs", result.seconds))
        return StepOutcome(outputs: [
            "cache_key": .string(result.cacheKey), "from_cache": .bool(result.fromCache),
            "seconds": .number(result.seconds), "artifacts": .object(artifacts),
            "source_date_epoch": .number(Double(epoch)),
        ])
    }

    public var commands: [AdHocCommand] {
        [AdHocCommand(node: "artifacts-gc", name: "Collect unreferenced artifacts", form: DataForm(.form, fields: [
            .init("grace_hours", label: "Keep anything younger than (hours)", values: ["24"]),
        ])) { [settings] invocation in
            guard let hours = Double(invocation.value("grace_hours") ?? "24"), hours >= 0 else {
                throw StanzaError(.badRequest, "field 'grace_hours' must be a number of hours")
            }
            let collector = ArtifactCollector(store: try settings.store(), buildCache: settings.builds, releases: settings.releases,
                                              grace: hours * 3600)
            let (removed, bytes, kept) = try await offloaded { try collector.collect() }
            return .fields("Artifact store", [("removed", String(removed)), ("bytes_freed", String(bytes)), ("kept", String(kept))])
        }]
    }
}
