import Foundation

/// How a child process ended. Foundation's `terminationStatus` is the exit status or, when
/// `terminationReason` is `.uncaughtSignal`, the signal's number: read alone, an OOM kill was
/// reported as "exited with status 9".
public enum ProcessEnd: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case killed(signal: Int32)

    /// The end of a process Foundation has seen end.
    public init(_ process: Process) {
        self = process.terminationReason == .uncaughtSignal ? .killed(signal: process.terminationStatus) : .exited(process.terminationStatus)
    }

    /// As a shell gives it: the exit status, or 128 + the signal.
    public var status: Int32 {
        switch self {
        case .exited(let status): status
        case .killed(let signal): 128 + signal
        }
    }

    /// "exited with status 3", "killed by SIGKILL".
    public var description: String {
        switch self {
        case .exited(let status): "exited with status \(status)"
        case .killed(let signal): "killed by \(Self.signalName(signal))"
        }
    }

    /// `SIGKILL` for 9; `signal 40` for one without a name here.
    public static func signalName(_ signal: Int32) -> String {
        let names = ["HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM",
                     "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF",
                     "WINCH", "IO", "PWR", "SYS"]  // Linux's numbers, 1 to 31
        return (1...Int32(names.count)).contains(signal) ? "SIG" + names[Int(signal) - 1] : "signal \(signal)"
    }
}
