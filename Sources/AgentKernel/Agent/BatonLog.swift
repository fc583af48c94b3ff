import Foundation
import Logging

/// Log lines in iAgent's shape: `[2026-11-28 15:47:03.120][4711][INFO,build::launcher] text`.
public struct BatonLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String
    private static let pid = ProcessInfo.processInfo.processIdentifier

    public init(label: String, level: Logger.Level) {
        self.label = label
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?,
                    source: String, file: String, function: String, line: UInt) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let stamp = String(format: "%04d-%02d-%02d %02d:%02d:%02d.%03d", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                           parts.tm_hour, parts.tm_min, parts.tm_sec, Int(now.tv_nsec / 1_000_000))
        let extra = self.metadata.merging(metadata ?? [:]) { _, new in new }
        let suffix = extra.isEmpty ? "" : " " + extra.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let text = "[\(stamp)][\(Self.pid)][\(level.rawValue.uppercased()),\(label)] \(message)\(suffix)\n"
        FileHandle.standardError.write(text.data(using: .utf8)!)
    }
}

public enum BatonLog {
    /// Set once by agentd/agentctl from their --log-level option.
    nonisolated(unsafe) public static var level: Logger.Level = ProcessInfo.processInfo.environment["BATON_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info

    public static func logger(agent: String, module: String) -> Logger {
        Logger(label: "\(agent)::\(module)") { BatonLogHandler(label: $0, level: level) }
    }
}
