import ChildProcess
import Foundation
import Synchronization

public struct VMImage: Sendable {
    public let kernel: URL
    public let initramfs: URL
    public let rootfs: URL  // squashfs
    public init(kernel: URL, initramfs: URL, rootfs: URL) {
        self.kernel = kernel; self.initramfs = initramfs; self.rootfs = rootfs
    }
    public init?(build: BuildResult) {
        guard let k = build.url(.kernel), let i = build.url(.initramfs), let r = build.url(.squashfs) else { return nil }
        self.init(kernel: k, initramfs: i, rootfs: r)
    }
}

public enum Accelerator: String, Sendable { case kvm, tcg }

public enum VMOutcome: Sendable, Equatable {
    /// The guest powered itself off.
    case poweredOff
    /// The VM outlived max_lifetime and was killed.
    case killedAtMaxLifetime(seconds: Int)
    /// qemu exited with an error before the guest finished.
    case qemuFailed(end: ProcessEnd, stderr: String)
}

public struct VMTestReport: Sendable {
    public let outcome: VMOutcome
    public let accelerator: Accelerator
    /// Why this accelerator (e.g. "KVM probe timed out after 10 s").
    public let acceleratorNote: String
    /// Seconds from qemu start until the guest printed its TAP plan; nil if it never did.
    public let bootSeconds: Double?
    public let totalSeconds: Double
    public let tap: TAPResult
    public let junitXML: String
    public let serialLog: String
    /// How many checks the guest was given.
    public let expectedChecks: Int

    /// Why the checks did not pass (see `TAPResult.failure(expecting:)`), or nil.
    public var checkFailure: String? { tap.failure(expecting: expectedChecks) }
    public var passed: Bool { outcome == .poweredOff && checkFailure == nil }
}

/// Boots kernel + initramfs + squashfs in qemu with direct kernel boot and no network,
/// contextualises through a seed disk and collects TAP from the serial console.
public final class VMTester: Sendable {
    public let workDir: URL
    public let kvmProbeTimeout: TimeInterval
    /// Process-wide: whether KVM works is a property of the host, and a hung probe costs
    /// the whole probe timeout.
    private static let probeResult = Mutex<(Accelerator, String)?>(nil)

    public init(workDir: URL, kvmProbeTimeout: TimeInterval = 10) {
        self.workDir = workDir
        self.kvmProbeTimeout = kvmProbeTimeout
    }

    func baseArgs(_ accel: Accelerator, memoryMB: Int) -> [String] {
        ["qemu-system-x86_64", "-accel", accel.rawValue, "-m", String(memoryMB), "-smp", "1",
         "-nodefaults", "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot", "-nic", "none"]
    }

    /// KVM only if /dev/kvm exists and a probe boot (initramfs reached, then power off)
    /// finishes in time: on some hosts a KVM guest hangs instead of failing. Throws if the
    /// probe was cancelled (its step was): nothing is learnt, and nothing kept.
    public func accelerator(image: VMImage) throws -> (Accelerator, String) {
        try Self.probeResult.withLock { cached in
            if let cached { return cached }
            if let remembered = rememberedProbe() {
                cached = remembered
                return remembered
            }
            let r = try probe(image)
            remember(r)
            cached = r
            return r
        }
    }

    /// The probe's answer is kept on disk for the rest of this host boot (keyed by the kernel's
    /// boot id): KVM does not come and go without a reboot, and a hung probe costs seconds
    /// every time an agent starts.
    private var probeFile: URL { workDir.appendingPathComponent("kvm-probe.json") }
    private static var bootID: String {
        (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown"
    }

    private func rememberedProbe() -> (Accelerator, String)? {
        guard let data = try? Data(contentsOf: probeFile),
              let record = try? JSONDecoder().decode([String: String].self, from: data),
              record["boot_id"] == Self.bootID, let accel = record["accelerator"].flatMap(Accelerator.init(rawValue:)),
              let note = record["note"] else { return nil }
        return (accel, note + " (probed earlier this boot)")
    }

    private func remember(_ result: (Accelerator, String)) {
        try? FileManager.default.createDirectory(at: workDir, withIntermediateDirectories: true)
        let record = ["boot_id": Self.bootID, "accelerator": result.0.rawValue, "note": result.1]
        try? JSONEncoder().encode(record).write(to: probeFile, options: .atomic)
    }

    func probe(_ image: VMImage) throws -> (Accelerator, String) {
        guard FileManager.default.fileExists(atPath: "/dev/kvm") else { return (.tcg, "no /dev/kvm") }
        let argv = baseArgs(.kvm, memoryMB: 128) + ["-kernel", image.kernel.path, "-initrd", image.initramfs.path,
                                                  "-append", "console=ttyS0 quiet panic=-1 baton.probe"]
        let t0 = Date()
        do {
            let out = try Tool.run(argv, timeout: kvmProbeTimeout)
            if out.stdoutString.contains("baton-probe: initramfs reached") {
                return (.kvm, String(format: "KVM probe boot succeeded in %.1f s", Date().timeIntervalSince(t0)))
            }
            return (.tcg, "KVM probe boot did not reach the initramfs; using TCG")
        } catch let e as ToolError {
            if e.reason == .cancelled { throw e }  // not a verdict on KVM: remembered, it would hold for the boot
            if case .timedOut = e.reason { return (.tcg, "KVM probe boot hung (> \(Int(kvmProbeTimeout)) s); using TCG") }
            return (.tcg, "KVM probe failed (\(e.reason)); using TCG")
        } catch {
            return (.tcg, "KVM probe failed: \(error); using TCG")
        }
    }

    /// Boots the image once with `checks` delivered as user data in `context.method` form.
    /// `progress` hears the accelerator chosen, then the guest's plan when it has booted: a VM
    /// test may run for many minutes.
    public func run(image: VMImage, checks: [Recipe.VMCheck], context: Recipe.Context, name: String,
                    accelerator forced: Accelerator? = nil, progress: @escaping @Sendable (String) -> Void = { _ in }) throws -> VMTestReport {
        let (accel, note) = try forced.map { ($0, "forced by caller") } ?? accelerator(image: image)
        progress("\(accel.rawValue.uppercased()): \(note)")
        let dir = workDir.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let seed = dir.appendingPathComponent("seed.img")
        try ContextSeed.makeDisk(files: ContextSeed.files(context: context, checks: checks, instanceID: name), at: seed)

        let argv = baseArgs(accel, memoryMB: context.memoryMB) + [
            "-kernel", image.kernel.path, "-initrd", image.initramfs.path,
            "-append", "console=ttyS0 quiet loglevel=3 panic=-1 baton.root=/dev/vda",
            "-drive", "file=\(image.rootfs.path),format=raw,if=virtio,readonly=on",
            "-drive", "file=\(seed.path),format=raw,if=virtio,readonly=on",
        ]
        let run = try QemuRun.start(argv) { [started = Date()] in
            progress(String(format: "booted in %.1f s; the guest runs its %d checks", Date().timeIntervalSince(started), checks.count))
        }
        let end = run.wait(timeout: TimeInterval(context.maxLifetime))
        let total = Date().timeIntervalSince(run.started)
        let outcome: VMOutcome
        if end != .signalled {
            run.kill()
            if end == .cancelled { throw ToolError(tool: argv[0], argv: argv, reason: .cancelled, stderrTail: Tool.tail(run.stderr.text)) }
            outcome = .killedAtMaxLifetime(seconds: context.maxLifetime)
        } else if run.end != .exited(0) {
            outcome = .qemuFailed(end: run.end, stderr: Tool.tail(run.stderr.text))
        } else {
            outcome = .poweredOff
        }
        let log = run.console.text
        try? Data(log.utf8).write(to: workDir.appendingPathComponent("\(name)-serial.log"))
        let tap = TAPResult.parse(log)
        let error: String? = switch outcome {
        // A plan short of the checks given shows as no testcase at all otherwise.
        case .poweredOff: tap.planMismatch(expecting: checks.count)
        case .killedAtMaxLifetime(let s): "killed: max_lifetime of \(s) s exceeded"
        case let .qemuFailed(end, stderr): "qemu \(end): \(stderr)"
        }
        return VMTestReport(outcome: outcome, accelerator: accel, acceleratorNote: note,
                            bootSeconds: run.console.planSeen.map { $0.timeIntervalSince(run.started) },
                            totalSeconds: total, tap: tap, junitXML: tap.junitXML(suite: name, seconds: total, error: error),
                            serialLog: log, expectedChecks: checks.count)
    }
}

/// Accumulates console output and remembers when the TAP plan appeared (boot time).
final class ConsoleCapture: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private var plan: Date?
    private let watchPlan: Bool
    /// Called once, when the plan appears (outside the lock).
    private let onPlan: (@Sendable () -> Void)?
    init(watchPlan: Bool, onPlan: (@Sendable () -> Void)? = nil) {
        self.watchPlan = watchPlan
        self.onPlan = onPlan
    }

    func append(_ chunk: Data) {
        lock.lock()
        // Only the new bytes, and the three before them a plan line may start in: decoding the
        // whole log at every chunk made a chatty guest's console cost quadratic time.
        let from = max(0, data.count - 3)
        data.append(chunk)
        let seenNow = watchPlan && plan == nil && data[(data.startIndex + from)...].range(of: Self.planStart) != nil
        if seenNow { plan = Date() }
        lock.unlock()
        if seenNow { onPlan?() }
    }

    private static let planStart = Data("\n1..".utf8)
    var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: data, as: UTF8.self) }
    var planSeen: Date? { lock.lock(); defer { lock.unlock() }; return plan }
}

/// A running qemu whose console is read as it arrives (to time the boot).
final class QemuRun: @unchecked Sendable {
    let process = Process()
    let console: ConsoleCapture
    let stderr = ConsoleCapture(watchPlan: false)
    let exited = DispatchSemaphore(value: 0)
    /// The two pipe readers, done at end of file.
    private let readers = DispatchGroup()
    /// Their handles, closed once both are done (Foundation's Process keeps them open).
    private let handles = Mutex<[FileHandle]>([])
    let started = Date()

    private init(onPlan: (@Sendable () -> Void)?) { console = ConsoleCapture(watchPlan: true, onPlan: onPlan) }

    /// Starts qemu; `onPlan` is called when the guest's TAP plan appears on its console.
    static func start(_ argv: [String], onPlan: (@Sendable () -> Void)? = nil) throws -> QemuRun {
        let r = QemuRun(onPlan: onPlan)
        guard let exe = Tool.find(argv[0]) else {
            throw ToolError(tool: argv[0], argv: argv, reason: .notFound, stderrTail: "")
        }
        r.process.executableURL = URL(fileURLWithPath: exe)
        r.process.arguments = Array(argv.dropFirst())
        r.process.environment = Tool.environment(nil)
        r.process.standardInput = FileHandle.nullDevice
        let out = Pipe(), err = Pipe()
        r.process.standardOutput = out
        r.process.standardError = err
        let exited = r.exited
        r.process.terminationHandler = { _ in exited.signal() }
        do { try r.process.runBoundToThisProcess() } catch {
            throw ToolError(tool: argv[0], argv: argv, reason: .launchFailed("\(error)"), stderrTail: "")
        }
        // A reader per pipe, to end of file, on threads of their own: the console is watched as
        // it arrives, and `drain` waits for them, so nothing read is added after the result is
        // taken (readability handlers could still hold a last chunk after they were cleared).
        r.handles.withLock { $0 = [out.fileHandleForReading, err.fileHandleForReading] }
        for (pipe, capture) in [(out, r.console), (err, r.stderr)] {
            let handle = pipe.fileHandleForReading, readers = r.readers
            readers.enter()
            Thread.detachNewThread {
                while case let chunk = handle.availableData, !chunk.isEmpty { capture.append(chunk) }
                readers.leave()
            }
        }
        return r
    }

    /// Waits for qemu to end, up to `timeout` or a cancel of the work on this thread.
    func wait(timeout: TimeInterval) -> WaitOutcome {
        let end = exited.waitUnlessCancelled(timeout: timeout)
        if end == .signalled { drain() }
        return end
    }

    /// Kills qemu's process group; waits for its end (bounded: see `Tool.stop`) and its output.
    func kill() {
        _ = Tool.stop(process.processIdentifier, exited: exited, gently: false)
        drain()
    }

    /// Waits (after the exit) for the readers to reach the end of both pipes. Bounded: a
    /// child of qemu still holding a pipe must not hold the test forever.
    private func drain() {
        // Closed only when both readers are done: a handle closed under a reader would leave
        // it reading a descriptor number that may belong to another file by then.
        guard readers.wait(timeout: .now() + 10) == .success else { return }
        for handle in handles.withLock({ h in defer { h = [] }; return h }) { try? handle.close() }
    }

    var end: ProcessEnd { ProcessEnd(process) }
}
