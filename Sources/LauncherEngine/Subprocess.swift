import ChildProcess
import Foundation

/// Result of a finished child process.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var output: String
    /// True when the timeout fired and the child was killed.
    public var timedOut: Bool = false
}

/// Runs host commands (runc, tar, sha256sum) without blocking the Swift
/// concurrency pool: waiting happens in Process' termination handler, and
/// output goes to a temp file so a chatty child can never fill a pipe and
/// deadlock us.
enum Subprocess {
    /// Runs `argv`, waits, returns status and combined stdout+stderr. With `stopOnCancel`, a
    /// cancel of the calling task stops the child as a timeout does (`onTimeout`, e.g. `runc
    /// kill`, then SIGKILL): a cancelled build step used to wait for its post script's
    /// container to finish. Opt-in: the cleanup after a cancel (`runc delete`) runs in the
    /// same cancelled task and must not be stopped.
    static func run(_ argv: [String], stdoutPath: String? = nil, timeout: Double? = nil, stopOnCancel: Bool = false,
                    onTimeout: (@Sendable () async -> Void)? = nil) async throws -> ProcessResult {
        let nanoseconds = try NumberLimits.timeoutNanoseconds(timeout)
        let capture = stdoutPath ?? NSTemporaryDirectory() + "baton-sp-\(UUID().uuidString)"
        if stdoutPath == nil || !FileManager.default.fileExists(atPath: capture) {
            _ = FileManager.default.createFile(atPath: capture, contents: nil)
        }
        defer { if stdoutPath == nil { try? FileManager.default.removeItem(atPath: capture) } }
        guard let out = FileHandle(forWritingAtPath: capture) else {
            throw LauncherError.ioFailure("cannot open \(capture) for writing")
        }
        out.seekToEndOfFile()
        let proc = Process()
        proc.executableURL = URL(fileURLWithPath: argv[0])
        proc.arguments = Array(argv.dropFirst())
        proc.standardInput = FileHandle.nullDevice
        proc.standardOutput = out
        proc.standardError = out
        let box = ProcessBox(proc)
        let stop: @Sendable () async -> Void = {
            await onTimeout?()
            box.kill()
        }
        let status: Int32 = try await withTaskCancellationHandler { try await withCheckedThrowingContinuation { cont in
            proc.terminationHandler = { p in cont.resume(returning: ProcessEnd(p).status) }  // 128 + N when killed by signal N, as a shell says
            do { try proc.runWithCleanSignals() } catch {
                proc.terminationHandler = nil
                cont.resume(throwing: LauncherError.ioFailure("cannot start \(argv[0]): \(error)"))
                return
            }
            // Cancelled before the start: the handler below found nothing running.
            if stopOnCancel, Task.isCancelled { Task { await stop() } }
            if let nanoseconds {
                Task {
                    try? await Task.sleep(nanoseconds: nanoseconds)
                    if box.isRunning {
                        box.timedOut = true
                        await stop()
                    }
                }
            }
        } } onCancel: {
            if stopOnCancel { Task { await stop() } }
        }
        try? out.close()
        let text = stdoutPath == nil ? ((try? String(contentsOfFile: capture, encoding: .utf8)) ?? "") : ""
        return ProcessResult(status: status, output: text, timedOut: box.timedOut)
    }

    /// Like `run` but throws `runtimeFailed` on a non-zero exit.
    @discardableResult
    static func check(_ argv: [String]) async throws -> String {
        let r = try await run(argv)
        guard r.status == 0 else {
            throw LauncherError.runtimeFailed(command: argv.joined(separator: " "), status: r.status,
                                              output: r.output.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return r.output
    }
}

/// Process is not Sendable; this box confines the few cross-task touches
/// (timeout kill) behind a lock.
private final class ProcessBox: @unchecked Sendable {
    private let proc: Process
    private let lock = NSLock()
    private var _timedOut = false
    init(_ p: Process) { proc = p }
    var isRunning: Bool { proc.isRunning }
    var timedOut: Bool {
        get { lock.withLock { _timedOut } }
        set { lock.withLock { _timedOut = newValue } }
    }
    func kill() { if proc.isRunning { Foundation.kill(proc.processIdentifier, SIGKILL) } }
}
