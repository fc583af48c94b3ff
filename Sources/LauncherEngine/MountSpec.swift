import Foundation

/// One `mounts` entry: "<source> <destination> READ|READWRITE".
public struct MountSpec: Codable, Equatable, Hashable, Sendable {
    public enum Mode: String, Codable, Sendable { case read = "READ", readWrite = "READWRITE" }

    public var source: String
    /// Normalised absolute path inside the container (no trailing slash, no `.`).
    public var destination: String
    public var mode: Mode

    public init(source: String, destination: String, mode: Mode) {
        self.source = source; self.destination = destination; self.mode = mode
    }

    /// Parses and validates a spec string; every rejection names the spec.
    public static func parse(_ spec: String) throws -> MountSpec {
        let parts = spec.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard parts.count == 3 else {
            throw LauncherError.invalidMountSpec(spec, reason: parts.count < 3
                ? "expected '<source> <destination> READ|READWRITE', got \(parts.count) part(s)"
                : "expected exactly 3 parts, got \(parts.count)")
        }
        guard let mode = Mode(rawValue: parts[2]) else {
            throw LauncherError.invalidMountSpec(spec, reason: "mode '\(parts[2])' is not READ or READWRITE")
        }
        let dest = try normaliseDestination(parts[1], spec: spec)
        // A relative source is looked up in the image directory; `..` would let
        // a config reach files outside it.
        if !parts[0].hasPrefix("/") && parts[0].split(separator: "/").contains("..") {
            throw LauncherError.invalidMountSpec(spec, reason: "source '\(parts[0])' escapes the image directory")
        }
        return MountSpec(source: parts[0], destination: dest, mode: mode)
    }

    /// Destinations must be absolute, free of `..`, and not the root itself:
    /// they are joined onto host paths when mount points are created.
    static func normaliseDestination(_ raw: String, spec: String) throws -> String {
        guard raw.hasPrefix("/") else {
            throw LauncherError.invalidMountSpec(spec, reason: "destination '\(raw)' is not an absolute path")
        }
        let comps = raw.split(separator: "/").map(String.init).filter { $0 != "." && !$0.isEmpty }
        if comps.contains("..") {
            throw LauncherError.invalidMountSpec(spec, reason: "destination '\(raw)' contains '..'")
        }
        guard !comps.isEmpty else {
            throw LauncherError.invalidMountSpec(spec, reason: "destination '/' would hide the whole root filesystem")
        }
        return "/" + comps.joined(separator: "/")
    }

    public var specString: String { "\(source) \(destination) \(mode.rawValue)" }
}
