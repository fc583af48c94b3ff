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
    case keyInsideRepository(String, String)
    case badKeyFile(String)
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
        case let .keyInsideRepository(k, r): return "refusing signing key \(k): it is inside \(r); keep release keys outside any repository"
        case .badKeyFile(let p): return "signing key file \(p) is unreadable or not a base64 ed25519 key"
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
    let log: (@Sendable (String) -> Void)?
    static let sums = "SHA256SUMS", signature = "SHA256SUMS.sig", manifest = "manifest.json"

    public init(root: URL, keyPath: URL, retention: Int = 3, log: (@Sendable (String) -> Void)? = nil) {
        self.root = root; self.keyPath = keyPath; self.retention = max(retention, 1); self.log = log
    }

    func signingKey() throws -> Curve25519.Signing.PrivateKey {
        try ReleaseSigningKey.load(keyPath, forbiddenRoot: root, log: log)
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

    /// Stages everything beside the final directory and renames it into place: a release is
    /// either complete or absent.
    @discardableResult
    public func publish(appliance: String, channel: String, version: String, files: [URL],
                        inputs: ReleaseInputs, trail: Data = Data("{}".utf8)) throws -> URL {
        try Self.checkName(version, field: "version")
        for f in files { try Self.checkName(f.lastPathComponent, field: "file") }
        let key = try signingKey()
        let dir = try channelDir(appliance, channel)
        let final = dir.appendingPathComponent(version)
        let fm = FileManager.default
        if fm.fileExists(atPath: final.path) { throw ReleaseError.versionExists("\(appliance)/\(channel)/\(version)") }
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        let stage = dir.appendingPathComponent(".stage-\(version)-\(UUID().uuidString)")
        try fm.createDirectory(at: stage, withIntermediateDirectories: false)
        defer { try? fm.removeItem(at: stage) }

        var entries: [[String: Any]] = []
        for f in files {
            let dst = stage.appendingPathComponent(f.lastPathComponent)
            try fm.copyItem(at: f, to: dst)
            let (sha, size) = try SHA256Hex.of(file: dst)
            entries.append(["name": f.lastPathComponent, "sha256": sha, "size": size])
        }
        let trailObject = try JSONSerialization.jsonObject(with: trail, options: [.fragmentsAllowed])
        let manifest: [String: Any] = [
            "appliance": appliance, "channel": channel, "version": version,
            "published": ISO8601DateFormatter().string(from: Date()),
            "files": entries.sorted { ($0["name"] as! String) < ($1["name"] as! String) },
            "inputs": ["recipe_digest": inputs.recipeDigest, "snapshot_id": inputs.snapshotID,
                       "build_cache_key": inputs.buildCacheKey],
            "trail": trailObject,
            "signing_key": ["type": "ed25519", "public": key.publicKey.rawRepresentation.base64EncodedString()],
        ]
        try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            .write(to: stage.appendingPathComponent(Self.manifest))
        var sums = ""
        for name in (files.map(\.lastPathComponent) + [Self.manifest]).sorted() {
            sums += "\(try SHA256Hex.of(file: stage.appendingPathComponent(name)).sha256)  \(name)\n"
        }
        let sumsData = Data(sums.utf8)
        try sumsData.write(to: stage.appendingPathComponent(Self.sums))
        try Data((try key.signature(for: sumsData).base64EncodedString() + "\n").utf8)
            .write(to: stage.appendingPathComponent(Self.signature))

        guard rename(stage.path, final.path) == 0 else {
            if errno == ENOTEMPTY || errno == EEXIST { throw ReleaseError.versionExists("\(appliance)/\(channel)/\(version)") }
            throw POSIXError(.init(rawValue: errno) ?? .EIO)
        }
        try switchLatest(dir, to: version)
        try applyRetention(dir)
        return final
    }

    /// Published versions, oldest first (numeric dotted ordering).
    public func versions(appliance: String, channel: String) throws -> [String] {
        let dir = try channelDir(appliance, channel)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { !$0.hasPrefix(".") && $0 != "latest" }.sorted(by: Self.versionLess)
    }

    public func latest(appliance: String, channel: String) throws -> String? {
        let link = try channelDir(appliance, channel).appendingPathComponent("latest")
        return try? FileManager.default.destinationOfSymbolicLink(atPath: link.path)
    }

    /// Points `latest` at the version before the current one.
    @discardableResult
    public func rollback(appliance: String, channel: String) throws -> String {
        let dir = try channelDir(appliance, channel)
        let all = try versions(appliance: appliance, channel: channel)
        guard let current = try latest(appliance: appliance, channel: channel),
              let previous = all.filter({ Self.versionLess($0, current) }).last else {
            throw ReleaseError.noPreviousVersion("\(appliance)/\(channel)")
        }
        try switchLatest(dir, to: previous)
        return previous
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
