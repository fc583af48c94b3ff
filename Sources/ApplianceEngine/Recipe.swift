import Foundation

/// An appliance recipe (in the spirit of BoxGrinder's .appl). Parsed by `Recipe.load`.
public struct Recipe: Codable, Equatable, Sendable {
    public struct Version: Codable, Equatable, Sendable {
        public var major: Int
        public var minor: Int
        public var string: String { "\(major).\(minor)" }
    }
    public struct OS: Codable, Equatable, Sendable {
        public var suite: String
        public var architecture: String
    }
    public enum Profile: String, Codable, Sendable, CaseIterable { case micro, debian }
    public enum Format: String, Codable, Sendable, CaseIterable, Comparable {
        case tar, squashfs, ext4, qcow2, initramfs, kernel
        public static func < (a: Format, b: Format) -> Bool { a.rawValue < b.rawValue }
    }
    public struct FileEntry: Codable, Equatable, Sendable {
        /// Relative to the recipe's directory.
        public var source: String
        /// Absolute path inside the image.
        public var destination: String
        public var mode: Int
        public var uid: Int
        public var gid: Int
    }
    public struct PostScript: Codable, Equatable, Sendable {
        public var name: String
        public var script: String
    }
    public struct ContainerTest: Codable, Equatable, Sendable {
        public var name: String
        public var script: String
    }
    public struct VMCheck: Codable, Equatable, Sendable {
        public var name: String
        public var run: String
        public init(name: String, run: String) { self.name = name; self.run = run }
    }
    public struct Tests: Codable, Equatable, Sendable {
        public var container: [ContainerTest] = []
        public var vm: [VMCheck] = []
    }
    public enum ContextMethod: String, Codable, Sendable, CaseIterable {
        /// cloud-init NoCloud seed (label cidata, user-data + meta-data).
        case nocloud
        /// glideinWMS user data: base64(ini)####extra args.
        case glideinwms
        /// glideinWMS debug mode: a plain ini file.
        case ini
    }
    public struct Context: Codable, Equatable, Sendable {
        public var method: ContextMethod = .nocloud
        public var hostname: String?
        /// Seconds; the VM is killed when it runs longer.
        public var maxLifetime: Int = 300
        /// Allowed max_lifetime, in seconds: up to a day.
        public static let maxLifetimeRange = 1...86_400
        /// glideinWMS extra arguments (the part after ####).
        public var args: String?
        public var memoryMB: Int = 256
    }

    public var name: String
    public var version: Version
    public var os: OS
    public var profile: Profile
    public var packages: [String]
    public var files: [FileEntry] = []
    public var post: [PostScript] = []
    public var formats: [Format]
    public var tests = Tests()
    public var context = Context()
    /// Directory that `files[].source` is relative to; not part of the canonical form.
    public var baseDirectory: String? = nil

    enum CodingKeys: String, CodingKey {
        case name, version, os, profile, packages, files, post, formats, tests, context
    }

    /// Canonical JSON: sorted keys, no whitespace, so equal recipes have equal digests.
    public func canonical() throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try enc.encode(self)
    }

    public func digest() throws -> String { SHA256Hex.of(data: try canonical()) }

    /// Absolute URL of a file entry's source.
    public func sourceURL(_ entry: FileEntry) -> URL { sourceDirectory.appendingPathComponent(entry.source) }

    /// The directory `files[].source` is relative to.
    public var sourceDirectory: URL { URL(fileURLWithPath: baseDirectory ?? FileManager.default.currentDirectoryPath) }

    /// Digest of the contents of all `files` sources: the build cache key must change when a
    /// file changes even if the recipe text does not.
    public func filesDigest() throws -> String {
        var lines = ""
        for f in files {
            lines += "\(f.source)=\(try SHA256Hex.of(file: sourceURL(f)).sha256)\n"
        }
        return SHA256Hex.of(string: lines)
    }
}
