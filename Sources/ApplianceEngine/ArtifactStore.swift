import Crypto
import Foundation

/// Reference to content in an `ArtifactStore`; the URI is what other agents pass around.
public struct ArtifactRef: Codable, Hashable, Sendable {
    public let uri: String
    public let sha256: String
    public let size: Int64

    public init(sha256: String, size: Int64) {
        self.uri = "cas:sha256:\(sha256)"
        self.sha256 = sha256
        self.size = size
    }
}

public enum ArtifactStoreError: Error, CustomStringConvertible, Equatable {
    case missing(String)
    case digestMismatch(uri: String, expected: String, actual: String, path: String)

    public var description: String {
        switch self {
        case .missing(let uri): return "artifact \(uri) is not in the store"
        case let .digestMismatch(uri, expected, actual, path):
            return "artifact \(uri) is corrupt: \(path) has sha256 \(actual), expected \(expected)"
        }
    }
}

/// Content-addressed directory store: objects/<first 2 hex>/<full hex>.
/// Writes go to a temp file in the same file system and are renamed into place, so a reader
/// never sees a half-written object.
public final class ArtifactStore: Sendable {
    public let root: URL
    var objects: URL { root.appendingPathComponent("objects") }
    var tmp: URL { root.appendingPathComponent("tmp") }

    public init(root: URL) throws {
        self.root = root
        try FileManager.default.createDirectory(at: root.appendingPathComponent("objects"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: root.appendingPathComponent("tmp"), withIntermediateDirectories: true)
    }

    func objectURL(_ sha256: String) -> URL {
        objects.appendingPathComponent(String(sha256.prefix(2))).appendingPathComponent(sha256)
    }

    /// Copies `file` into the store while hashing it in one streamed pass.
    public func put(_ file: URL) throws -> ArtifactRef {
        let temp = tmp.appendingPathComponent(UUID().uuidString)
        _ = FileManager.default.createFile(atPath: temp.path, contents: nil)
        var placed = false
        // A copy cut short (a full disk, an unreadable source) leaves nothing behind in tmp/.
        defer { if !placed { try? FileManager.default.removeItem(at: temp) } }
        let input = try FileHandle(forReadingFrom: file)
        let output = try FileHandle(forWritingTo: temp)
        var hasher = SHA256()
        var size: Int64 = 0
        do {
            defer { try? input.close(); try? output.close() }
            while let chunk = try input.read(upToCount: 1 << 20), !chunk.isEmpty {
                hasher.update(data: chunk)
                try output.write(contentsOf: chunk)
                size += Int64(chunk.count)
            }
        }
        let hex = SHA256Hex.hex(hasher.finalize())
        let dest = objectURL(hex)
        if FileManager.default.fileExists(atPath: dest.path) {
            // Already stored, the content identical. Stored again means wanted again: its time
            // is renewed, as the collector keeps what was stored lately for workflows in flight.
            _ = utimes(dest.path, nil)
        } else {
            try FileManager.default.createDirectory(at: dest.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.setAttributes([.posixPermissions: 0o444], ofItemAtPath: temp.path)
            guard rename(temp.path, dest.path) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
            placed = true
        }
        return ArtifactRef(sha256: hex, size: size)
    }

    public func contains(_ ref: ArtifactRef) -> Bool {
        FileManager.default.fileExists(atPath: objectURL(ref.sha256).path)
    }

    /// Path of the object after re-hashing it: bit rot or tampering surfaces here, not later.
    public func path(for ref: ArtifactRef) throws -> URL {
        let url = objectURL(ref.sha256)
        guard FileManager.default.fileExists(atPath: url.path) else { throw ArtifactStoreError.missing(ref.uri) }
        let actual = try SHA256Hex.of(file: url).sha256
        guard actual == ref.sha256 else {
            throw ArtifactStoreError.digestMismatch(uri: ref.uri, expected: ref.sha256, actual: actual, path: url.path)
        }
        return url
    }

    /// Deletes every object whose digest is not in `keep` and that was not stored (or stored
    /// again) after `storedBefore`, looked at as it is deleted: an object put while `keep` was
    /// being made is never in it. Returns (objects, bytes) freed.
    @discardableResult
    public func gc(keep: Set<String>, storedBefore cutoff: Date = .distantFuture) throws -> (removed: Int, bytes: Int64) {
        var removed = 0
        var bytes: Int64 = 0
        let fm = FileManager.default
        for shard in try fm.contentsOfDirectory(atPath: objects.path) {
            let dir = objects.appendingPathComponent(shard)
            for name in try fm.contentsOfDirectory(atPath: dir.path) where !keep.contains(name) {
                let url = dir.appendingPathComponent(name)
                let attributes = try? fm.attributesOfItem(atPath: url.path)
                if let modified = attributes?[.modificationDate] as? Date, modified >= cutoff { continue }
                let size = (attributes?[.size] as? Int64) ?? 0
                try fm.removeItem(at: url)
                removed += 1
                bytes += size
            }
        }
        return (removed, bytes)
    }
}
