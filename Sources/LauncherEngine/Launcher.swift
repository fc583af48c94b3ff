import Foundation

/// The container launcher engine: configs in, OCI containers out.
///
/// An actor so concurrent launches share one view of configs/instances;
/// every slow step (hashing, unpacking, runc) is an `await`, so launches
/// interleave rather than queue behind each other.
public actor Launcher {
    public nonisolated let stateDir: String
    public nonisolated let imageDir: String
    /// Which runtime was chosen and why (from the start-up probe).
    public nonisolated let runtimeReport: String
    let runtime: OCIRuntime
    let store: any LauncherStateStore
    let assembler: RootfsAssembler
    let startupGrace: Double
    var configsByKey: [String: LauncherConfig] = [:]
    var instances: [String: InstanceRecord] = [:]

    var instancesDir: String { "\(stateDir)/instances" }

    /// Opens (or creates) an engine over `stateDir`. Configs and instance
    /// records from an earlier engine on the same directory are loaded, so
    /// `list` reports their containers (running ones are re-adopted via the
    /// runtime's state, others show as dead).
    /// - startupGrace: how long a new container must stay up before launch
    ///   counts as successful (catches scripts that exit at once).
    public init(stateDir: String, imageDir: String, runtime choice: RuntimeChoice = .auto,
                store: (any LauncherStateStore)? = nil, startupGrace: Double = 0.3) async throws {
        let stateDir = URL(fileURLWithPath: stateDir).standardizedFileURL.path
        self.stateDir = stateDir
        self.imageDir = URL(fileURLWithPath: imageDir).standardizedFileURL.path
        self.startupGrace = startupGrace
        let fm = FileManager.default
        for d in ["instances", "layers", "runc", "tmp"] {
            try fm.createDirectory(atPath: "\(stateDir)/\(d)", withIntermediateDirectories: true)
        }
        let (rt, report) = try await OCIRuntime.probe(choice, root: "\(stateDir)/runc", scratch: "\(stateDir)/tmp")
        runtime = rt
        runtimeReport = report
        self.store = try store ?? JSONFileStateStore(stateDir: stateDir)
        assembler = RootfsAssembler(layers: try LayerStore(layersDir: "\(stateDir)/layers"), imageDir: self.imageDir)
        for c in try self.store.loadConfigs() { configsByKey[c.key] = c }
        for r in try self.store.loadInstances() { instances[r.name] = r }
    }

    // MARK: configs

    /// Registers a config. Re-uploading identical content is accepted; the
    /// same name+major+minor with different content is refused.
    @discardableResult
    public func upload(_ data: Data, format: LauncherConfig.Format) throws -> LauncherConfig {
        let cfg = try LauncherConfig.parse(data, format: format)
        if let existing = configsByKey[cfg.key] {
            guard existing == cfg else { throw LauncherError.duplicateConfig(cfg.key) }
            return existing
        }
        try store.saveConfig(cfg)
        configsByKey[cfg.key] = cfg
        return cfg
    }

    /// cfginfo: one line per config, sorted by key.
    public func configs() -> [String] {
        configsByKey.keys.sorted().map { configsByKey[$0]!.summaryLine }
    }

    // MARK: instances

    public func launch(name: String, major: String, minor: String) async throws -> LaunchResult {
        let key = LauncherConfig.key(name, major, minor)
        guard let cfg = configsByKey[key] else { throw LauncherError.unknownConfig(key) }
        let id = "\(cfg.name)-\(cfg.major).\(cfg.minor)-\(Self.shortID())"
        let dir = "\(instancesDir)/\(id)"
        // Recorded before anything is mounted so a crash mid-launch still
        // leaves a record that destroyAll will clean up.
        let record = InstanceRecord(name: id, configKey: key, directory: dir, hostMounts: [], startedAt: Date())
        instances[id] = record
        do {
            try store.saveInstance(record)
            let fs = try await assembler.assemble(dir: dir, baseImage: cfg.baseImage, mounts: cfg.mounts)
            instances[id]?.hostMounts = HostMounts.mounts(under: dir)
            try store.saveInstance(instances[id]!)
            try assembler.checkScript(cfg.startupScript, resolver: fs.resolver)
            let owner = try assembler.resolveOwner(cfg.startupOwner, resolver: fs.resolver)
            let env = try EnvExpander.expand(cfg.startupEnv, defaults: [
                ("PATH", EnvExpander.defaultPath), ("HOME", owner.home), ("HOSTNAME", id)])
            let (resources, warnings) = CgroupSupport.resources(for: cfg.limits)
            let bundle = OCIBundle(args: [cfg.startupScript], env: env, uid: owner.uid, gid: owner.gid, hostname: id,
                                   network: cfg.network, binds: fs.binds, resources: resources,
                                   cgroupsPath: resources == nil ? nil : "/baton-launcher/\(id)")
            try bundle.json().write(to: URL(fileURLWithPath: "\(dir)/config.json"))
            instances[id]?.startedAt = Date()
            try store.saveInstance(instances[id]!)
            try await runtime.runDetached(id: id, bundle: dir, log: logPath(dir))
            try await awaitStartup(id: id, dir: dir)
            return LaunchResult(instance: id, warnings: warnings)
        } catch {
            try? await teardown(id: id, dir: dir)
            return try { throw error }()
        }
    }

    /// Fails if the container stops within the grace period. With no grace period there is
    /// nothing to watch: `runc run --detach` has already said the container started, and asking
    /// the runtime again would add a process spawn to every launch.
    private func awaitStartup(id: String, dir: String) async throws {
        guard startupGrace > 0 else { return }
        let deadline = Date().addingTimeInterval(startupGrace)
        repeat {
            let st = await runtime.state(id: id)
            if st == nil || st?.status == "stopped" {
                let log = (try? String(contentsOfFile: logPath(dir), encoding: .utf8)) ?? ""
                throw LauncherError.startupExited(instance: id, status: st?.status ?? "gone",
                                                  log: String(log.suffix(2000)).trimmingCharacters(in: .whitespacesAndNewlines))
            }
            if Date() >= deadline { return }
            try await Task.sleep(nanoseconds: 50_000_000)
        } while true
    }

    /// Every known instance, with live pid/status from the runtime.
    public func list() async -> [InstanceInfo] {
        var out: [InstanceInfo] = []
        for r in instances.values.sorted(by: { $0.startedAt < $1.startedAt }) {
            let st = await runtime.state(id: r.name)
            let alive = st.map { $0.status == "running" || $0.status == "paused" || $0.status == "created" } ?? false
            out.append(InstanceInfo(name: r.name, config: r.configKey, pid: alive ? st?.pid : nil,
                                    uptime: Date().timeIntervalSince(r.startedAt), status: alive ? .running : .dead))
        }
        return out
    }

    public func destroy(_ instance: String) async throws {
        guard let r = instances[instance] else { throw LauncherError.unknownInstance(instance) }
        try await teardown(id: r.name, dir: r.directory)
    }

    /// Destroys every instance, then sweeps anything a crash may have left
    /// (runtime containers, mounts, directories with no record). Returns
    /// "Success" also when there was nothing to do.
    @discardableResult
    public func destroyAll() async throws -> String {
        var failures: [String] = []
        await withTaskGroup(of: String?.self) { group in
            for r in instances.values {
                group.addTask { do { try await self.teardown(id: r.name, dir: r.directory); return nil } catch { return "\(r.name): \(error)" } }
            }
            for await f in group { if let f { failures.append(f) } }
        }
        for id in await runtime.list() where instances[id] == nil { await runtime.delete(id: id) }
        let dirs = (try? FileManager.default.contentsOfDirectory(atPath: instancesDir)) ?? []
        for d in dirs where instances[d] == nil {
            do { try await teardown(id: d, dir: "\(instancesDir)/\(d)") } catch { failures.append("\(d): \(error)") }
        }
        guard failures.isEmpty else { throw LauncherError.ioFailure("destroyAll incomplete: " + failures.joined(separator: "; ")) }
        return "Success"
    }

    public func logs(_ instance: String) throws -> String {
        guard let r = instances[instance] else { throw LauncherError.unknownInstance(instance) }
        return (try? String(contentsOfFile: logPath(r.directory), encoding: .utf8)) ?? ""
    }

    /// Runs argv inside the running instance (as its startup_owner).
    public func exec(_ instance: String, _ argv: [String], timeout: Double? = 60) async throws -> ProcessResult {
        guard instances[instance] != nil else { throw LauncherError.unknownInstance(instance) }
        guard !argv.isEmpty else { throw LauncherError.invalidField("argv", reason: "empty command") }
        return try await runtime.exec(id: instance, argv: argv, timeout: timeout)
    }

    // MARK: internals

    func logPath(_ dir: String) -> String { "\(dir)/console.log" }

    /// Kills all processes, deletes runtime state, unmounts (deepest first)
    /// and removes the directory. Refuses to delete while anything is still
    /// mounted so a failed unmount can never let rm walk into a layer.
    func teardown(id: String, dir: String) async throws {
        await runtime.delete(id: id)
        for _ in 0..<3 {
            let mounted = HostMounts.mounts(under: dir)
            if mounted.isEmpty { break }
            for m in mounted.reversed() { HostMounts.unmount(m) }
        }
        let left = HostMounts.mounts(under: dir)
        guard left.isEmpty else { throw LauncherError.ioFailure("still mounted after destroy: \(left.joined(separator: ", "))") }
        if FileManager.default.fileExists(atPath: dir) { try FileManager.default.removeItem(atPath: dir) }
        instances[id] = nil
        try store.removeInstance(named: id)
    }

    static func shortID() -> String {
        String(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(8)).lowercased()
    }
}
