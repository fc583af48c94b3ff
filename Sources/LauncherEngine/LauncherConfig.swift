import Foundation

/// Resource limits; each maps to a field of the OCI linux.resources block.
public struct ResourceLimits: Codable, Equatable, Hashable, Sendable {
    public var memoryBytes: Int64?
    public var pids: Int64?
    /// Fraction of CPUs (0.5 = half a core), turned into a CFS quota.
    public var cpus: Double?
    public init(memoryBytes: Int64? = nil, pids: Int64? = nil, cpus: Double? = nil) {
        self.memoryBytes = memoryBytes; self.pids = pids; self.cpus = cpus
    }
    public var isEmpty: Bool { memoryBytes == nil && pids == nil && cpus == nil }
}

public enum NetworkMode: String, Codable, Sendable { case none, host }

/// A validated appliance configuration as uploaded by a user.
public struct LauncherConfig: Codable, Equatable, Hashable, Sendable {
    public var name: String
    public var major: String
    public var minor: String
    public var baseImage: String
    public var mounts: [MountSpec]
    public var startupScript: String
    public var startupOwner: String
    public var startupEnv: String
    public var network: NetworkMode
    public var limits: ResourceLimits

    public init(name: String, major: String, minor: String, baseImage: String, mounts: [MountSpec] = [],
                startupScript: String, startupOwner: String = "root", startupEnv: String = "",
                network: NetworkMode = .none, limits: ResourceLimits = .init()) {
        self.name = name; self.major = major; self.minor = minor; self.baseImage = baseImage
        self.mounts = mounts; self.startupScript = startupScript; self.startupOwner = startupOwner
        self.startupEnv = startupEnv; self.network = network; self.limits = limits
    }

    /// "name major.minor", the identity used for duplicates and launches.
    public var key: String { Self.key(name, major, minor) }
    static func key(_ n: String, _ ma: String, _ mi: String) -> String { "\(n) \(ma).\(mi)" }

    public enum Format: String, Sendable { case json, yaml }

    public static func parse(_ data: Data, format: Format) throws -> LauncherConfig {
        let tree = format == .json ? try ConfigValue.parseJSON(data) : try ConfigValue.parseYAML(data)
        guard case .object(let o) = tree else {
            throw LauncherError.malformedConfig(format: format.rawValue.uppercased(),
                                                detail: "top level must be a mapping, got \(tree.typeName)")
        }
        return try LauncherConfig(fields: o)
    }

    init(fields o: [String: ConfigValue]) throws {
        name = try Self.identifier(o, "name")
        major = try Self.identifier(o, "major")
        minor = try Self.identifier(o, "minor")
        baseImage = try Self.string(o, "base_image", required: true)!
        if baseImage.isEmpty { throw LauncherError.invalidField("base_image", reason: "empty") }
        switch o["mounts"] {
        case nil, .null?: mounts = []
        case .array(let items)?:
            mounts = try items.enumerated().map { i, v in
                guard case .string(let s) = v else { throw LauncherError.mistypedField("mounts[\(i)]", expected: "a string") }
                return try MountSpec.parse(s)
            }
        case let other?: throw LauncherError.mistypedField("mounts", expected: "a list of strings, got \(other.typeName)")
        }
        startupScript = try Self.string(o, "startup_script", required: true)!
        guard startupScript.hasPrefix("/"), !startupScript.split(separator: "/").contains("..") else {
            throw LauncherError.invalidField("startup_script", reason: "'\(startupScript)' must be an absolute path without '..'")
        }
        startupOwner = try Self.string(o, "startup_owner", required: false) ?? "root"
        if startupOwner.isEmpty { startupOwner = "root" }
        startupEnv = try Self.string(o, "startup_env", required: false) ?? ""
        _ = try EnvExpander.parse(startupEnv) // reject malformed entries at upload, not at launch
        let net = try Self.string(o, "network", required: false) ?? "none"
        guard let n = NetworkMode(rawValue: net) else {
            throw LauncherError.invalidField("network", reason: "'\(net)' is not 'none' or 'host'")
        }
        network = n
        limits = try Self.limits(o["limits"])
    }

    private static func string(_ o: [String: ConfigValue], _ f: String, required: Bool) throws -> String? {
        switch o[f] {
        case .string(let s)?: return s
        case nil, .null?:
            if required { throw LauncherError.missingField(f) }
            return nil
        case let other?: throw LauncherError.mistypedField(f, expected: "a string, got \(other.typeName)")
        }
    }

    /// name/major/minor become runc container ids and directory names, so
    /// they are restricted to a path- and id-safe alphabet.
    private static func identifier(_ o: [String: ConfigValue], _ f: String) throws -> String {
        let s = try string(o, f, required: true)!
        let ok = !s.isEmpty && s.count <= 64 && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
        guard ok else { throw LauncherError.invalidField(f, reason: "'\(s)' must be 1-64 characters of [A-Za-z0-9_-]") }
        return s
    }

    private static func limits(_ v: ConfigValue?) throws -> ResourceLimits {
        guard let v, v != .null else { return .init() }
        guard case .object(let o) = v else { throw LauncherError.mistypedField("limits", expected: "a mapping, got \(v.typeName)") }
        var r = ResourceLimits()
        for key in o.keys where !["memory", "pids", "cpu"].contains(key) {
            throw LauncherError.invalidField("limits.\(key)", reason: "unknown limit (use memory, pids, cpu)")
        }
        if let m = o["memory"] { r.memoryBytes = try parseBytes(scalar(m, "limits.memory"), field: "limits.memory") }
        if let p = o["pids"] {
            guard let n = Int64(try scalar(p, "limits.pids")), n > 0 else {
                throw LauncherError.invalidField("limits.pids", reason: "must be a positive integer")
            }
            r.pids = n
        }
        if let c = o["cpu"] {
            guard let d = Double(try scalar(c, "limits.cpu")) else {
                throw LauncherError.invalidField("limits.cpu", reason: "must be a positive number of CPUs")
            }
            r.cpus = try NumberLimits.check(d, "limits.cpu", in: NumberLimits.cpus, unit: "CPUs")
        }
        return r
    }

    private static func scalar(_ v: ConfigValue, _ f: String) throws -> String {
        switch v {
        case .string(let s), .number(let s): return s.trimmingCharacters(in: .whitespaces)
        default: throw LauncherError.mistypedField(f, expected: "a number or string, got \(v.typeName)")
        }
    }

    /// Accepts "268435456", "256M", "1G", "512k".
    static func parseBytes(_ s: String, field: String) throws -> Int64 {
        let units: [Character: Int64] = ["k": 1 << 10, "m": 1 << 20, "g": 1 << 30]
        var digits = s.lowercased()
        if digits.hasSuffix("b") { digits.removeLast() }
        var mult: Int64 = 1
        if let last = digits.last, let u = units[last] { mult = u; digits.removeLast() }
        guard let n = Int64(digits), n > 0 else {
            throw LauncherError.invalidField(field, reason: "'\(s)' is not a size like 268435456 or 256M")
        }
        let (bytes, overflow) = n.multipliedReportingOverflow(by: mult)
        guard !overflow, NumberLimits.memoryBytes.contains(bytes) else {
            throw LauncherError.invalidField(field, reason: "'\(s)' is more than 1 PiB (\(NumberLimits.memoryBytes.upperBound) bytes), the largest size allowed")
        }
        return bytes
    }

    /// One line of `cfginfo`.
    public var summaryLine: String {
        var s = "\(name) \(major).\(minor) base=\(baseImage) mounts=\(mounts.count) script=\(startupScript) owner=\(startupOwner) network=\(network.rawValue)"
        if let m = limits.memoryBytes { s += " memory=\(m)" }
        if let p = limits.pids { s += " pids=\(p)" }
        if let c = limits.cpus { s += " cpu=\(c)" }
        return s
    }
}
