import AgentKernel
import ChildProcess
import Foundation

/// Runs a program with a timeout, capturing its combined output (keeping the tail).
/// The shared way modules call real tools (mksquashfs, qemu-img, runc, …).
public struct ProcessRunner: Sendable {
    public struct Result: Sendable {
        /// How the command ended (exit status or signal).
        public var end: ProcessEnd
        /// Its exit status, or 128 + the signal that killed it.
        public var status: Int32 { end.status }
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
            guard let child = Int32(entry), let fields = statFields(child) else { continue }
            if fields.count > 1, let parent = Int32(fields[1]) { children[parent, default: []].append(child) }
        }
        var queue = [pid], all: [Int32] = []
        while let next = queue.popLast() {
            all.append(next)
            queue += children[next] ?? []
        }
        for victim in all { kill(victim, SIGKILL) }
    }

    /// Allowed `timeout`, in seconds: up to a week.
    public static let timeoutRange: ClosedRange<Double> = 0.001...604_800

    public func run(_ argv: [String], environment: [String: String]? = nil, directory: URL? = nil,
                    timeout: Double, maxOutput: Int = 1 << 20) async throws -> Result {
        let timeoutMilliseconds = Int(try NumberArgument.checked(timeout, "timeout", in: Self.timeoutRange, unit: "seconds") * 1000)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0].hasPrefix("/") ? argv[0] : "/usr/bin/env")
        process.arguments = argv[0].hasPrefix("/") ? Array(argv.dropFirst()) : argv
        process.environment = environment ?? ChildEnvironment.inherited
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
        try process.runBoundToThisProcess()  // dies with the agent
        // One reader, to the end of the output (every writer gone), on a thread of its own: a
        // readability handler cleared after the exit could still hold a last chunk (an error
        // message on stderr) and add it after the result was taken — the log tail then lacked it.
        let reader = pipe.fileHandleForReading
        let abandon = Locked(false)
        let output = Task { try await offloaded { Self.readAll(reader, keepingLast: maxOutput, until: abandon) } }
        let timedOut = Locked(false)
        let pid = process.processIdentifier
        let watchdog = Task {
            try await Task.sleep(for: .milliseconds(timeoutMilliseconds))
            timedOut.withLock { $0 = true }
            Self.killTree(pid)
        }
        // Foundation reports the end only once every process holding the command's launch
        // socket is gone — background jobs (`daemon &`) inherit it. So the command's own end is
        // watched too (it stays a zombie until Foundation reaps it): after a moment for its
        // last output, what it left running in its process group is killed.
        let leftBehind = Locked(false)
        let endBeforeStop = Locked<ProcessEnd?>(nil)
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { for await _ in exited.stream {} }
                group.addTask {
                    while !Task.isCancelled, !Self.hasEnded(pid) {
                        try? await Task.sleep(for: .milliseconds(100))
                    }
                    try? await Task.sleep(for: Self.outputGrace)
                    guard !Task.isCancelled, !finished.value else { return }
                    // Read before the stop: the stop lets Foundation reap the command.
                    endBeforeStop.withLock { $0 = Self.end(of: pid) }
                    leftBehind.withLock { $0 = true }
                    kill(-pid, SIGKILL)
                    abandon.withLock { $0 = true }  // for any that left the group holding the output
                }
                await group.next()
                group.cancelAll()
            }
        } onCancel: {
            Self.killTree(pid)
        }
        watchdog.cancel()
        if !finished.value, !leftBehind.value {
            // Cancelled: the waits above ended at once, the command was only just killed. Its
            // end comes in milliseconds; bounded all the same.
            var waited = 0
            while !finished.value, waited < 500 { usleep(10_000); waited += 1 }
        }
        var collected = try await output.value
        // Read to its end (or abandoned): closed here, as Foundation's Process keeps the pipe and
        // its descriptor alive — two per command, until libstrophe's select() fails past 1024.
        try? reader.close()
        if leftBehind.value {
            collected.append(Data("\n[baton: the command ended but left processes running; they were stopped]\n".utf8))
        }
        // After a stop, the status read from the unreaped command (Foundation may not have
        // reaped it yet, or ever, if a process that left the group holds the launch socket).
        let end = leftBehind.value ? (endBeforeStop.value ?? .exited(255))
            : finished.value ? ProcessEnd(process) : (Self.end(of: pid) ?? .exited(255))
        return Result(end: end, output: String(decoding: collected, as: UTF8.self), timedOut: timedOut.value)
    }

    /// How long output is still read after the command ended, before what it left running is stopped.
    static let outputGrace = Duration.seconds(2)

    /// Whether `pid` has ended (a zombie not yet reaped, or gone).
    static func hasEnded(_ pid: Int32) -> Bool {
        guard let fields = statFields(pid) else { return true }
        return fields.first == "Z"
    }

    /// The fields of `/proc/PID/stat` after the command name (state, parent, …); nil if gone.
    /// Split after the last `)`: the name itself may hold spaces and parentheses.
    private static func statFields(_ pid: Int32) -> [Substring]? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ")
    }

    /// How an ended, unreaped `pid` ended, without reaping it (Foundation still will).
    static func end(of pid: Int32) -> ProcessEnd? {
        var info = siginfo_t()
        guard waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT | WNOHANG) == 0 else { return nil }
        switch info.si_code {
        case Int32(CLD_EXITED): return .exited(info._sifields._sigchld.si_status)
        case Int32(CLD_KILLED), Int32(CLD_DUMPED): return .killed(signal: info._sifields._sigchld.si_status)
        default: return nil
        }
    }

    /// Everything `handle` gives until end of file (or until `abandon` is set), but only the
    /// last `limit` bytes: the end holds the error. Polls, so that `abandon` is seen while no
    /// data comes.
    static func readAll(_ handle: FileHandle, keepingLast limit: Int, until abandon: Locked<Bool>) -> Data {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        let fd = handle.fileDescriptor
        while !abandon.value {
            var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, 100) > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count == 0 { break }  // end of file: every writer is gone
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                break
            }
            data.append(contentsOf: buffer[0..<count])
            // Trimmed now and then, not on every chunk: each trim moves the whole buffer.
            if data.count > 2 * limit { data.removeFirst(data.count - limit) }
        }
        if data.count > limit { data.removeFirst(data.count - limit) }
        return data
    }
}
