import ChildProcess
import Foundation
import Testing
@testable import ApplianceEngine

/// Snapshots of one repository run one at a time: they share apt's lists, state and download
/// cache, which two apt runs at once would corrupt.
@Suite struct RepositoryLockTests {
    @Test func aSnapshotWaitsForTheOneInProgress() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("baton-repo-lock-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: root) }
        // Nothing listens on port 9: were the snapshot not waiting, apt would fail at once.
        let snapshotter = try RepositorySnapshotter(root: root, mirror: "http://127.0.0.1:9/debian", securityMirror: .some(nil))
        let inProgress = try RepositoryLock(at: root.appendingPathComponent(".snapshot.lock"))
        #expect(try inProgress.acquire(waiting: false))

        let cancel = ThreadCancel()
        let outcome = Outcome()
        let finished = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            do {
                _ = try cancel.installed { try snapshotter.snapshot(suite: "bookworm", architecture: "amd64", packages: ["busybox"]) }
                outcome.text = "finished"
            } catch {
                outcome.text = error is CancellationError ? "cancelled" : "\(error)"
            }
            finished.signal()
        }
        #expect(finished.wait(timeout: .now() + 1) == .timedOut, "it did not wait")
        #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("aptroot").path))
        cancel.cancel()
        #expect(finished.wait(timeout: .now() + 5) == .success)
        #expect(outcome.text == "cancelled")
        inProgress.release()

        // Released, the next one is taken at once.
        let next = try RepositoryLock(at: root.appendingPathComponent(".snapshot.lock"))
        #expect(try next.acquire(waiting: false))
        next.release()
    }
}

/// Written by the thread before it signals, read after the signal.
private final class Outcome: @unchecked Sendable { var text: String? }
