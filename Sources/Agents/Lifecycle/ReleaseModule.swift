import AgentKernel
import ApplianceEngine
import Foundation

/// `release.publish`: signed, checksummed release directories with provenance, an atomic
/// `latest`, retention and rollback; announced on `baton/releases`.
public final class ReleaseModule: StepRunner {
    public let name = "release"
    public var actions: [String] { ["release.publish"] }
    let settings: LifecycleSettings
    let publisher: ReleasePublisher
    private let agent = Locked<AgentContext?>(nil)

    public init(settings: AgentSettings) throws {
        let lifecycle = try LifecycleSettings(settings)
        self.settings = lifecycle
        let logger = BatonLog.logger(agent: settings.name, module: "release")
        publisher = ReleasePublisher(root: lifecycle.releases, keyPath: lifecycle.signingKey, retention: lifecycle.retention,
                                     createKey: lifecycle.signingKeyCreate) { logger.notice("\($0)") }
    }

    public func start(_ agent: AgentContext) async throws {
        self.agent.withLock { $0 = agent }
        // Staged releases a crash left beside their channel's versions (never published).
        let fm = FileManager.default
        var swept: [String] = []
        for appliance in (try? fm.contentsOfDirectory(atPath: settings.releases.path)) ?? [] {
            let dir = settings.releases.appendingPathComponent(appliance)
            for channel in (try? fm.contentsOfDirectory(atPath: dir.path)) ?? [] {
                swept += Leftovers.sweep(dir.appendingPathComponent(channel), prefixes: [".stage-"]).map { "\(appliance)/\(channel)/\($0)" }
            }
        }
        if !swept.isEmpty { agent.logger(for: name).notice("removed releases staged by publishes cut short: \(swept.joined(separator: ", "))") }
    }

    public func run(_ invocation: StepInvocation) async throws -> StepOutcome {
        let recipe = try invocation.resolvedRecipe(settings)
        let store = try settings.store()
        let artifacts = try invocation.required("artifacts", from: "build.image")
        guard let formats = artifacts.object, !formats.isEmpty else { throw StepFailure("build.image produced no artifacts") }
        let channel = invocation.argument("channel")?.string ?? "testing"
        let pinnedVersion = invocation.argument("version")?.string
        // Digests are checked before anything is staged: nothing half-published. The files are
        // copied from the store straight into the staging directory beside the release (the
        // releases root's file system, for the atomic rename). They were hard-linked into the
        // step's workspace first, which failed with EXDEV when the lifecycle root was on another
        // file system than state_dir.
        var files: [(name: String, source: URL)] = []
        for (format, value) in formats.sorted(by: { $0.key < $1.key }) {
            let source = try ArtifactJSON.verifiedPath(value, "artifact \(format)", in: store)
            files.append((Self.fileName(appliance: recipe.name, format: format), source))
        }
        let inputs = ReleaseInputs(recipeDigest: try invocation.required("recipe_digest", from: "config.resolve").string ?? "",
                                   snapshotID: try invocation.required("snapshot_id", from: "repo.snapshot").string ?? "",
                                   buildCacheKey: try invocation.required("cache_key", from: "build.image").string ?? "")
        let publisher = self.publisher
        let choice: ReleasePublisher.VersionChoice = pinnedVersion.map { .pinned($0) } ?? .next(base: recipe.version.string)
        let trail = try WorkflowDocument.encoder.encode(Provenance(workflow: invocation.workflowID, name: invocation.workflowName,
                                                                   submitter: invocation.submitter, trail: invocation.trail))
        // Re-running an unchanged workflow must not publish a second copy: the same inputs under
        // this appliance/channel mean the release exists already. Other inputs get a version
        // above every one the channel ever had (1.0 → 1.0.1 …) unless the workflow pins one.
        let publication: ReleasePublisher.Publication
        do {
            publication = try await offloaded { [files] in
                try publisher.publish(appliance: recipe.name, channel: channel, version: choice, files: files, inputs: inputs, trail: trail,
                                      oncePerInputs: true)
            }
        } catch let error as ReleaseError { throw StepFailure("\(error)") }
        let (directory, version) = (publication.dir, publication.version)
        if publication.alreadyPublished {
            // A pinned version that differs would be ignored: the step would end well with a
            // version other than the one the workflow names, which whatever consumes it would
            // not notice. Publishing the same content again under it is what this check prevents.
            if let pinnedVersion, pinnedVersion != version {
                throw StepFailure("version \(pinnedVersion) is pinned, but these inputs are already published as \(version) in "
                                  + "\(recipe.name)/\(channel), and a release is published once per inputs: pin \(version), "
                                  + "leave version out, or change the inputs")
            }
            invocation.progress("already published as \(version) with the same inputs")
            return StepOutcome(outputs: ["release_dir": .string(directory.path), "channel": .string(channel), "version": .string(version),
                                        "already_published": .bool(true),
                                        "public_key": .string(try publisher.publicKey().rawRepresentation.base64EncodedString())])
        }
        invocation.progress("published \(recipe.name) \(version) to \(channel)")
        if let agent = agent.value {
            let announcement = XMLElement("release", xmlns: NS.baton, ["appliance": recipe.name, "channel": channel, "version": version,
                                                                        "path": directory.path, "workflow": invocation.workflowID])
            try? await PubSubClient(connection: agent.connection, service: agent.settings.pubsubService)
                .publish(node: "baton/releases", id: "\(recipe.name)-\(channel)-\(version)", payload: announcement)
        }
        return StepOutcome(outputs: ["release_dir": .string(directory.path), "channel": .string(channel), "version": .string(version),
                                    "public_key": .string(try publisher.publicKey().rawRepresentation.base64EncodedString())])
    }

    static func fileName(appliance: String, format: String) -> String {
        switch format {
        case "tar": "\(appliance).rootfs.tar"
        case "squashfs": "\(appliance).squashfs"
        case "ext4": "\(appliance).ext4.img"
        case "qcow2": "\(appliance).qcow2"
        case "kernel": "vmlinuz"
        case "initramfs": "initramfs.img"
        default: "\(appliance).\(format)"
        }
    }

    /// Runs `body`, turning a refused name or path from the request into `bad-request`.
    static func badRequestOnBadName<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as ReleaseError {
            switch error {
            case .invalidName, .outsideReleases: throw StanzaError(.badRequest, error.description)
            default: throw error
            }
        }
    }

    struct Provenance: Encodable {
        let workflow: String
        let name: String
        let submitter: String
        let trail: [WorkflowDocument.TrailEntry]
    }

    public var commands: [AdHocCommand] {
        let which = DataForm(.form, fields: [.init("appliance", required: true), .init("channel", values: ["testing"])])
        return [
            AdHocCommand(node: "releases", name: "List releases", requiresTrust: false, form: which) { [publisher] invocation in
                let appliance = try invocation.required("appliance"), channel = invocation.value("channel") ?? "testing"
                let (versions, latest) = try Self.badRequestOnBadName {
                    (try publisher.versions(appliance: appliance, channel: channel), try publisher.latest(appliance: appliance, channel: channel))
                }
                return CommandResult(form: DataForm(.result, title: "\(appliance) on \(channel)",
                    reported: [.init("version"), .init("latest")],
                    items: versions.map { ["version": $0, "latest": $0 == latest ? "*" : ""] }))
            },
            AdHocCommand(node: "release-rollback", name: "Roll back to the previous release", form: which) { [publisher] invocation in
                let appliance = try invocation.required("appliance"), channel = invocation.value("channel") ?? "testing"
                let now = try Self.badRequestOnBadName { try publisher.rollback(appliance: appliance, channel: channel) }
                return .fields("Rolled back", [("latest", now)])
            },
            // Trusted: it reads host files, and only inside the releases root.
            AdHocCommand(node: "release-verify", name: "Verify a release directory", form: DataForm(.form, fields: [
                .init("dir", label: "Release directory", required: true)])) { [publisher] invocation in
                let dir = try Self.badRequestOnBadName { try publisher.releaseDirectory(invocation.required("dir")) }
                do {
                    try publisher.verify(dir)
                    return .text("OK: SHA256SUMS and signature verified")
                } catch {
                    return CommandResult(notes: [.init(.error, "\(error)")])
                }
            },
        ]
    }
}
