import Foundation
import Synchronization

/// The cancel of blocking work running on a thread of its own (`offloaded` steps: builds,
/// snapshots, VM tests). Such work cannot see its task's cancellation, so a cancelled step
/// (a workflow cancel, its time limit) ran to its end, tools and all. Waits for a child
/// process watch `current` and kill the child's process group once it is cancelled.
public final class ThreadCancel: Sendable {
    private let cancelled = Atomic(false)

    public init() {}

    public var isCancelled: Bool { cancelled.load(ordering: .acquiring) }

    public func cancel() { cancelled.store(true, ordering: .releasing) }

    private static let threadKey = "baton.ThreadCancel"

    /// The cancel of the work running on this thread, if it runs under one.
    public static var current: ThreadCancel? { Thread.current.threadDictionary[threadKey] as? ThreadCancel }

    /// Runs `body` on this thread with `self` as `current`.
    public func installed<T>(_ body: () throws -> T) rethrows -> T {
        let dictionary = Thread.current.threadDictionary
        let previous = dictionary[Self.threadKey]
        dictionary[Self.threadKey] = self
        defer { dictionary[Self.threadKey] = previous }
        return try body()
    }
}

/// How a wait under `ThreadCancel` ended.
public enum WaitOutcome: Sendable { case signalled, timedOut, cancelled }

extension DispatchSemaphore {
    /// Waits for a signal up to `timeout` (nil: without end), or until the work on this thread is
    /// cancelled (`ThreadCancel.current`), looking every 0.1 s.
    public func waitUnlessCancelled(timeout: TimeInterval? = nil) -> WaitOutcome {
        let deadline = timeout.map { Date(timeIntervalSinceNow: $0) }
        let cancel = ThreadCancel.current
        while wait(timeout: .now() + 0.1) == .timedOut {
            if cancel?.isCancelled == true { return .cancelled }
            if let deadline, Date() >= deadline { return .timedOut }
        }
        return .signalled
    }
}
