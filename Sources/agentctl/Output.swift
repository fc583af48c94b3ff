import Foundation

/// agentctl's `print`: each call is one write(2) to stdout. Swift's own `print` buffers whole
/// blocks when stdout is a pipe, and `wf submit --watch` lines must show as they happen.
/// (Fixing the C stream's buffering instead means touching `stdout`, a C global that Swift 6
/// does not let us reach safely.)
func print(_ items: Any..., separator: String = " ", terminator: String = "\n") {
    let text = items.map { "\($0)" }.joined(separator: separator) + terminator
    FileHandle.standardOutput.write(Data(text.utf8))
}
