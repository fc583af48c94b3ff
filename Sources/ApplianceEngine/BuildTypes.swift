import Foundation

public struct BuildProgress: Sendable, Equatable {
    public let phase: String
    /// 0...100 where known.
    public let percent: Double?
}

public typealias BuildProgressHandler = @Sendable (BuildProgress) -> Void

public struct BuiltArtifact: Codable, Sendable, Equatable {
    public let format: Recipe.Format
    /// File name inside the build directory.
    public let file: String
    public let sha256: String
    public let size: Int64
}

public struct BuildResult: Sendable {
    public let cacheKey: String
    public let directory: URL
    public let artifacts: [BuiltArtifact]
    public let fromCache: Bool
    public let seconds: Double

    public func url(_ format: Recipe.Format) -> URL? {
        artifacts.first { $0.format == format }.map { directory.appendingPathComponent($0.file) }
    }
    public func artifact(_ format: Recipe.Format) -> BuiltArtifact? { artifacts.first { $0.format == format } }
}

/// Record written next to the outputs; its presence marks a complete cache entry.
struct BuildRecord: Codable {
    let cacheKey: String
    let inputs: [String: String]
    let artifacts: [BuiltArtifact]
}

public enum BuildError: Error, CustomStringConvertible {
    case missingPackage(String, String)
    case missingFile(String)
    case postScriptFailed(String, String)
    /// A `files` entry (source, destination) that would read or write through a symlink, or the like.
    case unsafeFile(source: String, destination: String, reason: String)

    public var description: String {
        switch self {
        case let .missingPackage(p, why): return "snapshot has no package \(p): \(why)"
        case .missingFile(let f): return "recipe file source not found: \(f)"
        case let .postScriptFailed(n, e): return "post script '\(n)' failed: \(e)"
        case let .unsafeFile(src, dst, why): return "recipe file '\(src)' → '\(dst)' refused: \(why)"
        }
    }
}

extension BuildResult {
    /// Puts every output into the content-addressed store (what other agents reference).
    public func store(in store: ArtifactStore) throws -> [Recipe.Format: ArtifactRef] {
        var refs: [Recipe.Format: ArtifactRef] = [:]
        for a in artifacts { refs[a.format] = try store.put(directory.appendingPathComponent(a.file)) }
        return refs
    }
}
