import AgentKernel
import Foundation
import ProsodySandbox
import Synchronization

/// Monotonic nanoseconds (the same clock the bare loop uses).
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func millis(since start: UInt64) -> Double { Double(monotonicNanos() - start) / 1e6 }

struct BenchFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Nearest-rank percentiles over a sample.
struct Sample {
    let sorted: [Double]
    init(_ values: [Double]) { sorted = values.sorted() }
    var count: Int { sorted.count }
    func percentile(_ p: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[Swift.min(sorted.count - 1, Swift.max(0, rank - 1))]
    }
    var p50: Double { percentile(50) }
    var p99: Double { percentile(99) }
    var max: Double { sorted.last ?? .nan }
    var mean: Double { sorted.isEmpty ? .nan : sorted.reduce(0, +) / Double(sorted.count) }
}

/// Processes and the sandbox to tear down on every way out (normal end, error, SIGINT/SIGTERM).
final class Cleanup: Sendable {
    static let shared = Cleanup()
    private let state = Mutex<(sandbox: ProsodyServer?, children: [Int32: String])>((nil, [:]))
    nonisolated(unsafe) private static var signalSources: [any DispatchSourceSignal] = []

    func adopt(_ sandbox: ProsodyServer) { state.withLock { $0.sandbox = sandbox } }
    func adopt(child pid: Int32, name: String) { state.withLock { $0.children[pid] = name } }
    func release(child pid: Int32) { _ = state.withLock { $0.children.removeValue(forKey: pid) } }

    /// Kills children still registered, stops Prosody; idempotent.
    func run() {
        let (sandbox, children) = state.withLock { s -> (ProsodyServer?, [Int32: String]) in
            defer { s.sandbox = nil; s.children = [:] }
            return (s.sandbox, s.children)
        }
        for (pid, _) in children {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        sandbox?.stopAndRemove()
    }

    func installSignalHandlers() {
        let sources = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                FileHandle.standardError.write("baton-bench: signal \(number), cleaning up\n".data(using: .utf8)!)
                Cleanup.shared.run()
                exit(128 + number)
            }
            source.resume()
            return source
        }
        Self.signalSources = sources
    }
}


/// An in-process agent, running until `stop()`.
final class RunningAgent: Sendable {
    let agent: Agent
    let task: Task<Void, Error>

    init(_ agent: Agent, timeout: Double = 15) async throws {
        self.agent = agent
        let (online, signal) = AsyncStream.makeStream(of: Void.self)
        task = Task { try await agent.run(onOnline: { signal.yield() }) }
        let deadline = Task {
            try await Task.sleep(for: .milliseconds(Int(timeout * 1000)))
            signal.finish()
        }
        var iterator = online.makeAsyncIterator()
        let cameOnline = await iterator.next() != nil
        deadline.cancel()
        if !cameOnline {
            await agent.shutdown()
            task.cancel()
            throw BenchFailure("agent \(agent.settings.name) did not come online within \(timeout) s")
        }
    }

    var jid: String { agent.jid }

    func stop() async {
        await agent.shutdown()
        _ = try? await task.value
    }
}

/// Runs blocking work on a thread of its own (the bare libstrophe loop must not sit on the
/// cooperative pool).
func onThread<T: Sendable>(_ name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.name = name
        thread.start()
    }
}

/// VmRSS of a process in kB, from /proc.
func residentKilobytes(of pid: Int32) -> Int? {
    guard let text = readProcFile("/proc/\(pid)/status") else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }
    return nil
}

/// fsync of a small write to a file in `directory`, `count` times: milliseconds each.
func fsyncTimes(in directory: String, count: Int) throws -> [Double] {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let path = directory + "/fsync-probe"
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw BenchFailure("cannot open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd); unlink(path) }
    var times: [Double] = []
    let record = [UInt8](repeating: 0x2a, count: 128)
    for _ in 0..<count {
        let start = monotonicNanos()
        _ = record.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard fsync(fd) == 0 else { throw BenchFailure("fsync failed: \(String(cString: strerror(errno)))") }
        times.append(millis(since: start))
    }
    return times
}

/// Resident kB per mapping (file name, or [heap]/[anon]/[stack]), largest first, from smaps.
func residentBreakdown(of pid: Int32) -> [(String, Int)] {
    guard let text = readProcFile("/proc/\(pid)/smaps") else { return [] }
    var totals: [String: Int] = [:]
    var current = "[anon]"
    for line in text.split(separator: "\n") {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard let first = fields.first else { continue }
        if first.contains("-"), first.first?.isHexDigit == true {
            // A mapping header: address perms offset dev inode [path]
            current = fields.count >= 6 ? String((fields[5].split(separator: "/").last ?? fields[5])) : "[anon]"
        } else if first == "Rss:", fields.count >= 2, let kb = Int(fields[1]) {
            totals[current, default: 0] += kb
        }
    }
    return totals.sorted { $0.value > $1.value }
}

/// /proc files report size 0: read them to the end with read(2).
func readProcFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var data = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        data += buffer[0..<n]
    }
    return String(decoding: data, as: UTF8.self)
}
