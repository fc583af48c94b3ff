import ChildProcess
import Foundation

/// Result of one external tool run.
public struct ToolOutput: Sendable {
    public let stdout: Data
    public let stderr: Data
    /// How the tool ended (exit status or signal).
    public let end: ProcessEnd
    /// Its exit status, or 128 + the signal that killed it.
    public var status: Int32 { end.status }
    public var stdoutString: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrString: String { String(decoding: stderr, as: UTF8.self) }
}

/// Failure of an external tool; the description names the tool and the tail of its stderr
/// because that is what an operator needs to see first.
public struct ToolError: Error, CustomStringConvertible, Sendable {
    public enum Reason: Sendable, Equatable {
        case notFound
        case launchFailed(String)
        /// Ended other than with status 0 (exited, or killed by a signal).
        case ended(ProcessEnd)
        case timedOut(TimeInterval)
        /// Its step was cancelled (a workflow cancel, a time limit): the tool was killed.
        case cancelled
    }
    public let tool: String
    public let argv: [String]
    public let reason: Reason
    public let stderrTail: String

    public var description: String {
        let what: String
        switch reason {
        case .notFound: what = "not found in PATH (install it with apt-get)"
        case .launchFailed(let e): what = "could not be started: \(e)"
        case .ended(let end): what = "\(end)"
        case .timedOut(let t): what = "timed out after \(Int(t)) s and was killed"
        case .cancelled: what = "was killed: its step was cancelled"
        }
        let tail = stderrTail.isEmpty ? "" : "\n--- stderr tail ---\n\(stderrTail)"
        return "\(tool) \(what) (argv: \(argv.joined(separator: " ")))\(tail)"
    }
}

/// Runs real tools via Foundation.Process; every engine step goes through here.
public enum Tool {
    /// sbin directories are added because root tools (mke2fs, mkfs.vfat) live there and a
    /// non-login PATH often lacks them.
    static let extraPath = ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin", "/bin"]

    public static func find(_ name: String) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        for dir in path + extraPath {
            let candidate = dir + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Environment of the current process (less its secrets) plus `overrides`, with the sbin
    /// dirs on PATH.
    static func environment(_ overrides: [String: String]?) -> [String: String] {
        var env = ChildEnvironment.inherited
        env["PATH"] = ((env["PATH"].map { [$0] } ?? []) + extraPath).joined(separator: ":")
        env["LC_ALL"] = "C"  // stable, parseable tool output
        for (k, v) in overrides ?? [:] { env[k] = v }
        return env
    }

    @discardableResult
    public static func run(_ argv: [String], env: [String: String]? = nil, cwd: URL? = nil,
                           timeout: TimeInterval? = nil, stdin: Data? = nil,
                           checkStatus: Bool = true) throws -> ToolOutput {
        precondition(!argv.isEmpty, "empty argv")
        let name = argv[0]
        guard let exe = find(name) else {
            throw ToolError(tool: name, argv: argv, reason: .notFound, stderrTail: "")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: exe)
        process.arguments = Array(argv.dropFirst())
        process.environment = environment(env)
        if let cwd { process.currentDirectoryURL = cwd }
        let outPipe = Pipe(), errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        let inPipe: Pipe? = stdin == nil ? nil : Pipe()
        process.standardInput = inPipe ?? FileHandle.nullDevice

        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        if ThreadCancel.current?.isCancelled == true {
            throw ToolError(tool: name, argv: argv, reason: .cancelled, stderrTail: "")
        }
        do { try process.runBoundToThisProcess() } catch {
            throw ToolError(tool: name, argv: argv, reason: .launchFailed("\(error)"), stderrTail: "")
        }
        // Drain both pipes concurrently: a tool filling one pipe while we block on the other
        // would deadlock.
        let outBox = DataBox(), errBox = DataBox()
        let readers = DispatchGroup()
        for (pipe, box) in [(outPipe, outBox), (errPipe, errBox)] {
            DispatchQueue.global().async(group: readers) {
                box.data = pipe.fileHandleForReading.readDataToEndOfFile()
            }
        }
        if let inPipe, let stdin {
            DispatchQueue.global().async {
                try? inPipe.fileHandleForWriting.write(contentsOf: stdin)
                try? inPipe.fileHandleForWriting.close()
            }
        }
        let end = done.waitUnlessCancelled(timeout: timeout)
        let ended = end == .signalled || stop(process.processIdentifier, exited: done, gently: end == .timedOut)
        var drained = readers.wait(timeout: .now() + (end == .signalled ? Self.outputGrace : 5)) == .success
        if !drained, end == .signalled {
            // The tool is done but something it started still holds its output (a daemon, a
            // background job): what is left of its group is stopped — a step's tool must not
            // outlive it, nor keep the step waiting — and the output read so far is kept.
            kill(-process.processIdentifier, SIGKILL)
            drained = readers.wait(timeout: .now() + 5) == .success
        }
        // Bounded: a process that left the group may still hold a pipe. Its handles are then
        // left open (closing one under a blocked reader could have it read another file that
        // reused the number).
        if drained {
            // Closed here, not left to the handles' deallocation: Foundation's Process keeps its
            // pipes alive, and each run left two descriptors open — an agent running a few hundred
            // tools passed 1024, where libstrophe's select() aborts the process.
            for pipe in [outPipe, errPipe] { try? pipe.fileHandleForReading.close() }
        }
        // The status only once Process has seen the end (it traps otherwise).
        let output = ToolOutput(stdout: outBox.data, stderr: errBox.data, end: ended ? ProcessEnd(process) : .exited(-1))
        switch end {
        case .timedOut: throw ToolError(tool: name, argv: argv, reason: .timedOut(timeout ?? 0), stderrTail: tail(output.stderrString))
        case .cancelled: throw ToolError(tool: name, argv: argv, reason: .cancelled, stderrTail: tail(output.stderrString))
        case .signalled: break
        }
        if checkStatus && output.status != 0 {
            throw ToolError(tool: name, argv: argv, reason: .ended(output.end), stderrTail: tail(output.stderrString))
        }
        return output
    }

    /// How long the output may go on after the tool exited (what it started still writing).
    static let outputGrace: TimeInterval = 2

    /// Stops the process group led by `pid` (`Process` makes each child a group leader): the
    /// whole group, as a shell's children would run on and hold its output pipes. `gently`
    /// (a timeout): SIGTERM first, SIGKILL after 3 s. Whether the end was then reported,
    /// waiting 5 s at most: a process that left the group can hold Process's report back.
    static func stop(_ pid: Int32, exited: DispatchSemaphore, gently: Bool) -> Bool {
        if gently {
            kill(-pid, SIGTERM)
            if exited.wait(timeout: .now() + 3) == .success { return true }
        }
        kill(-pid, SIGKILL)
        return exited.wait(timeout: .now() + 5) == .success
    }

    static func tail(_ s: String, lines: Int = 15) -> String {
        s.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// Mutable holder handed to reader threads; each box has exactly one writer.
final class DataBox: @unchecked Sendable {
    var data = Data()
}
