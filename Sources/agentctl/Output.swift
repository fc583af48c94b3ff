import Foundation

/// agentctl's `print`: each call is one write(2) to stdout. Swift's own `print` buffers whole
/// blocks when stdout is a pipe, and `wf submit --watch` lines must show as they happen.
/// (Fixing the C stream's buffering instead means touching `stdout`, a C global that Swift 6
/// does not let us reach safely.)
func print(_ items: Any..., separator: String = " ", terminator: String = "\n") {
    Output.write(items.map { "\($0)" }.joined(separator: separator) + terminator, to: STDOUT_FILENO)
}

enum Output {
    /// Writes all of `text` with write(2). Foundation's `FileHandle.write` traps on any error,
    /// and SIGPIPE is ignored (the XMPP connection must not die of it): so a reader that went
    /// away (`agentctl wf list | head -1`) ends agentctl here, quietly, with the status SIGPIPE
    /// would have given (141). Other errors (a full disk behind a redirection) lose the text.
    static func write(_ text: String, to fd: Int32) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0, errno == EINTR { continue }
            if written < 0, errno == EPIPE, fd == STDOUT_FILENO { exit(141) }
            guard written > 0 else { return }
            bytes = bytes.dropFirst(written)
        }
    }
}
