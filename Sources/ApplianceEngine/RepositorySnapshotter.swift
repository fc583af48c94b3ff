import ChildProcess
import Foundation

/// One .deb in a snapshot.
public struct SnapshotPackage: Codable, Hashable, Sendable {
    public let name: String
    public let version: String
    public let architecture: String
    /// Path relative to the snapshot directory, e.g. "pool/busybox-static_1%3a1.35.0_amd64.deb".
    public let filename: String
    public let sha256: String
    public let size: Int64
}

/// An immutable local apt repository (flat: `deb [trusted=yes] file:DIR ./`).
public struct Snapshot: Codable, Sendable {
    public let id: String
    public let suite: String
    public let architecture: String
    public let requested: [String]
    public let packages: [SnapshotPackage]
    /// Not encoded: where this copy lives on this machine.
    public var directory: URL { URL(fileURLWithPath: directoryPath) }
    var directoryPath: String

    public var aptSourceLine: String { "deb [trusted=yes] file:\(directoryPath) ./" }
    public func package(named name: String) -> SnapshotPackage? { packages.first { $0.name == name } }
    public func debURL(_ pkg: SnapshotPackage) -> URL { directory.appendingPathComponent(pkg.filename) }
}

/// What one snapshot call did, for the operator and for tests.
public struct SnapshotReport: Sendable {
    public let snapshot: Snapshot
    public let bytesDownloaded: Int64
    public let filesDownloaded: Int
    public let reusedExistingSnapshot: Bool
    /// True when the mirror could not be reached and cached package lists were used.
    public let offline: Bool
    public let notes: [String]
}

public enum SnapshotError: Error, CustomStringConvertible, Equatable {
    case unknownPackages([String])
    case noCachedLists(String)
    case missingFromCache([String])
    case resolutionFailed(String)
    case invalidID(String)

    public var description: String {
        switch self {
        case .invalidID(let id): return "'\(id.prefix(100))' is not a snapshot id (64 lowercase hex digits, as repo.snapshot gives it)"
        case .unknownPackages(let names): return "package(s) not found in the archive: \(names.joined(separator: ", "))"
        case .noCachedLists(let why): return "mirror unreachable and no cached package lists to work offline: \(why)"
        case .missingFromCache(let files): return "offline and not in the download cache: \(files.joined(separator: ", "))"
        case .resolutionFailed(let why): return "dependency resolution failed: \(why)"
        }
    }
}

/// Resolves a package set with apt itself in an isolated apt root (empty dpkg status, so the
/// full dependency closure is downloaded), then writes an immutable, content-named repository.
public final class RepositorySnapshotter: Sendable {
    public let root: URL
    public let mirror: String
    public let securityMirror: String?
    /// Lists younger than this are not refreshed: keeps warm snapshots fast and offline-friendly.
    public let listsMaxAge: TimeInterval
    /// Extra `-o` options for apt (tests use a dead proxy to simulate a mirror outage).
    public let extraAptOptions: [String]

    /// `mirror` defaults to the host's configured Debian mirror (see `HostAptSources`).
    public init(root: URL, mirror: String? = nil, securityMirror: String?? = nil,
                listsMaxAge: TimeInterval = 3600, extraAptOptions: [String] = []) throws {
        let host = HostAptSources.detect()
        guard let main = mirror ?? host?.main else {
            throw SnapshotError.resolutionFailed("no Debian mirror: none in /etc/apt, and no 'mirror' in module_settings.lifecycle")
        }
        self.root = root
        self.mirror = main
        self.securityMirror = securityMirror ?? host?.security
        self.listsMaxAge = listsMaxAge
        self.extraAptOptions = extraAptOptions
    }

    public var downloadCache: URL { root.appendingPathComponent("cache/archives") }
    public var snapshotsDir: URL { root.appendingPathComponent("snapshots") }

    func aptRoot(suite: String, arch: String) -> URL { root.appendingPathComponent("aptroot/\(suite)-\(arch)") }

    func aptOptions(_ r: URL, arch: String) -> [String] {
        let p = r.path
        let opts = [
            "Dir::Etc=\(p)/etc", "Dir::Etc::SourceList=\(p)/etc/sources.list",
            "Dir::Etc::SourceParts=\(p)/etc/sources.list.d", "Dir::Etc::Preferences=\(p)/etc/preferences",
            "Dir::Etc::PreferencesParts=\(p)/etc/preferences.d", "Dir::Etc::Trusted=/etc/apt/trusted.gpg",
            "Dir::Etc::TrustedParts=/etc/apt/trusted.gpg.d",
            "Dir::State=\(p)/state", "Dir::State::Lists=\(p)/lists", "Dir::State::status=\(p)/state/status",
            "Dir::Cache=\(p)/cache", "Dir::Cache::archives=\(downloadCache.path)",
            "APT::Architecture=\(arch)", "APT::Architectures=\(arch)", "APT::Install-Recommends=false",
            "APT::Install-Suggests=false", "Debug::NoLocking=true", "APT::Sandbox::User=root",
            "Acquire::Retries=0", "Acquire::http::Timeout=15", "Acquire::Languages=none",
        ] + extraAptOptions
        return opts.flatMap { ["-o", $0] }
    }

    func prepareAptRoot(suite: String, arch: String) throws -> URL {
        let r = aptRoot(suite: suite, arch: arch)
        let fm = FileManager.default
        for d in ["etc/sources.list.d", "etc/preferences.d", "state", "lists/partial", "cache"] {
            try fm.createDirectory(at: r.appendingPathComponent(d), withIntermediateDirectories: true)
        }
        try fm.createDirectory(at: downloadCache.appendingPathComponent("partial"), withIntermediateDirectories: true)
        // Empty status: apt believes nothing is installed and so resolves the whole closure.
        try Data().write(to: r.appendingPathComponent("state/status"))
        let key = "signed-by=/usr/share/keyrings/debian-archive-keyring.gpg"
        var lines = ["deb [\(key)] \(mirror) \(suite) main"]
        if let securityMirror { lines.append("deb [\(key)] \(securityMirror) \(suite)-security main") }
        lines.append("deb [\(key)] \(mirror) \(suite)-updates main")
        try (lines.joined(separator: "\n") + "\n").write(to: r.appendingPathComponent("etc/sources.list"), atomically: true, encoding: .utf8)
        return r
    }

    /// Refreshes package lists; returns false (offline) when the mirror cannot be reached.
    func updateLists(_ r: URL, arch: String, notes: inout [String]) throws -> Bool {
        let lists = r.appendingPathComponent("lists")
        let cached = (try? FileManager.default.contentsOfDirectory(atPath: lists.path))?.filter { $0.contains("_Packages") } ?? []
        let stamp = r.appendingPathComponent("lists/.baton-updated")
        if !cached.isEmpty, let mod = try? FileManager.default.attributesOfItem(atPath: stamp.path)[.modificationDate] as? Date,
           Date().timeIntervalSince(mod) < listsMaxAge {
            notes.append("package lists fresh (updated \(Int(Date().timeIntervalSince(mod))) s ago); not refreshed")
            return true
        }
        let out = try Tool.run(["apt-get"] + aptOptions(r, arch: arch) + ["-q", "update"], timeout: 300, checkStatus: false)
        let err = out.stderrString + out.stdoutString
        let failed = out.status != 0 || err.contains("Failed to fetch") || err.contains("Could not")
            || err.contains("Temporary failure") || err.contains("Unable to connect")
        if !failed {
            _ = FileManager.default.createFile(atPath: stamp.path, contents: Data())
            notes.append("package lists refreshed from \(mirror)")
            return true
        }
        let nowCached = (try? FileManager.default.contentsOfDirectory(atPath: lists.path))?.filter { $0.contains("_Packages") } ?? []
        guard !nowCached.isEmpty else { throw SnapshotError.noCachedLists(Tool.tail(err, lines: 4)) }
        notes.append("OFFLINE: mirror \(mirror) unreachable; using cached package lists and download cache")
        return false
    }

    /// Resolves, downloads (only what the cache lacks) and writes the snapshot.
    /// `includeEssential` adds the Essential:yes set and apt, which a debootstrap-style build
    /// (mmdebstrap) needs from the repository.
    /// `progress` hears each note as it is made (a download may take minutes).
    public func snapshot(suite: String, architecture: String, packages: [String],
                         includeEssential: Bool = false, progress: (String) -> Void = { _ in }) throws -> SnapshotReport {
        var notes: [String] = []
        // One snapshot at a time per repository: they share apt's lists and state (run with
        // Debug::NoLocking, as apt's own locks are for the system's apt) and the download cache,
        // whose partial files two apt runs would write over each other.
        let lock = try RepositoryLock(at: root.appendingPathComponent(".snapshot.lock"))
        defer { lock.release() }
        if try !lock.acquire(waiting: false) {
            notes.append("waited for another snapshot of this repository to finish")
            progress("waiting for another snapshot of this repository to finish")
            _ = try lock.acquire(waiting: true)
        }
        let r = try prepareAptRoot(suite: suite, arch: architecture)
        let earlierNotes = notes.count
        let online = try updateLists(r, arch: architecture, notes: &notes)
        notes[earlierNotes...].forEach(progress)
        let wanted = Array(Set(packages + (includeEssential ? ["?essential", "apt"] : []))).sorted()

        // 1. Resolve with apt's own solver (simulation) to get the exact closure.
        let sim = try Tool.run(["apt-get"] + aptOptions(r, arch: architecture) + ["-s", "-q", "install"] + wanted,
                               timeout: 120, checkStatus: false)
        if sim.status != 0 {
            let missing = sim.stderrString.split(separator: "\n").compactMap { line -> String? in
                for prefix in ["E: Unable to locate package ", "E: Package '"] where line.hasPrefix(prefix) {
                    return String(line.dropFirst(prefix.count).prefix { $0 != "'" && $0 != " " })
                }
                return nil
            }
            if !missing.isEmpty { throw SnapshotError.unknownPackages(missing) }
            throw SnapshotError.resolutionFailed(Tool.tail(sim.stderrString + sim.stdoutString, lines: 8))
        }
        let resolved = Self.parseInstLines(sim.stdoutString)
        guard !resolved.isEmpty else { throw SnapshotError.resolutionFailed("apt resolved nothing for \(wanted)") }

        // 2. Download what the shared cache lacks.
        let fm = FileManager.default
        let before = Set((try? fm.contentsOfDirectory(atPath: downloadCache.path)) ?? [])
        let files = resolved.map { "\($0.name)_\($0.version.replacingOccurrences(of: ":", with: "%3a"))_\($0.arch).deb" }
        let lacking = files.filter { !before.contains($0) }
        if !lacking.isEmpty {
            if !online { throw SnapshotError.missingFromCache(lacking) }
            progress("\(resolved.count) packages resolved; downloading the \(lacking.count) not in the cache from \(mirror)")
            try Tool.run(["apt-get"] + aptOptions(r, arch: architecture) + ["-q", "-y", "--download-only", "install"] + wanted,
                         timeout: 1800)
        }
        var downloaded: Int64 = 0
        for f in lacking {
            downloaded += (try? fm.attributesOfItem(atPath: downloadCache.appendingPathComponent(f).path)[.size] as? Int64) ?? 0
        }

        // 3. Name the snapshot by its exact contents.
        var pkgs: [SnapshotPackage] = []
        for (res, file) in zip(resolved, files) {
            let (sha, size) = try SHA256Hex.of(file: downloadCache.appendingPathComponent(file))
            pkgs.append(SnapshotPackage(name: res.name, version: res.version, architecture: res.arch,
                                        filename: "pool/\(file)", sha256: sha, size: size))
        }
        pkgs.sort { $0.name < $1.name }
        let id = SHA256Hex.of(string: pkgs.map { "\($0.name)=\($0.version)=\($0.sha256)\n" }.joined())
        var snap = Snapshot(id: id, suite: suite, architecture: architecture, requested: wanted, packages: pkgs,
                            directoryPath: snapshotsDir.appendingPathComponent(id).path)
        let reused = fm.fileExists(atPath: snap.directory.appendingPathComponent("snapshot.json").path)
        if reused {
            notes.append("snapshot \(id.prefix(12)) already exists; reused")
            progress(notes[notes.count - 1])
        } else {
            try writeRepository(&snap)
        }
        return SnapshotReport(snapshot: snap, bytesDownloaded: downloaded, filesDownloaded: lacking.count,
                              reusedExistingSnapshot: reused, offline: !online, notes: notes)
    }

    /// Opens an existing snapshot by id. An id is a SHA-256 in hex: anything else (`../x`, an
    /// absolute path) would open a snapshot.json from elsewhere, and build from its packages.
    public func open(id: String) throws -> Snapshot { try Self.open(id: id, root: root) }

    /// The same, needing no mirror: a build host reads snapshots, it downloads nothing.
    public static func open(id: String, root: URL) throws -> Snapshot {
        guard id.utf8.count == 64, id.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
            throw SnapshotError.invalidID(id)
        }
        let dir = root.appendingPathComponent("snapshots").appendingPathComponent(id)
        var snap = try JSONDecoder().decode(Snapshot.self, from: Data(contentsOf: dir.appendingPathComponent("snapshot.json")))
        snap.directoryPath = dir.path
        return snap
    }

    /// Staged in a temp dir beside the final one and renamed, so a snapshot is either whole or absent.
    func writeRepository(_ snap: inout Snapshot) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: snapshotsDir, withIntermediateDirectories: true)
        let stage = snapshotsDir.appendingPathComponent(".stage-\(UUID().uuidString)")
        let pool = stage.appendingPathComponent("pool")
        try fm.createDirectory(at: pool, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: stage) }
        for p in snap.packages {
            let src = downloadCache.appendingPathComponent(String(p.filename.dropFirst("pool/".count)))
            let dst = stage.appendingPathComponent(p.filename)
            // Hard link: the snapshot costs no extra space and reuses the cached file.
            if link(src.path, dst.path) != 0 { try fm.copyItem(at: src, to: dst) }
        }
        let scan = try Tool.run(["dpkg-scanpackages", "-m", "pool", "/dev/null"], cwd: stage, timeout: 600)
        try scan.stdout.write(to: stage.appendingPathComponent("Packages"))
        let gz = try Tool.run(["gzip", "-9nc", "Packages"], cwd: stage)
        try gz.stdout.write(to: stage.appendingPathComponent("Packages.gz"))
        // Release written by hand: apt-ftparchive stamps the current date, which would make
        // two snapshots of the same set differ.
        var release = "Origin: baton\nLabel: baton snapshot\nSuite: \(snap.suite)\nCodename: \(snap.suite)\n"
        release += "Architectures: \(snap.architecture) all\nDescription: snapshot \(snap.id)\nSHA256:\n"
        for f in ["Packages", "Packages.gz"] {
            let (sha, size) = try SHA256Hex.of(file: stage.appendingPathComponent(f))
            release += " \(sha) \(size) \(f)\n"
        }
        try release.write(to: stage.appendingPathComponent("Release"), atomically: true, encoding: .utf8)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(snap).write(to: stage.appendingPathComponent("snapshot.json"))
        if rename(stage.path, snap.directoryPath) != 0 && !fm.fileExists(atPath: snap.directoryPath + "/snapshot.json") {
            throw POSIXError(.init(rawValue: errno) ?? .EIO)
        }
    }

    /// Parses `Inst name (version origin [arch])` lines of `apt-get -s install`.
    static func parseInstLines(_ text: String) -> [(name: String, version: String, arch: String)] {
        text.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("Inst ") else { return nil }
            let parts = line.split(separator: " ")
            guard parts.count >= 3, parts[2].hasPrefix("(") else { return nil }
            let name = String(parts[1])
            let version = String(parts[2].dropFirst())
            // "... [amd64])" may be followed by " []" (broken-by list), so anchor on "])".
            guard let close = line.range(of: "])")?.lowerBound,
                  let open = line[..<close].lastIndex(of: "[") else { return nil }
            let arch = String(line[line.index(after: open)..<close])
            return (name, version, arch)
        }
    }
}

/// An exclusive lock on a file (flock), for work of one process or several on one repository.
final class RepositoryLock {
    private let descriptor: Int32
    private let path: String

    init(at url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        path = url.path
        descriptor = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw SnapshotError.resolutionFailed("cannot open the lock \(url.path): \(String(cString: strerror(errno)))") }
    }

    /// Takes the lock; without `waiting`, returns false at once if another holds it. While
    /// waiting, a cancel of the work on this thread (a cancelled step) ends the wait.
    func acquire(waiting: Bool) throws -> Bool {
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                throw SnapshotError.resolutionFailed("cannot lock \(path): \(String(cString: strerror(errno)))")
            }
            guard waiting else { return false }
            if ThreadCancel.current?.isCancelled == true { throw CancellationError() }
            usleep(100_000)
        }
        return true
    }

    /// Releases the lock (closing the file does).
    func release() { close(descriptor) }
}
