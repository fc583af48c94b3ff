import Foundation

/// What the engine remembers about an instance across restarts.
public struct InstanceRecord: Codable, Equatable, Sendable {
    public var name: String
    public var configKey: String
    /// Bundle directory (holds config.json, rootfs, upper/work, log).
    public var directory: String
    /// Host overlay mount points, in mount order (unmounted in reverse).
    public var hostMounts: [String]
    public var startedAt: Date
    public init(name: String, configKey: String, directory: String, hostMounts: [String], startedAt: Date) {
        self.name = name; self.configKey = configKey; self.directory = directory
        self.hostMounts = hostMounts; self.startedAt = startedAt
    }
}

/// Persistence for configs and instances; the engine is the only writer.
/// Kept small so an SQLite-backed store can replace the JSON files.
public protocol LauncherStateStore: Sendable {
    func loadConfigs() throws -> [LauncherConfig]
    func saveConfig(_ config: LauncherConfig) throws
    func loadInstances() throws -> [InstanceRecord]
    func saveInstance(_ record: InstanceRecord) throws
    func removeInstance(named name: String) throws
}

/// One JSON file per config and per instance under `<stateDir>/store`.
/// Writes are atomic (temp + rename) so a crash never leaves a torn file.
public struct JSONFileStateStore: LauncherStateStore {
    let configsDir: String
    let instancesDir: String

    public init(stateDir: String) throws {
        configsDir = "\(stateDir)/store/configs"
        instancesDir = "\(stateDir)/store/instances"
        for d in [configsDir, instancesDir] {
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        }
    }

    private static func fileName(_ key: String) -> String { key.replacingOccurrences(of: " ", with: "_") + ".json" }

    private func load<T: Decodable>(_ dir: String) throws -> [T] {
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".json") }.sorted()
        let dec = JSONDecoder(); dec.dateDecodingStrategy = .secondsSince1970
        return try names.map { try dec.decode(T.self, from: Data(contentsOf: URL(fileURLWithPath: "\(dir)/\($0)"))) }
    }

    private func save<T: Encodable>(_ value: T, _ path: String) throws {
        let enc = JSONEncoder(); enc.dateEncodingStrategy = .secondsSince1970
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(value).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    public func loadConfigs() throws -> [LauncherConfig] { try load(configsDir) }
    public func saveConfig(_ config: LauncherConfig) throws {
        try save(config, "\(configsDir)/\(Self.fileName(config.key))")
    }
    public func loadInstances() throws -> [InstanceRecord] { try load(instancesDir) }
    public func saveInstance(_ record: InstanceRecord) throws {
        try save(record, "\(instancesDir)/\(Self.fileName(record.name))")
    }
    public func removeInstance(named name: String) throws {
        let p = "\(instancesDir)/\(Self.fileName(name))"
        if FileManager.default.fileExists(atPath: p) { try FileManager.default.removeItem(atPath: p) }
    }
}
