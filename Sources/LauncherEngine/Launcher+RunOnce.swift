import Foundation

extension Launcher {
    /// Workflow step: runs `command` in a throw-away container over `image`,
    /// collects the requested files, and removes everything afterwards.
    /// A timeout kills the container; the result then has `timedOut` set.
    public func runOnce(image: RunOnceImage, command: [String], env: [String: String] = [:],
                        timeout: Double? = nil, collect: [String] = []) async throws -> RunOnceResult {
        guard !command.isEmpty else { throw LauncherError.invalidField("command", reason: "empty command") }
        for p in collect { try PathResolver.checkNoParentReferences(p, field: "collect") }
        try NumberLimits.timeoutNanoseconds(timeout)  // before anything is assembled
        var base: String, mounts: [MountSpec] = [], owner = "root", envSpec = "", network = NetworkMode.none
        switch image {
        case .path(let p): base = p
        case let .config(n, ma, mi):
            let key = LauncherConfig.key(n, ma, mi)
            guard let c = configsByKey[key] else { throw LauncherError.unknownConfig(key) }
            base = c.baseImage; mounts = c.mounts; owner = c.startupOwner; envSpec = c.startupEnv; network = c.network
        }
        let id = "run-\(Self.shortID())"
        let dir = "\(stateDir)/instances/\(id)"
        // Not persisted as an instance: it never outlives this call, and
        // destroyAll's sweep removes the directory if we crash mid-way.
        do {
            let fs = try await assembler.assemble(dir: dir, baseImage: base, mounts: mounts)
            let who = try assembler.resolveOwner(owner, resolver: fs.resolver)
            var vars = try EnvExpander.expand(envSpec, defaults: [("PATH", EnvExpander.defaultPath), ("HOME", who.home), ("HOSTNAME", id)])
            for (k, v) in env.sorted(by: { $0.key < $1.key }) {
                vars.removeAll { $0.hasPrefix("\(k)=") }
                vars.append("\(k)=\(v)")
            }
            let bundle = OCIBundle(args: command, env: vars, uid: who.uid, gid: who.gid, hostname: id, network: network,
                                   binds: fs.binds, resources: nil, cgroupsPath: nil)
            try bundle.json().write(to: URL(fileURLWithPath: "\(dir)/config.json"))
            let r = try await runtime.runForeground(id: id, bundle: dir, log: logPath(dir), timeout: timeout)
            var files: [String: Data] = [:]
            for p in collect { files[p] = try fs.resolver.readRegularFile(p, field: "collect") }
            let output = (try? String(contentsOfFile: logPath(dir), encoding: .utf8)) ?? ""
            try await teardown(id: id, dir: dir)
            return RunOnceResult(exitStatus: r.status, output: output, files: files, timedOut: r.timedOut)
        } catch {
            try? await teardown(id: id, dir: dir)
            throw error
        }
    }

    /// Runs `command` as root with `root` itself (not a copy) as the container's writable root
    /// file system: how an image build runs its post scripts. No network; the bundle directory
    /// and runtime state are removed afterwards, the changes to `root` stay.
    public func runInPlace(root: String, command: [String], env: [String: String] = [:],
                           timeout: Double? = nil) async throws -> RunOnceResult {
        guard !command.isEmpty else { throw LauncherError.invalidField("command", reason: "empty command") }
        try NumberLimits.timeoutNanoseconds(timeout)
        let id = "inplace-\(Self.shortID())"
        let dir = "\(stateDir)/instances/\(id)"
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            var bundle = OCIBundle(args: command, env: env.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" },
                                   uid: 0, gid: 0, hostname: id, network: .none, binds: [], resources: nil, cgroupsPath: nil)
            bundle.rootPath = root
            try bundle.json().write(to: URL(fileURLWithPath: "\(dir)/config.json"))
            let r = try await runtime.runForeground(id: id, bundle: dir, log: logPath(dir), timeout: timeout)
            let output = (try? String(contentsOfFile: logPath(dir), encoding: .utf8)) ?? ""
            try await teardown(id: id, dir: dir)
            return RunOnceResult(exitStatus: r.status, output: output, files: [:], timedOut: r.timedOut)
        } catch {
            try? await teardown(id: id, dir: dir)
            throw error
        }
    }
}
