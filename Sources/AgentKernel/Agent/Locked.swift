import Synchronization

/// A shareable, lock-protected value (a `Mutex` in a class, so closures can hold it).
///
/// Do not keep a bare function type (or an optional one) as `Value`: every `withLock` passes
/// the value `inout` through generic code, and Swift re-wraps a function in a reabstraction
/// thunk on each such round trip, so the stored closure grows one thunk deeper per access and
/// calls through it get slower without bound (measured: the agent's load callback, once per
/// step). Put the function in a struct field instead.
public final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    public init(_ value: Value) { mutex = Mutex(value) }
    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R { try mutex.withLock { try body(&$0) } }
    public var value: Value { mutex.withLock { $0 } }
}
