import Foundation

/// Numbers from requests and configurations become integers (nanoseconds, cgroup quotas, bytes),
/// and one out of range traps and takes the launcher down. Each is checked here against its
/// documented range first, so bad input gets an error naming the field and the range.
enum NumberLimits {
    /// Timeouts of commands and run-once containers, in seconds: up to a week.
    static let timeoutSeconds: ClosedRange<Double> = 0...604_800
    /// limits.cpu, in CPUs: from the smallest quota the kernel takes (1 ms per 100 ms) to 1024.
    static let cpus: ClosedRange<Double> = 0.01...1024
    /// limits.memory, in bytes: up to 1 PiB.
    static let memoryBytes: ClosedRange<Int64> = 1...(1 << 50)

    /// `value` if it is finite and inside `range`.
    @discardableResult
    static func check(_ value: Double, _ field: String, in range: ClosedRange<Double>, unit: String) throws -> Double {
        guard value.isFinite, range.contains(value) else {
            throw LauncherError.invalidField(field, reason: "must be from \(text(range.lowerBound)) to \(text(range.upperBound)) \(unit), "
                                             + "not \(text(value))")
        }
        return value
    }

    /// A timeout in seconds, checked, as nanoseconds.
    @discardableResult
    static func timeoutNanoseconds(_ seconds: Double?) throws -> UInt64? {
        try seconds.map { UInt64(try check($0, "timeout", in: timeoutSeconds, unit: "seconds") * 1e9) }
    }

    /// 300 rather than 300.0; anything else as Swift prints it (1e+20, inf, nan).
    static func text(_ x: Double) -> String {
        x.isFinite && x == x.rounded() && abs(x) < 1e18 ? String(Int64(x)) : "\(x)"
    }
}
