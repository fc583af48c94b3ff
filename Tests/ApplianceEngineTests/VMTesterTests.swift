import ChildProcess
import Foundation
import Testing
@testable import ApplianceEngine

extension HeavySuite {
    @Suite struct VMTesterTests {
        static let checks = [
            Recipe.VMCheck(name: "root is an overlay", run: "grep -q '^overlay / overlay' /proc/mounts"),
            Recipe.VMCheck(name: "motd installed", run: "grep -q 'micro appliance' /etc/motd"),
            Recipe.VMCheck(name: "hostname from context", run: "test \"$(hostname)\" = ctx-vm"),
            Recipe.VMCheck(name: "no network interface but lo", run: "test \"$(ls /sys/class/net)\" = lo"),
        ]

        func image() throws -> VMImage {
            try #require(VMImage(build: try Fixtures.microBuild()))
        }

        func tester() throws -> VMTester { VMTester(workDir: try Fixtures.scratch("vm")) }

        @Test func noCloudBootRunsChecksAndPowersOff() throws {
            let ctx = Recipe.Context(method: .nocloud, hostname: "ctx-vm", maxLifetime: 120)
            let heard = Heard()
            let r = try tester().run(image: try image(), checks: Self.checks, context: ctx, name: "nocloud", progress: heard.add)
            // Progress on the way: the accelerator, then the boot, while the VM runs.
            #expect(heard.lines.count == 2, "\(heard.lines)")
            #expect(heard.lines.first?.hasPrefix("\(r.accelerator.rawValue.uppercased()): ") == true, "\(heard.lines)")
            #expect(heard.lines.last?.hasPrefix("booted in ") == true && heard.lines.last?.hasSuffix("; the guest runs its 4 checks") == true, "\(heard.lines)")
            print("vm nocloud: accel \(r.accelerator) (\(r.acceleratorNote)), boot \(r.bootSeconds.map { String(format: "%.2f", $0) } ?? "-") s, total \(String(format: "%.2f", r.totalSeconds)) s")
            #expect(r.outcome == .poweredOff, "\(r.serialLog)")
            #expect(r.tap.plan == 4)
            #expect(r.checkFailure == nil, "\(r.serialLog)")
            #expect(r.passed)
            #expect(r.serialLog.contains("method=nocloud"))
            #expect(r.junitXML.contains("tests=\"4\" failures=\"0\""))
        }

        @Test func glideinWMSUserDataWithArgsAndAFailingCheck() throws {
            let ctx = Recipe.Context(method: .glideinwms, hostname: "ctx-vm", maxLifetime: 120, args: "-cluster 42 -subcluster 7")
            let checks = Self.checks + [
                Recipe.VMCheck(name: "glidein args delivered", run: "test \"$BATON_ARGS\" = '-cluster 42 -subcluster 7'"),
                Recipe.VMCheck(name: "deliberately failing", run: "echo expected-failure-output; false"),
            ]
            let r = try tester().run(image: try image(), checks: checks, context: ctx, name: "glidein")
            print("vm glideinwms: accel \(r.accelerator), boot \(r.bootSeconds.map { String(format: "%.2f", $0) } ?? "-") s, total \(String(format: "%.2f", r.totalSeconds)) s")
            #expect(r.outcome == .poweredOff)
            #expect(r.serialLog.contains("method=glideinwms"))
            #expect(r.tap.plan == 6)
            #expect(r.tap.lines.prefix(5).filter { !$0.ok }.isEmpty, "\(r.serialLog)")
            let last = try #require(r.tap.lines.last)
            #expect(!last.ok && last.diagnostics.contains("expected-failure-output"))
            #expect(!r.passed)
            #expect(r.junitXML.contains("failures=\"1\""))
        }

        @Test func debugIniUserData() throws {
            let ctx = Recipe.Context(method: .ini, hostname: "ctx-vm", maxLifetime: 120)
            let r = try tester().run(image: try image(), checks: Self.checks, context: ctx, name: "ini")
            #expect(r.serialLog.contains("method=ini"))
            #expect(r.passed, "\(r.serialLog)")
        }

        @Test func vmThatNeverPowersOffIsKilledAtMaxLifetime() throws {
            let ctx = Recipe.Context(method: .nocloud, hostname: "ctx-vm", maxLifetime: 15)
            let checks = [Recipe.VMCheck(name: "hangs", run: "sleep 100000")]
            let r = try tester().run(image: try image(), checks: checks, context: ctx, name: "hang")
            #expect(r.outcome == .killedAtMaxLifetime(seconds: 15))
            #expect(r.totalSeconds >= 15 && r.totalSeconds < 25)
            #expect(r.tap.plan == 1 && r.tap.lines.isEmpty, "guest should have started the check: \(r.serialLog)")
            #expect(!r.passed)
            #expect(r.junitXML.contains("max_lifetime of 15 s exceeded"))
        }

        /// A cancel of the step (workflow cancel, time limit) reaches the VM: qemu is killed
        /// and the run ends at once, where it used to wait out max_lifetime.
        @Test func aCancelledRunKillsQemu() async throws {
            let ctx = Recipe.Context(method: .nocloud, hostname: "ctx-vm", maxLifetime: 120)
            let checks = [Recipe.VMCheck(name: "hangs", run: "sleep 100000")]
            let (tester, image, name) = (try tester(), try image(), "cancel-\(UUID().uuidString.prefix(8))")
            let cancel = ThreadCancel()
            let started = Date()
            let run = Task {
                try await withCheckedThrowingContinuation { continuation in
                    Thread.detachNewThread {
                        continuation.resume(with: Result { try cancel.installed { try tester.run(image: image, checks: checks, context: ctx, name: name) } })
                    }
                }
            }
            // Cancelled once qemu runs (its command line names the run).
            while Self.qemuRunning(name) == false, Date().timeIntervalSince(started) < 30 { try await Task.sleep(for: .milliseconds(50)) }
            #expect(Self.qemuRunning(name))
            cancel.cancel()
            await #expect { try await run.value } throws: { ($0 as? ToolError)?.reason == .cancelled }
            #expect(Date().timeIntervalSince(started) < 60)
            #expect(!Self.qemuRunning(name))
        }

        /// Whether a live (not zombie) process has `name` on its command line.
        static func qemuRunning(_ name: String) -> Bool {
            ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).contains { pid in
                guard Int(pid) != nil, let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
                      String(decoding: cmdline, as: UTF8.self).contains(name), String(decoding: cmdline, as: UTF8.self).contains("qemu"),
                      let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
                return !stat.contains(") Z ")
            }
        }
    }
}

@Suite struct KVMProbeTests {
    /// A probe cut short by its step's cancel is no verdict on KVM: it throws, where it used to
    /// answer TCG ("probe failed") — an answer `accelerator` keeps for the rest of the host's boot.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/dev/kvm")))
    func aCancelledProbeGivesNoAnswer() throws {
        let none = URL(fileURLWithPath: "/nonexistent")
        let cancel = ThreadCancel()
        cancel.cancel()
        #expect { try cancel.installed { try VMTester(workDir: none).probe(VMImage(kernel: none, initramfs: none, rootfs: none)) } } throws: { e in
            (e as? ToolError)?.reason == .cancelled
        }
    }
}

/// Progress lines, in order, from whichever thread reports them.
final class Heard: @unchecked Sendable {
    private let lock = NSLock()
    private var collected: [String] = []
    var lines: [String] { lock.lock(); defer { lock.unlock() }; return collected }
    @Sendable func add(_ line: String) { lock.lock(); collected.append(line); lock.unlock() }
}
