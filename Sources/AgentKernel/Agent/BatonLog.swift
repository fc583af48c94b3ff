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

    public func log(event: LogEvent) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let extra = self.metadata.merging(event.metadata ?? [:]) { _, new in new }
        FileHandle.standardError.write(Data(Self.line(at: now, pid: Self.pid, level: event.level, label: label,
                                                      message: "\(event.message)", metadata: extra).utf8))
    }

    /// One log line, newline included: `[2026-11-28 15:47:03.120][4711][INFO,build::launcher] text k=v`.
    static func line(at time: timespec, pid: Int32, level: Logger.Level, label: String, message: String,
                     metadata: Logger.Metadata) -> String {
        var seconds = time.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        // Written by hand: an agent logs several lines per hand-off at info, some on its I/O
        // thread, and String(format:) goes through Foundation's formatter for each.
        func padded(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
        }
        let stamp = "\(padded(parts.tm_year + 1900, 4))-\(padded(parts.tm_mon + 1, 2))-\(padded(parts.tm_mday, 2)) "
            + "\(padded(parts.tm_hour, 2)):\(padded(parts.tm_min, 2)):\(padded(parts.tm_sec, 2)).\(padded(Int32(time.tv_nsec / 1_000_000), 3))"
        let suffix = metadata.isEmpty ? "" : " " + metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        return "[\(stamp)][\(pid)][\(level.rawValue.uppercased()),\(label)] \(message)\(suffix)\n"
    }
}

public enum BatonLog {
    /// Set once by agentd/agentctl from their --log-level option.
    nonisolated(unsafe) public static var level: Logger.Level = ProcessInfo.processInfo.environment["BATON_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info

    public static func logger(agent: String, module: String) -> Logger {
        Logger(label: "\(agent)::\(module)") { BatonLogHandler(label: $0, level: level) }
    }
}
