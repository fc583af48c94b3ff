import Foundation

/// Which OCI runtime binary to use.
public enum RuntimeChoice: Sendable {
    /// Probe runc then crun by running a trivial container; first that works wins.
    case auto
    /// Use this binary without trying the others (still probed, so a broken
    /// override fails at engine start rather than at the first launch).
    case binary(String)
}

/// State of a container as reported by `<runtime> state`.
struct ContainerState: Sendable {
    var status: String  // created, running, stopped, paused
    var pid: Int32
}

/// Drives runc/crun. Its state lives under our own --root so this engine
/// only ever sees (and destroyAll only ever touches) its own containers.
struct OCIRuntime: Sendable {
    let binary: String
    let root: String

    private func cmd(_ args: [String]) -> [String] { [binary, "--root", root] + args }

    /// Starts the bundle detached; the container's stdout/stderr go to `log`.
    func runDetached(id: String, bundle: String, log: String) async throws {
        let r = try await Subprocess.run(cmd(["run", "-d", "--bundle", bundle, id]), stdoutPath: log)
        guard r.status == 0 else {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            throw LauncherError.runtimeFailed(command: "\(binary) run -d \(id)", status: r.status,
                                              output: text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    /// Runs the bundle in the foreground (for runOnce) and returns its exit status.
    func runForeground(id: String, bundle: String, log: String, timeout: Double?) async throws -> ProcessResult {
        try await Subprocess.run(cmd(["run", "--bundle", bundle, id]), stdoutPath: log, timeout: timeout, stopOnCancel: true,
                                 onTimeout: { await self.kill(id: id) })
    }

    func state(id: String) async -> ContainerState? {
        guard let r = try? await Subprocess.run(cmd(["state", id])), r.status == 0,
              let data = r.output.data(using: .utf8),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let status = obj["status"] as? String else { return nil }
        return ContainerState(status: status, pid: Int32((obj["pid"] as? NSNumber)?.intValue ?? 0))
    }

    /// Ids of every container under our root (used to sweep orphans).
    func list() async -> [String] {
        guard let r = try? await Subprocess.run(cmd(["list", "-q"])), r.status == 0 else { return [] }
        return r.output.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
    }

    func kill(id: String) async {
        _ = try? await Subprocess.run(cmd(["kill", "--all", id, "KILL"]))
    }

    /// Kills every process of the container and removes its runtime state.
    func delete(id: String) async {
        await kill(id: id)
        _ = try? await Subprocess.run(cmd(["delete", "--force", id]))
    }

    func exec(id: String, argv: [String], timeout: Double?) async throws -> ProcessResult {
        try await Subprocess.run(cmd(["exec", id] + argv), timeout: timeout)
    }

    /// Picks a runtime by actually running a container, since a binary can be
    /// present but unusable (crun 1.8 on hybrid cgroups). Returns the
    /// runtime plus a human-readable report of what was tried.
    static func probe(_ choice: RuntimeChoice, root: String, scratch: String) async throws -> (OCIRuntime, String) {
        let candidates: [String]
        switch choice {
        case .binary(let b): candidates = [b]
        case .auto: candidates = ["/usr/sbin/runc", "/usr/bin/runc", "/usr/local/bin/runc", "/usr/local/sbin/runc",
                                  "/usr/bin/crun", "/usr/local/bin/crun"]
                .filter { FileManager.default.isExecutableFile(atPath: $0) }
        }
        var notes: [String] = []
        for bin in candidates {
            let rt = OCIRuntime(binary: bin, root: root)
            do {
                try await rt.trial(scratch: scratch)
                notes.append("\(bin): trial container ran OK")
                let how = { if case .binary = choice { return "configured override" } else { return "auto-probe" } }()
                return (rt, "using \(bin) (\(how)); " + notes.joined(separator: "; "))
            } catch {
                notes.append("\(bin): \(error)")
            }
        }
        throw LauncherError.runtimeUnavailable(notes.isEmpty ? "no runc or crun binary found" : notes.joined(separator: "; "))
    }

    /// Runs /bin/true from the host's own /usr (bind-mounted read-only) so
    /// the probe needs no image of its own.
    private func trial(scratch: String) async throws {
        let fm = FileManager.default
        let bundle = "\(scratch)/probe-\(UUID().uuidString.prefix(8))"
        let rootfs = "\(bundle)/rootfs"
        try fm.createDirectory(atPath: rootfs, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: bundle) }
        var binds: [OCIBundle.BindMount] = []
        for top in ["usr", "bin", "sbin", "lib", "lib64"] {
            let host = "/\(top)"
            if let dest = try? fm.destinationOfSymbolicLink(atPath: host) {
                try fm.createSymbolicLink(atPath: "\(rootfs)/\(top)", withDestinationPath: dest)
            } else if fm.fileExists(atPath: host) {
                binds.append(.init(source: host, destination: host, readOnly: true))
            }
        }
        let spec = OCIBundle(args: ["/bin/true"], env: ["PATH=/bin:/usr/bin"], uid: 0, gid: 0, hostname: "probe",
                             network: .none, binds: binds, resources: nil, cgroupsPath: nil)
        try spec.json().write(to: URL(fileURLWithPath: "\(bundle)/config.json"))
        let id = "baton-probe-\(UUID().uuidString.prefix(8).lowercased())"
        let log = "\(bundle)/probe.log"
        let status = try await runForeground(id: id, bundle: bundle, log: log, timeout: 20).status
        await delete(id: id)
        guard status == 0 else {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            throw LauncherError.runtimeFailed(command: "\(binary) run (probe)", status: status,
                                              output: text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}
