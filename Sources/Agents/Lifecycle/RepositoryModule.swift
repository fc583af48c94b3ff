import AgentKernel
import ApplianceEngine
import Foundation

/// `repo.snapshot`: an immutable apt repository of the recipe's package closure, named by the
/// digest of its package list; plus `snapshots`, `snapshot-show`, `snapshot-diff`.
public struct RepositoryModule: StepRunner {
    public let name = "repository"
    public var actions: [String] { ["repo.snapshot"] }
    let settings: LifecycleSettings

    public init(settings: AgentSettings) throws { self.settings = try LifecycleSettings(settings) }

    public func start(_ agent: AgentContext) async throws {
        let swept = Leftovers.sweep(settings.repo.appendingPathComponent("snapshots"), prefixes: [".stage-"])
        if !swept.isEmpty { agent.logger(for: name).notice("removed snapshots staged by runs cut short: \(swept.joined(separator: ", "))") }
    }

    func snapshotter() throws -> RepositorySnapshotter {
        try RepositorySnapshotter(root: settings.repo, mirror: settings.mirror, securityMirror: settings.securityMirror.map { .some($0) })
    }

    public func run(_ invocation: StepInvocation) async throws -> StepOutcome {
        let recipe = try invocation.resolvedRecipe(settings)
        invocation.progress("resolving \(recipe.packages.count) packages for \(recipe.os.suite)/\(recipe.os.architecture)")
        let snapshotter = try snapshotter()
        let report = try await offloaded {
            try snapshotter.snapshot(suite: recipe.os.suite, architecture: recipe.os.architecture, packages: recipe.packages,
                                     includeEssential: recipe.profile == .debian, progress: invocation.progress)
        }
        return StepOutcome(outputs: [
            "snapshot_id": .string(report.snapshot.id), "packages": .number(Double(report.snapshot.packages.count)),
            "bytes_downloaded": .number(Double(report.bytesDownloaded)), "reused": .bool(report.reusedExistingSnapshot),
            "offline": .bool(report.offline),
        ], logTail: report.notes.joined(separator: "\n"))
    }

    func ids() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: settings.repo.appendingPathComponent("snapshots").path)) ?? [])
            .filter { !$0.hasPrefix(".") }.sorted()
    }

    func open(_ id: String) throws -> Snapshot {
        guard let match = ids().first(where: { $0.hasPrefix(id) }), !id.isEmpty else {
            throw StanzaError(.itemNotFound, "no snapshot \(id)")
        }
        return try RepositorySnapshotter.open(id: match, root: settings.repo)
    }

    public var commands: [AdHocCommand] {
        [
            AdHocCommand(node: "snapshots", name: "List snapshots", requiresTrust: false) { _ in
                // Read without a snapshotter: one would look up the host's mirror for each snapshot.
                let rows = ids().compactMap { id in
                    (try? RepositorySnapshotter.open(id: id, root: settings.repo)).map { ["id": id, "packages": String($0.packages.count)] }
                }
                return CommandResult(form: DataForm(.result, title: "Snapshots", reported: [.init("id"), .init("packages")], items: rows))
            },
            AdHocCommand(node: "snapshot-show", name: "Show a snapshot", requiresTrust: false, form: DataForm(.form, fields: [
                .init("id", label: "Snapshot id (prefix)", required: true)])) { invocation in
                let snapshot = try open(invocation.required("id"))
                return CommandResult(form: DataForm(.result, title: "Snapshot \(snapshot.id)",
                    fields: [.init("apt_source", values: [snapshot.aptSourceLine])],
                    reported: [.init("name"), .init("version"), .init("sha256")],
                    items: snapshot.packages.map { ["name": $0.name, "version": $0.version, "sha256": String($0.sha256.prefix(16))] }))
            },
            AdHocCommand(node: "snapshot-diff", name: "Compare two snapshots", requiresTrust: false, form: DataForm(.form, fields: [
                .init("a", label: "Snapshot A", required: true), .init("b", label: "Snapshot B", required: true)])) { invocation in
                let a = try open(invocation.required("a")), b = try open(invocation.required("b"))
                let va = Dictionary(a.packages.map { ($0.name, $0.version) }, uniquingKeysWith: { x, _ in x })
                let vb = Dictionary(b.packages.map { ($0.name, $0.version) }, uniquingKeysWith: { x, _ in x })
                var rows: [[String: String]] = []
                for name in Set(va.keys).union(vb.keys).sorted() where va[name] != vb[name] {
                    rows.append(["package": name, "a": va[name] ?? "-", "b": vb[name] ?? "-"])
                }
                return CommandResult(form: DataForm(.result, title: "\(rows.count) differences",
                                                    reported: [.init("package"), .init("a"), .init("b")], items: rows))
            },
        ]
    }
}
