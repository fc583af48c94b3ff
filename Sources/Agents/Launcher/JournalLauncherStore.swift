import AgentKernel
import Foundation
import LauncherEngine

/// The launcher's configs and instances, kept in the agent's journal (SQLite), so `list` is
/// right after an agent restart.
struct JournalLauncherStore: LauncherStateStore {
    let journal: Journal
    static let configs = "launcher/config/", instances = "launcher/instance/"

    private static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .secondsSince1970
        e.outputFormatting = [.sortedKeys]
        return e
    }()
    private static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .secondsSince1970
        return d
    }()

    func loadConfigs() throws -> [LauncherConfig] {
        try journal.records(prefix: Self.configs).map { try Self.decoder.decode(LauncherConfig.self, from: Data($0.json.utf8)) }
    }
    func saveConfig(_ config: LauncherConfig) throws {
        try journal.setRecord(Self.configs + "\(config.name) \(config.major) \(config.minor)",
                              json: String(decoding: try Self.encoder.encode(config), as: UTF8.self))
    }
    func loadInstances() throws -> [InstanceRecord] {
        try journal.records(prefix: Self.instances).map { try Self.decoder.decode(InstanceRecord.self, from: Data($0.json.utf8)) }
    }
    func saveInstance(_ record: InstanceRecord) throws {
        try journal.setRecord(Self.instances + record.name, json: String(decoding: try Self.encoder.encode(record), as: UTF8.self))
    }
    func removeInstance(named name: String) throws { try journal.setRecord(Self.instances + name, json: nil) }
}
