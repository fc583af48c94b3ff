import Crypto
import Foundation

public struct ReleaseInputs: Codable, Sendable, Equatable {
    public let recipeDigest: String
    public let snapshotID: String
    public let buildCacheKey: String
    public init(recipeDigest: String, snapshotID: String, buildCacheKey: String) {
        self.recipeDigest = recipeDigest; self.snapshotID = snapshotID; self.buildCacheKey = buildCacheKey
    }
}

public enum ReleaseError: Error, CustomStringConvertible, Equatable {
    case invalidName(String, field: String)
    case outsideReleases(String, root: String)
    case versionExists(String)
    case versionUsedBefore(String)
    case versionNotAbove(String, highest: String, channel: String)
    case badLedger(String, String)
    case keyInsideRepository(String, String)
    case badKeyFile(String)
    case noKeyFile(String)
    case keyFileTooOpen(String, mode: String)
    case changedFile(String)
    case missingFile(String)
    case unexpectedFile(String)
    case badSignature(String)
    case noPreviousVersion(String)

    public var description: String {
        switch self {
        case let .invalidName(n, field):
            return "\(field) '\(n)' is not a valid release name: it must start with a letter or digit, use only letters, digits, "
                + "'.', '_', '+' and '-', and not be 'latest'"
        case let .outsideReleases(p, root): return "'\(p)' is not a release directory: only directories under \(root) can be verified here"
        case .versionExists(let v): return "release \(v) already published; releases are immutable"
        case .versionUsedBefore(let v):
            return "release \(v) was published before (and since removed by retention); a version is never reused for other content"
        case let .versionNotAbove(v, highest, c):
            return "version \(v) is not above \(highest), the highest version ever published in \(c); versions in a channel only go up "
                + "(raise the recipe's version, or pin a higher one)"
        case let .badLedger(p, why): return "release ledger \(p) is unreadable (\(why)); it lists every version ever published in the "
            + "channel so that none is reused: restore it rather than delete it"
        case let .keyInsideRepository(k, r): return "refusing signing key \(k): it is inside \(r); keep release keys outside any repository"
        case .badKeyFile(let p): return "signing key file \(p) is unreadable or not a base64 ed25519 key"
        case .noKeyFile(let p):
            return "no signing key at \(p): check the path in signing_key; to generate a new key there, set signing_key_create: true "
                + "(releases signed with a new key do not verify against an earlier public key)"
        case let .keyFileTooOpen(p, mode):
            return "signing key file \(p) has permissions 0\(mode): group and others must have no access to it (chmod 600 \(p))"
        case .changedFile(let f): return "verify failed: \(f) does not match SHA256SUMS (changed after publishing)"
        case .missingFile(let f): return "verify failed: \(f) is listed in SHA256SUMS but missing"
        case .unexpectedFile(let f): return "verify failed: \(f) is not listed in SHA256SUMS"
        case .badSignature(let f): return "verify failed: signature of \(f) is invalid (SHA256SUMS changed or wrong key)"
        case .noPreviousVersion(let c): return "no earlier version in \(c) to roll back to"
        }
    }
}

/// Publishes signed releases to releases/<appliance>/<channel>/<version>/ with an atomic
/// `latest` symlink, retention and rollback.
public final class ReleasePublisher: Sendable {
    public let root: URL
    public let keyPath: URL
    public let retention: Int
    /// Whether a missing signing key may be generated (`signing_key_create`).
    public let createKey: Bool
    let log: (@Sendable (String) -> Void)?
    /// Runs right after a release is renamed into place; tests throw here to cut a publish short.
    let afterRename: (@Sendable () throws -> Void)?
    static let sums = "SHA256SUMS", signature = "SHA256SUMS.sig", manifest = "manifest.json"

    public convenience init(root: URL, keyPath: URL, retention: Int = 3, createKey: Bool = false, log: (@Sendable (String) -> Void)? = nil) {
        self.init(root: root, keyPath: keyPath, retention: retention, createKey: createKey, log: log, afterRename: nil)
    }

    init(root: URL, keyPath: URL, retention: Int = 3, createKey: Bool = false, log: (@Sendable (String) -> Void)?,
         afterRename: (@Sendable () throws -> Void)?) {
        self.root = root; self.keyPath = keyPath; self.retention = max(retention, 1); self.createKey = createKey; self.log = log
        self.afterRename = afterRename
    }

    func signingKey() throws -> Curve25519.Signing.PrivateKey {
        try ReleaseSigningKey.load(keyPath, forbiddenRoot: root, create: createKey, log: log)
    }

    public func publicKey() throws -> Curve25519.Signing.PublicKey { try signingKey().publicKey }

    /// releases/<appliance>/<channel>; both names are checked, since they come from requests and
    /// a '..' or '/' in them would reach any host directory.
    public func channelDir(_ appliance: String, _ channel: String) throws -> URL {
        try Self.checkName(appliance, field: "appliance")
        try Self.checkName(channel, field: "channel")
        return root.appendingPathComponent(appliance).appendingPathComponent(channel)
    }

    static func checkName(_ s: String, field: String) throws {
        guard s.range(of: "^[A-Za-z0-9][A-Za-z0-9._+-]*$", options: .regularExpression) != nil, s != "latest" else {
            throw ReleaseError.invalidName(s, field: field)
        }
    }

    /// `path` (absolute, or relative to the releases root) as a directory inside the releases
    /// root, symlinks resolved first so a link cannot lead the check elsewhere.
    public func releaseDirectory(_ path: String) throws -> URL {
        let url = path.hasPrefix("/") ? URL(fileURLWithPath: path) : root.appendingPathComponent(path)
        let real = url.standardizedFileURL.resolvingSymlinksInPath().path
        let base = root.standardizedFileURL.resolvingSymlinksInPath().path
        guard real.hasPrefix(base + "/") else { throw ReleaseError.outsideReleases(path, root: root.path) }
        return URL(fileURLWithPath: real)
    }

    /// Which version a publish takes: one the workflow pinned, or the next in the series of the
    /// recipe's `major.minor` (1.0, 1.0.1, 1.0.2 …).
    public enum VersionChoice: Sendable, Equatable {
        case pinned(String)
        case next(base: String)
    }

    /// Stages everything beside the final directory and renames it into place: a release is
    /// either complete or absent.
    @discardableResult
    public func publish(appliance: String, channel: String, version: String, files: [URL],
                        inputs: ReleaseInputs, trail: Data = Data("{}".utf8)) throws -> URL {
        try publish(appliance: appliance, channel: channel, version: .pinned(version),
                    files: files.map { ($0.lastPathComponent, $0) }, inputs: inputs, trail: trail).dir
    }

    public struct Publication: Sendable, Equatable {
        public let dir: URL
        public let version: String
        /// The release with these inputs existed: nothing was published.
        public let alreadyPublished: Bool
    }

    /// Publishes `files` (release name, source) as the version `choice` gives. The channel's
    /// lock is held throughout, so two publishes cannot pick the same version. With `oncePerInputs`
    /// a release with the same `inputs` is answered instead, found under the same lock: two runs
    /// of one workflow at once publish it once.
    public func publish(appliance: String, channel: String, version choice: VersionChoice, files: [(name: String, source: URL)],
                        inputs: ReleaseInputs, trail: Data = Data("{}".utf8), oncePerInputs: Bool = false) throws -> Publication {
        if case .pinned(let v) = choice { try Self.checkName(v, field: "version") }
        for f in files { try Self.checkName(f.name, field: "file") }
        let key = try signingKey()
        let dir = try channelDir(appliance, channel)
        let fm = FileManager.default
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        return try withChannelLock(dir) {
            // A publish cut short between its rename and the switch of `latest` is finished
            // first, so the rerun that finds its release also repairs `latest`.
            try finishPending(dir)
            if oncePerInputs, let existing = Self.release(in: dir, with: inputs) {
                return Publication(dir: dir.appendingPathComponent(existing), version: existing, alreadyPublished: true)
            }
            var ledger = try readLedger(dir)
            let version = try Self.version(choice, recorded: ledger.versions, present: Self.presentVersions(dir), channel: "\(appliance)/\(channel)")
            let final = dir.appendingPathComponent(version)
            let stage = dir.appendingPathComponent(".stage-\(version)-\(UUID().uuidString)")
            try fm.createDirectory(at: stage, withIntermediateDirectories: false)
            defer { try? fm.removeItem(at: stage) }

            var entries: [[String: Any]] = []
            // Each file hashed once, as copied (images are large); SHA256SUMS reuses the digests.
            var digests: [String: String] = [:]
            for f in files {
                let dst = stage.appendingPathComponent(f.name)
                try fm.copyItem(at: f.source, to: dst)
                let (sha, size) = try SHA256Hex.of(file: dst)
                entries.append(["name": f.name, "sha256": sha, "size": size])
                digests[f.name] = sha
            }
            let trailObject = try JSONSerialization.jsonObject(with: trail, options: [.fragmentsAllowed])
            let manifest: [String: Any] = [
                "appliance": appliance, "channel": channel, "version": version,
                "published": ISO8601DateFormatter().string(from: Date()),
                "files": entries.sorted { ($0["name"] as! String) < ($1["name"] as! String) },
                "inputs": Self.inputsObject(inputs),
                "trail": trailObject,
                "signing_key": ["type": "ed25519", "public": key.publicKey.rawRepresentation.base64EncodedString()],
            ]
            try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
                .write(to: stage.appendingPathComponent(Self.manifest))
            digests[Self.manifest] = try SHA256Hex.of(file: stage.appendingPathComponent(Self.manifest)).sha256
            var sums = ""
            for name in (files.map(\.name) + [Self.manifest]).sorted() {
                sums += "\(digests[name]!)  \(name)\n"
            }
            let sumsData = Data(sums.utf8)
            try sumsData.write(to: stage.appendingPathComponent(Self.sums))
            try Data((try key.signature(for: sumsData).base64EncodedString() + "\n").utf8)
                .write(to: stage.appendingPathComponent(Self.signature))

            // Recorded before the rename: a crash after it must not let the version be taken
            // again, and the pending mark lets a rerun finish switching `latest`.
            ledger.versions.append(version)
            ledger.pendingLatest = version
            try writeLedger(dir, ledger)
            guard rename(stage.path, final.path) == 0 else {
                if errno == ENOTEMPTY || errno == EEXIST { throw ReleaseError.versionExists("\(appliance)/\(channel)/\(version)") }
                throw POSIXError(.init(rawValue: errno) ?? .EIO)
            }
            try afterRename?()
            try finishPending(dir)
            return Publication(dir: final, version: version, alreadyPublished: false)
        }
    }

    static func inputsObject(_ inputs: ReleaseInputs) -> [String: String] {
        ["recipe_digest": inputs.recipeDigest, "snapshot_id": inputs.snapshotID, "build_cache_key": inputs.buildCacheKey]
    }

    /// The version `choice` gives when the channel has had the versions `recorded` in its ledger
    /// and `present` on disk (releases from before the ledger count too): never one of them, and
    /// above all of them, so that the newest release is also the highest and version order
    /// (retention, rollback) is publishing order.
    static func version(_ choice: VersionChoice, recorded: [String], present: [String], channel: String) throws -> String {
        let used = recorded + present
        let highest = used.max(by: versionLess)
        switch choice {
        case .pinned(let v):
            if present.contains(v) { throw ReleaseError.versionExists("\(channel)/\(v)") }
            if used.contains(v) { throw ReleaseError.versionUsedBefore("\(channel)/\(v)") }
            if let highest, !versionLess(highest, v) { throw ReleaseError.versionNotAbove(v, highest: highest, channel: channel) }
            return v
        case .next(let base):
            guard let highest, !versionLess(highest, base) else { return base }
            if highest == base { return base + ".1" }
            if highest.hasPrefix(base + "."), let n = Int(highest.dropFirst(base.count + 1)) { return "\(base).\(n + 1)" }
            throw ReleaseError.versionNotAbove(base, highest: highest, channel: channel)
        }
    }

    /// The version in `dir` whose manifest records exactly `inputs`, if any.
    static func release(in dir: URL, with inputs: ReleaseInputs) -> String? {
        let wanted = inputsObject(inputs)
        return presentVersions(dir).sorted(by: versionLess).first { version in
            guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent("\(version)/\(manifest)").path),
                  let manifest = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return false }
            return manifest["inputs"] as? [String: String] == wanted
        }
    }

    /// Points `latest` at the release a publish renamed into place, if the publish ended before
    /// it could (crash, full disk), and applies retention. Idempotent; the caller holds the lock.
    func finishPending(_ dir: URL) throws {
        var ledger = try readLedger(dir)
        guard let pending = ledger.pendingLatest else { return }
        if FileManager.default.fileExists(atPath: dir.appendingPathComponent(pending).path) {
            try switchLatest(dir, to: pending)
            try applyRetention(dir)
        }
        ledger.pendingLatest = nil
        try writeLedger(dir, ledger)
    }

    /// `<channel>/.ledger`: every version ever published there (retention deletes releases, not
    /// their versions) and the one `latest` is being switched to.
    struct Ledger: Codable, Equatable {
        var versions: [String] = []
        var pendingLatest: String?
        enum CodingKeys: String, CodingKey { case versions, pendingLatest = "pending_latest" }
    }

    static let ledgerName = ".ledger"

    func readLedger(_ dir: URL) throws -> Ledger {
        let url = dir.appendingPathComponent(Self.ledgerName)
        guard FileManager.default.fileExists(atPath: url.path) else { return Ledger() }
        do { return try JSONDecoder().decode(Ledger.self, from: Data(contentsOf: url)) } catch {
            throw ReleaseError.badLedger(url.path, "\(error)")
        }
    }

    /// Written to a temporary file, synced, renamed over the ledger, the directory synced: after a
    /// crash the ledger is the old or the new one, whole.
    func writeLedger(_ dir: URL, _ ledger: Ledger) throws {
        let tmp = dir.appendingPathComponent(".ledger-\(UUID().uuidString)")
        let data = try JSONEncoder().encode(ledger)
        let fd = open(tmp.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == data.count, synced, rename(tmp.path, dir.appendingPathComponent(Self.ledgerName).path) == 0 else {
            let error = POSIXError(.init(rawValue: errno) ?? .EIO)
            try? FileManager.default.removeItem(at: tmp)
            throw error
        }
        let dirFD = open(dir.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 { fsync(dirFD); close(dirFD) }
    }

    /// Runs `body` holding an exclusive flock on `<channel>/.lock` (agents of one host share the
    /// releases root).
    func withChannelLock<T>(_ dir: URL, _ body: () throws -> T) throws -> T {
        let fd = open(dir.appendingPathComponent(".lock").path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        }
        return try body()
    }

    static func presentVersions(_ dir: URL) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { !$0.hasPrefix(".") && $0 != "latest" }
    }

    /// Published versions, oldest first (numeric dotted ordering).
    public func versions(appliance: String, channel: String) throws -> [String] {
        Self.presentVersions(try channelDir(appliance, channel)).sorted(by: Self.versionLess)
    }

    public func latest(appliance: String, channel: String) throws -> String? {
        let link = try channelDir(appliance, channel).appendingPathComponent("latest")
        return try? FileManager.default.destinationOfSymbolicLink(atPath: link.path)
    }

    /// Points `latest` at the highest existing version below the current one (a publish cut
    /// short is finished first, so the rollback starts from the newest release).
    @discardableResult
    public func rollback(appliance: String, channel: String) throws -> String {
        let dir = try channelDir(appliance, channel)
        guard FileManager.default.fileExists(atPath: dir.path) else { throw ReleaseError.noPreviousVersion("\(appliance)/\(channel)") }
        return try withChannelLock(dir) {
            try finishPending(dir)
            let all = try versions(appliance: appliance, channel: channel)
            guard let current = try latest(appliance: appliance, channel: channel),
                  let previous = all.filter({ Self.versionLess($0, current) }).last else {
                throw ReleaseError.noPreviousVersion("\(appliance)/\(channel)")
            }
            try switchLatest(dir, to: previous)
            return previous
        }
    }

    /// New symlink under a temp name, then rename(2) over `latest`: readers see old or new, never none.
    func switchLatest(_ dir: URL, to version: String) throws {
        let tmp = dir.appendingPathComponent(".latest-\(UUID().uuidString)")
        guard Glibc.symlink(version, tmp.path) == 0, rename(tmp.path, dir.appendingPathComponent("latest").path) == 0 else {
            try? FileManager.default.removeItem(at: tmp)
            throw POSIXError(.init(rawValue: errno) ?? .EIO)
        }
    }

    /// Keeps the newest `retention` versions, and always the one `latest` points at.
    func applyRetention(_ dir: URL) throws {
        let appliance = dir.deletingLastPathComponent().lastPathComponent, channel = dir.lastPathComponent
        let all = try versions(appliance: appliance, channel: channel)
        let current = try latest(appliance: appliance, channel: channel)
        for v in all.dropLast(retention) where v != current {
            let trash = dir.appendingPathComponent(".trash-\(UUID().uuidString)")
            if rename(dir.appendingPathComponent(v).path, trash.path) == 0 { try FileManager.default.removeItem(at: trash) }
        }
    }

    public func verify(_ dir: URL) throws { try Self.verify(dir, publicKey: try publicKey()) }

    /// Checks the signature over SHA256SUMS, every listed file, and that nothing else is there.
    public static func verify(_ dir: URL, publicKey: Curve25519.Signing.PublicKey) throws {
        let sumsURL = dir.appendingPathComponent(sums)
        guard let sumsData = try? Data(contentsOf: sumsURL) else { throw ReleaseError.missingFile(sums) }
        guard let sigText = try? String(contentsOf: dir.appendingPathComponent(signature), encoding: .utf8),
              let sig = Data(base64Encoded: sigText.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw ReleaseError.missingFile(signature)
        }
        guard publicKey.isValidSignature(sig, for: sumsData) else { throw ReleaseError.badSignature(sums) }
        var listed: Set<String> = [sums, signature]
        for line in String(decoding: sumsData, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2 else { throw ReleaseError.changedFile(sums) }
            let name = parts[1].trimmingCharacters(in: .whitespaces)
            listed.insert(name)
            let url = dir.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.path) else { throw ReleaseError.missingFile(name) }
            guard try SHA256Hex.of(file: url).sha256 == parts[0] else { throw ReleaseError.changedFile(name) }
        }
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) where !listed.contains(name) {
            throw ReleaseError.unexpectedFile(name)
        }
    }

    static func versionLess(_ a: String, _ b: String) -> Bool {
        let x = a.split(separator: ".").map { Int($0) ?? -1 }, y = b.split(separator: ".").map { Int($0) ?? -1 }
        return x.lexicographicallyPrecedes(y)
    }
}
