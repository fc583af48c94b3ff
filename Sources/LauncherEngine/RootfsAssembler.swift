import Foundation

/// Maps container paths to host paths while an instance's filesystem is
/// being assembled, honouring mounts already placed (latest wins), so mount
/// points, the startup script and /etc/passwd are looked up where the
/// container will actually see them.
struct PathResolver {
    let rootfs: String
    var mounts: [(dest: String, host: String)] = []

    func locate(_ containerPath: String) -> (base: String, rel: [String]) {
        let comps = containerPath.split(separator: "/").map(String.init)
        for m in mounts.reversed() {
            let mc = m.dest.split(separator: "/").map(String.init)
            if comps.starts(with: mc) { return (m.host, Array(comps.dropFirst(mc.count))) }
        }
        return (rootfs, comps)
    }

    func hostPath(_ containerPath: String) -> String {
        let (base, rel) = locate(containerPath)
        return ([base] + rel).joined(separator: "/")
    }

    /// Refuses a container path with a `..` component: on the host it would climb out of the
    /// root file system. `field` names the request field in the error.
    static func checkNoParentReferences(_ containerPath: String, field: String) throws {
        if containerPath.split(separator: "/").contains("..") {
            throw LauncherError.invalidField(field, reason: "'\(containerPath)' contains '..'; name a path inside the container without it")
        }
    }

    /// What `containerPath` names as the container will see it: symlinks are followed the way
    /// the container's kernel will, an absolute target from the container's root and `..`
    /// stopping there, through the mounts placed so far — never into the host's own tree, which
    /// is what the host would do with an image's absolute link. Returns the lstat of the final
    /// target, or nil if there is none (missing, or more than 40 links).
    func lookUp(_ containerPath: String) -> stat? {
        var pending = containerPath.split(separator: "/").map(String.init)
        var resolved: [String] = []
        var links = 0
        while !pending.isEmpty {
            let component = pending.removeFirst()
            if component == "." { continue }
            if component == ".." {
                if !resolved.isEmpty { resolved.removeLast() }
                continue
            }
            let candidate = resolved + [component]
            let host = hostPath("/" + candidate.joined(separator: "/"))
            var status = stat()
            guard lstat(host, &status) == 0 else { return nil }
            if status.st_mode & S_IFMT == S_IFLNK {
                links += 1
                guard links <= 40, let target = try? FileManager.default.destinationOfSymbolicLink(atPath: host) else { return nil }
                if target.hasPrefix("/") { resolved = [] }
                pending = target.split(separator: "/").map(String.init) + pending
                continue
            }
            resolved = candidate
        }
        let host = hostPath("/" + resolved.joined(separator: "/"))
        var status = stat()
        guard lstat(host, &status) == 0 else { return nil }
        return status
    }

    /// The contents of a regular file the container left at `containerPath`, or nil if there is
    /// none. The container made its own symlinks, and on the host an absolute one points at host
    /// files, so every component is checked with lstat and a symlink anywhere is refused.
    func readRegularFile(_ containerPath: String, field: String) throws -> Data? {
        try Self.checkNoParentReferences(containerPath, field: field)
        let components = containerPath.split(separator: "/")
        let (base, rel) = locate(containerPath)
        var host = base
        if rel.isEmpty {  // a file mount itself: its source is the engine's own layer
            var st = stat()
            return lstat(host, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG ? FileManager.default.contents(atPath: host) : nil
        }
        for (i, component) in rel.enumerated() {
            host += "/" + component
            var st = stat()
            guard lstat(host, &st) == 0 else { return nil }
            let kind = st.st_mode & S_IFMT
            if kind == S_IFLNK {
                let shown = "/" + components.prefix(components.count - rel.count + i + 1).joined(separator: "/")
                throw LauncherError.invalidField(field, reason: "'\(containerPath)' goes through '\(shown)', a symlink in the container; "
                    + "files are collected without following symlinks, so name the real path")
            }
            let last = i == rel.count - 1
            if last ? kind != S_IFREG : kind != S_IFDIR { return nil }
        }
        // The container has exited: nothing can swap a component for a link after the checks.
        return FileManager.default.contents(atPath: host)
    }
}

/// The host-side pieces of an instance: overlays mounted, bind list ready.
struct AssembledRootfs {
    var rootfs: String
    var binds: [OCIBundle.BindMount]
    var resolver: PathResolver
}

/// Builds an instance's filesystem: a private overlay over the shared base
/// layer, then each mount in the order listed. Failures leave mounts in
/// place for the caller's teardown (which unmounts everything under `dir`).
struct RootfsAssembler {
    let layers: LayerStore
    let imageDir: String

    func resolveSource(_ s: String) -> String { s.hasPrefix("/") ? s : "\(imageDir)/\(s)" }

    func assemble(dir: String, baseImage: String, mounts: [MountSpec]) async throws -> AssembledRootfs {
        let fm = FileManager.default
        let rootfs = "\(dir)/rootfs"
        for d in ["rootfs", "upper", "work"] {
            try fm.createDirectory(atPath: "\(dir)/\(d)", withIntermediateDirectories: true)
        }
        let base = try await layers.layer(for: resolveSource(baseImage))
        try HostMounts.overlay(lower: base, upper: "\(dir)/upper", work: "\(dir)/work", target: rootfs)
        var resolver = PathResolver(rootfs: rootfs)
        var binds: [OCIBundle.BindMount] = []
        for (i, m) in mounts.enumerated() {
            let layer = try await layers.layer(for: resolveSource(m.source))
            var source = layer
            if m.mode == .readWrite {
                // Private copy-on-write view of the shared unpacked layer.
                let md = "\(dir)/mounts/\(i)"
                for d in ["upper", "work", "merged"] {
                    try fm.createDirectory(atPath: "\(md)/\(d)", withIntermediateDirectories: true)
                }
                try HostMounts.overlay(lower: layer, upper: "\(md)/upper", work: "\(md)/work", target: "\(md)/merged")
                source = "\(md)/merged"
            }
            try ensureMountPoint(m.destination, resolver: resolver, isDirectory: isDirectory(source))
            resolver.mounts.append((m.destination, source))
            binds.append(.init(source: source, destination: m.destination, readOnly: m.mode == .read))
        }
        return AssembledRootfs(rootfs: rootfs, binds: binds, resolver: resolver)
    }

    private func isDirectory(_ p: String) -> Bool {
        var d: ObjCBool = false
        return FileManager.default.fileExists(atPath: p, isDirectory: &d) && d.boolValue
    }

    /// Creates a missing mount point in whatever currently backs that path.
    /// Done on the host before the runtime starts because an earlier READ
    /// mount is read-only inside the container, so runc could not create a
    /// nested point there. If the backing store is a shared READ layer, the
    /// empty directory is added to it once (idempotent, same for every
    /// instance). Existing symlinks are refused: following them on the host
    /// could create directories outside the container.
    func ensureMountPoint(_ dest: String, resolver: PathResolver, isDirectory wantDir: Bool) throws {
        let (base, rel) = resolver.locate(dest)
        var cur = base
        for (i, c) in rel.enumerated() {
            cur += "/" + c
            var st = stat()
            let last = i == rel.count - 1
            if lstat(cur, &st) == 0 {
                if (st.st_mode & S_IFMT) == S_IFLNK {
                    throw LauncherError.unsafeMountPoint(dest, reason: "'\(c)' is a symlink in the image")
                }
                if (st.st_mode & S_IFMT) != S_IFDIR && !(last && !wantDir) {
                    throw LauncherError.unsafeMountPoint(dest, reason: "'\(c)' exists and is not a directory")
                }
            } else if last && !wantDir {
                guard FileManager.default.createFile(atPath: cur, contents: nil) else {
                    throw LauncherError.unsafeMountPoint(dest, reason: "cannot create file mount point")
                }
            } else if mkdir(cur, 0o755) != 0 && errno != EEXIST {
                throw LauncherError.unsafeMountPoint(dest, reason: "cannot create '\(c)': \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Checks the startup script is present (and executable if a regular
    /// file) where the container will see it: symlinks resolved inside the container's view,
    /// not on the host (`PathResolver.lookUp`).
    func checkScript(_ path: String, resolver: PathResolver) throws {
        guard let st = resolver.lookUp(path) else { throw LauncherError.startupScriptMissing(path) }
        if (st.st_mode & S_IFMT) == S_IFREG && (st.st_mode & 0o111) == 0 { throw LauncherError.startupScriptMissing(path) }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw LauncherError.startupScriptMissing(path) }
    }

    /// Resolves startup_owner (name or uid) through the image's /etc/passwd.
    func resolveOwner(_ owner: String, resolver: PathResolver) throws -> (uid: UInt32, gid: UInt32, home: String) {
        // Read like a collected file, without following symlinks: an image whose /etc/passwd
        // links to an absolute path would otherwise have the host's own file read here.
        let data = try? resolver.readRegularFile("/etc/passwd", field: "startup_owner")
        let text = data.flatMap { String(data: $0, encoding: .utf8) } ?? ""
        let entries = text.split(separator: "\n").map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
            .filter { $0.count >= 6 }
        if let uid = UInt32(owner) {
            if let e = entries.first(where: { UInt32($0[2]) == uid }) { return (uid, UInt32(e[3]) ?? uid, e[5]) }
            return (uid, uid, "/")
        }
        if let e = entries.first(where: { $0[0] == owner }), let uid = UInt32(e[2]), let gid = UInt32(e[3]) {
            return (uid, gid, e[5])
        }
        if owner == "root" { return (0, 0, "/root") }
        throw LauncherError.unknownOwner(owner)
    }
}
