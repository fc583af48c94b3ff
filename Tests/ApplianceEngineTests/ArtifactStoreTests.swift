import ChildProcess
import Foundation
import Testing
@testable import ApplianceEngine

@Suite struct ArtifactStoreTests {
    /// A fresh store in a scratch directory, a file holding `text` beside it, and the file stored.
    func storedFile(_ scratch: String, _ text: String) throws -> (base: URL, store: ArtifactStore, file: URL, ref: ArtifactRef) {
        let base = try Fixtures.scratch(scratch)
        let store = try ArtifactStore(root: base.appendingPathComponent("store"))
        let file = base.appendingPathComponent("file")
        try Data(text.utf8).write(to: file)
        return (base, store, file, try store.put(file))
    }

    @Test func putPathAndCorruption() throws {
        let (_, store, f, ref) = try storedFile("cas", "hello")
        #expect(ref.sha256 == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        #expect(ref.uri == "cas:sha256:\(ref.sha256)" && ref.size == 5)
        #expect(try store.put(f) == ref)
        let p = try store.path(for: ref)
        #expect(try Data(contentsOf: p) == Data("hello".utf8))
        // Corrupt the object behind the store's back.
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: p.path)
        try Data("jello".utf8).write(to: p)
        #expect { try store.path(for: ref) } throws: { e in
            guard case .digestMismatch(let uri, _, _, _)? = e as? ArtifactStoreError else { return false }
            return uri == ref.uri && "\(e)".contains("corrupt")
        }
    }

    @Test func gcKeepsOnlyListed() throws {
        let base = try Fixtures.scratch("cas-gc")
        let store = try ArtifactStore(root: base.appendingPathComponent("store"))
        var refs: [ArtifactRef] = []
        for i in 0..<3 {
            let f = base.appendingPathComponent("f\(i)")
            try Data("content \(i)".utf8).write(to: f)
            refs.append(try store.put(f))
        }
        let freed = try store.gc(keep: [refs[1].sha256])
        #expect(freed.removed == 2)
        #expect(!store.contains(refs[0]) && store.contains(refs[1]) && !store.contains(refs[2]))
        #expect(throws: ArtifactStoreError.missing(refs[0].uri)) { try store.path(for: refs[0]) }
    }

    /// Stored again, an object counts as recent (a workflow in flight may need it); an object
    /// put while the collector made its list is not deleted; a copy that fails leaves no file.
    @Test func recentObjectsSurviveAndFailedCopiesLeaveNothing() throws {
        let (base, store, f, ref) = try storedFile("cas-recent", "test report")
        let object = store.objectURL(ref.sha256)
        let twoDaysAgo = Date().addingTimeInterval(-2 * 24 * 3600)
        try FileManager.default.setAttributes([.modificationDate: twoDaysAgo], ofItemAtPath: object.path)
        _ = try store.put(f)
        let renewed = try #require(try FileManager.default.attributesOfItem(atPath: object.path)[.modificationDate] as? Date)
        #expect(renewed > Date().addingTimeInterval(-60))
        // Listed as unreferenced a day ago, stored since: kept.
        #expect(try store.gc(keep: [], storedBefore: Date().addingTimeInterval(-24 * 3600)).removed == 0)
        #expect(store.contains(ref))
        // A source that cannot be read through (a directory): an error, and tmp/ stays empty.
        #expect(throws: (any Error).self) { try store.put(base) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.tmp.path).isEmpty)
    }
}

@Suite struct ToolTests {
    @Test func failureNamesToolAndStderr() {
        #expect { try Tool.run(["sh", "-c", "echo boom-detail >&2; exit 3"]) } throws: { e in
            let d = "\(e)"
            return d.hasPrefix("sh exited with status 3") && d.contains("boom-detail")
        }
        #expect { try Tool.run(["baton-no-such-tool"]) } throws: { e in
            (e as? ToolError)?.reason == .notFound && "\(e)".contains("baton-no-such-tool")
        }
    }

    /// Each run used to leave its two pipes' descriptors open (Foundation's Process keeps them):
    /// an agent passing 1024 has libstrophe's select() abort it.
    @Test func runsLeaveNoDescriptorsOpen() throws {
        func open() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0 }
        _ = try Tool.run(["true"])
        let before = open()
        for _ in 0..<100 { _ = try Tool.run(["sh", "-c", "echo out; echo err >&2"]) }
        #expect(open() - before < 20, "\(open() - before) more descriptors open after 100 runs")
    }

    /// A tool killed by a signal (the OOM killer's SIGKILL) is reported so, by the signal's
    /// name: Foundation gives the signal's number as the status, and it read "exited with status 9".
    @Test func aSignalIsNamedNotTakenForAStatus() {
        #expect { try Tool.run(["sh", "-c", "kill -KILL $$"]) } throws: { e in
            (e as? ToolError)?.reason == .ended(.killed(signal: 9)) && "\(e)".hasPrefix("sh killed by SIGKILL")
        }
        #expect(ProcessEnd.killed(signal: 15).status == 143)
        #expect("\(ProcessEnd.killed(signal: 15))" == "killed by SIGTERM" && ProcessEnd.signalName(31) == "SIGSYS")
        #expect(ProcessEnd.signalName(40) == "signal 40")
    }

    @Test func timeoutKills() {
        let t0 = Date()
        #expect { try Tool.run(["sleep", "30"], timeout: 1) } throws: { e in (e as? ToolError)?.reason == .timedOut(1) }
        #expect(Date().timeIntervalSince(t0) < 5)
    }

    /// A timeout stops the tool's whole process group, not only the tool: a shell's background
    /// job used to run on, holding the output pipe, so the run waited for it too.
    @Test func aTimeoutStopsWhatTheToolStarted() throws {
        let pidFile = FileManager.default.temporaryDirectory.appendingPathComponent("baton-job-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: pidFile) }
        let t0 = Date()
        #expect { try Tool.run(["sh", "-c", "sleep 30 & echo $! > \(pidFile.path); sleep 30; wait"], timeout: 1) } throws: { e in
            (e as? ToolError)?.reason == .timedOut(1)
        }
        #expect(Date().timeIntervalSince(t0) < 8)
        let job = try #require(Int32(String(decoding: try Data(contentsOf: pidFile), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(!Self.isRunning(job), "the background job \(job) still runs")
    }

    /// A tool that exits leaving a job that holds its output: the run returns with what was
    /// written (it waited for the job, 30 s here, and would for ever for a daemon) and the job
    /// is stopped. The job closes its other descriptors, as daemons do (one of them is how
    /// Foundation learns that the tool ended; a job that kept it would hold the end back, till
    /// the step's time limit stops the group).
    @Test func aJobLeftHoldingTheOutputDoesNotKeepTheRun() throws {
        let pidFile = FileManager.default.temporaryDirectory.appendingPathComponent("baton-job-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: pidFile) }
        let t0 = Date()
        let daemonLike = "import os, time; os.closerange(3, 65536); time.sleep(30)"
        let output = try Tool.run(["sh", "-c", "python3 -c '\(daemonLike)' & echo $! > \(pidFile.path); echo done"])
        #expect(Date().timeIntervalSince(t0) < 10)
        #expect(output.stdoutString == "done\n")
        let job = try #require(Int32(String(decoding: try Data(contentsOf: pidFile), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)))
        // Killed: its descriptors close a moment before it is seen to end.
        for _ in 0..<20 where Self.isRunning(job) { Thread.sleep(forTimeInterval: 0.1) }
        #expect(!Self.isRunning(job), "the background job \(job) still runs")
    }

    /// Whether `pid` is there and not a zombie.
    static func isRunning(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(close, offsetBy: 2)] != "Z"
    }
}
