import AgentKernel
import ChildProcess
import Foundation

/// Runs a program with a timeout, capturing its combined output (keeping the tail).
/// The shared way modules call real tools (mksquashfs, qemu-img, runc, …).
public struct ProcessRunner: Sendable {
    public struct Result: Sendable {
        public var status: Int32
        public var output: String
        public var timedOut: Bool
        public var tail: String { Self.tail(of: output) }
        static func tail(of text: String, lines: Int = 30) -> String {
            text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
        }
    }

    public init() {}

    /// SIGKILLs `pid` and every descendant (children keep the output pipe open otherwise, and
    /// a cancelled or timed-out step must not leave work running).
    public static func killTree(_ pid: Int32) {
        var children: [Int32: [Int32]] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let child = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, let parent = Int32(fields[1]) { children[parent, default: []].append(child) }
        }
        var queue = [pid], all: [Int32] = []
        while let next = queue.popLast() {
            all.append(next)
            queue += children[next] ?? []
        }
        for victim in all { kill(victim, SIGKILL) }
    }

    static let setpriv: String? = ["/usr/bin/setpriv", "/bin/setpriv"].first { FileManager.default.isExecutableFile(atPath: $0) }

    public func run(_ argv: [String], environment: [String: String]? = nil, directory: URL? = nil,
                    timeout: Double, maxOutput: Int = 1 << 20) async throws -> Result {
        let process = Process()
        var argv = argv
        if Self.setpriv != nil {
            // If the agent is killed, its tools die with it instead of finishing a step whose
            // result nobody will record (the step reruns when the agent comes back).
            argv = [Self.setpriv!, "--pdeathsig", "KILL", "--"] + argv
        }
        process.executableURL = URL(fileURLWithPath: argv[0].hasPrefix("/") ? argv[0] : "/usr/bin/env")
        process.arguments = argv[0].hasPrefix("/") ? Array(argv.dropFirst()) : argv
        if let environment { process.environment = environment }
        if let directory { process.currentDirectoryURL = directory }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        let finished = Locked(false)
        let exited = AsyncStream<Void>.makeStream()
        process.terminationHandler = { _ in
            finished.withLock { $0 = true }
            exited.continuation.finish()
        }
        try process.runWithCleanSignals()
        // One reader, to the end of the output (every writer gone), on a thread of its own: a
        // readability handler cleared after the exit could still hold a last chunk (an error
        // message on stderr) and add it after the result was taken — the log tail then lacked it.
        let reader = pipe.fileHandleForReading
        let output = Task { try await offloaded { Self.readAll(reader, keepingLast: maxOutput) } }
        let timedOut = Locked(false)
        let pid = process.processIdentifier
        let watchdog = Task {
            try await Task.sleep(for: .milliseconds(Int(timeout * 1000)))
            timedOut.withLock { $0 = true }
            Self.killTree(pid)
        }
        await withTaskCancellationHandler {
            for await _ in exited.stream {}
        } onCancel: {
            Self.killTree(pid)
        }
        watchdog.cancel()
        process.waitUntilExit()
        let collected = try await output.value
        return Result(status: process.terminationStatus, output: String(decoding: collected, as: UTF8.self), timedOut: timedOut.value)
    }

    /// Everything `handle` gives until end of file, but only the last `limit` bytes: the end
    /// holds the error.
    static func readAll(_ handle: FileHandle, keepingLast limit: Int) -> Data {
        var data = Data()
        while true {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            data.append(chunk)
            // Trimmed now and then, not on every chunk: each trim moves the whole buffer.
            if data.count > 2 * limit { data.removeFirst(data.count - limit) }
        }
        if data.count > limit { data.removeFirst(data.count - limit) }
        return data
    }
}
