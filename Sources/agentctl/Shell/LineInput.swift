import AgentKernel
import Foundation

/// Where the shell's lines come from: a terminal (prompt, history in ~/.baton_history) or a
/// script on stdin (no prompt, no history: nothing but the commands' own output).
///
/// When stdin and stdout are both terminals, each line is edited in raw mode
/// (`TerminalLineEditor`): cursor keys, Home/End, Ctrl-A/E/B/F/K/U/W/L, Up/Down (Ctrl-P/N)
/// through the history, Tab completion from the caller's completer, Ctrl-C drops the line,
/// Ctrl-D on an empty line ends input. Otherwise (a script on stdin, or output piped away) lines
/// are read with plain `readLine`, exactly as a script expects: no escape codes.
final class LineInput: Sendable {
    let interactive: Bool
    let historyFile: String
    /// Set when stdin and stdout are both terminals.
    private let editor: TerminalLineEditor?
    private let history: Locked<[String]>
    static let historyLimit = 1000

    /// $HOME first (Foundation's home directory on Linux ignores it), then the account's.
    static var defaultHistoryFile: String {
        let home = ProcessInfo.processInfo.environment["HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? FileManager.default.homeDirectoryForCurrentUser.path
        return (home as NSString).appendingPathComponent(".baton_history")
    }

    init(historyFile: String = LineInput.defaultHistoryFile) {
        interactive = isatty(STDIN_FILENO) != 0
        editor = interactive && isatty(STDOUT_FILENO) != 0 ? TerminalLineEditor() : nil
        self.historyFile = historyFile
        let saved = interactive ? (try? String(contentsOfFile: historyFile, encoding: .utf8)) ?? "" : ""
        history = Locked(saved.split(separator: "\n").map(String.init))
    }

    var lines: [String] { history.value }

    /// The next line (prompting on a terminal), or nil at end of input. `completer` serves Tab
    /// when the line is edited on a terminal.
    func next(prompt: String, completer: LineEditor.Completer? = nil) async -> String? {
        if let editor {
            let history = lines
            // Reading keys blocks too: off the cooperative threads like readLine below.
            return await withCheckedContinuation { continuation in
                Thread.detachNewThread { continuation.resume(returning: editor.readLine(prompt: prompt, history: history, completer: completer)) }
            }
        }
        if interactive {
            Output.write(prompt, to: STDOUT_FILENO)
        }
        // readLine blocks: keep it off the cooperative threads, which the connection needs.
        let line: String? = await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: Swift.readLine(strippingNewline: true)) }
        }
        if line == nil, interactive { print() }  // ctrl-D: end the prompt's line
        return line
    }

    /// Remembers a line typed at the terminal (appended to the history file at once, so a
    /// killed shell loses nothing).
    func remember(_ line: String) {
        guard interactive, !line.trimmingCharacters(in: .whitespaces).isEmpty else { return }
        enum Save { case nothing, append, rewrite }
        let save = history.withLock { lines -> Save in
            guard lines.last != line else { return .nothing }
            lines.append(line)
            guard lines.count > Self.historyLimit else { return .append }
            lines.removeFirst(lines.count - Self.historyLimit)
            return .rewrite
        }
        switch save {
        case .nothing: break
        case .rewrite:
            try? (history.value.joined(separator: "\n") + "\n").write(toFile: historyFile, atomically: true, encoding: .utf8)
        case .append:
            guard let handle = FileHandle(forWritingAtPath: historyFile) ?? create() else { return }
            handle.seekToEndOfFile()
            // History is a convenience: a full disk must not end the session.
            try? handle.write(contentsOf: Data((line + "\n").utf8))
            try? handle.close()
        }
    }

    private func create() -> FileHandle? {
        _ = FileManager.default.createFile(atPath: historyFile, contents: nil, attributes: [.posixPermissions: 0o600])
        return FileHandle(forWritingAtPath: historyFile)
    }
}

/// Edits a line on the terminal in raw mode; `LineEditor` decides what each key does, this
/// reads the keys and draws. Keys read past Enter (type-ahead, a pasted block of lines) wait
/// for the next line.
final class TerminalLineEditor: Sendable {
    private struct Unread: Sendable {
        var decoder = KeyDecoder()
        var keys: [LineEditor.Key] = []
    }
    private let unread = Locked(Unread())

    /// Blocks until Enter (the line), or Ctrl-D on an empty line / the terminal closing (nil).
    func readLine(prompt: String, history: [String], completer: LineEditor.Completer?) -> String? {
        fflush(nil)  // what commands printed goes out before the prompt (nil: all streams)
        guard let rawMode = RawMode.enter() else {
            TerminalIO.write(prompt)
            return Swift.readLine(strippingNewline: true)
        }
        var state = unread.value
        defer {
            unread.withLock { $0 = state }
            rawMode.restore()
        }
        var editor = LineEditor(history: history, completer: completer)
        TerminalIO.write(prompt)
        while true {
            if state.keys.isEmpty {
                guard let keys = readKeys(&state.decoder) else {
                    TerminalIO.write("\r\n")
                    return nil
                }
                state.keys = keys
            }
            var needsDrawing = false
            while !state.keys.isEmpty {
                switch editor.handle(state.keys.removeFirst()) {
                case .none:
                    break
                case .redraw:
                    needsDrawing = true
                case .bell:
                    TerminalIO.write("\u{07}")
                case .clearScreen:
                    TerminalIO.write("\u{1B}[H\u{1B}[2J")
                    needsDrawing = true
                case .listCandidates(let candidates):
                    if needsDrawing { draw(prompt, editor) }
                    let rows = LineEditor.columns(candidates, width: TerminalIO.width)
                    TerminalIO.write("\r\n" + rows.joined(separator: "\r\n") + "\r\n")
                    needsDrawing = true
                case .cancel:
                    TerminalIO.write("^C\r\n" + prompt)
                    needsDrawing = false
                case .submit(let line):
                    if needsDrawing { draw(prompt, editor) }
                    TerminalIO.write("\r\n")
                    return line
                case .endOfInput:
                    TerminalIO.write("\r\n")
                    return nil
                }
            }
            if needsDrawing { draw(prompt, editor) }
        }
    }

    /// Back to the line's start, prompt and line, clear what was further right, cursor back
    /// over what follows it. A character counts as one column, so wide (CJK) characters and a
    /// line longer than the terminal is wide (it wraps, and `\r` only reaches the last row)
    /// leave the display off; the shell's commands fit on one line.
    private func draw(_ prompt: String, _ editor: LineEditor) {
        let behindCursor = editor.characters.count - editor.cursor
        TerminalIO.write("\r" + prompt + editor.line + "\u{1B}[K" + (behindCursor > 0 ? "\u{1B}[\(behindCursor)D" : ""))
    }

    /// The next keys, waiting as long as it takes; nil when the terminal is gone.
    private func readKeys(_ decoder: inout KeyDecoder) -> [LineEditor.Key]? {
        var buffer = [UInt8](repeating: 0, count: 256)
        while true {
            let count = read(STDIN_FILENO, &buffer, buffer.count)
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { return nil }
            let keys = decoder.decode(buffer[..<count])
            // Escape alone starts like an arrow's sequence: when nothing follows at once, it was alone.
            if decoder.isIncomplete, !TerminalIO.inputArrives(withinMilliseconds: 50) { decoder.flush() }
            if !keys.isEmpty { return keys }
        }
    }
}

/// The terminal in raw mode while a line is edited: no echo, bytes as typed (no line buffering,
/// CR not turned into NL), and ctrl-C, ctrl-Z, ctrl-\\, ^S, ^Q arrive as keys instead of
/// signals or flow control. Output processing stays on, so `print` still starts lines at the left.
///
/// The saved settings come back through `restore`, which the editor defers over all its returns,
/// and also at exit() (Interrupts' exit(130) included) and on SIGTERM/SIGHUP: a killed agentctl
/// must not leave the terminal raw. At the prompt ctrl-C is thus a key that drops the line; while
/// a command runs the terminal is back to normal and ctrl-C reaches Interrupts as before.
struct RawMode {
    // Globals because the exit and signal hooks are C functions; lines are read one at a time,
    // on one thread, so only those hooks can race with `enter`, and they only restore.
    nonisolated(unsafe) private static let saved = UnsafeMutablePointer<termios>.allocate(capacity: 1)
    nonisolated(unsafe) private static var active = false
    nonisolated(unsafe) private static var hooksInstalled = false

    static func enter() -> RawMode? {
        guard tcgetattr(STDIN_FILENO, saved) == 0 else { return nil }
        installHooks()
        var raw = saved.pointee
        raw.c_iflag &= ~tcflag_t(IXON | ICRNL | BRKINT | INPCK | ISTRIP)
        raw.c_lflag &= ~tcflag_t(ECHO | ICANON | ISIG | IEXTEN)
        withUnsafeMutableBytes(of: &raw.c_cc) { controls in
            controls[Int(VMIN)] = 1
            controls[Int(VTIME)] = 0
        }
        // TCSADRAIN, not TCSAFLUSH: what was typed ahead while a command ran stays to be read.
        guard tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) == 0 else { return nil }
        active = true
        return RawMode()
    }

    func restore() { Self.restoreSaved() }

    private static func restoreSaved() {
        guard active else { return }
        active = false
        tcsetattr(STDIN_FILENO, TCSADRAIN, saved)
    }

    private static func installHooks() {
        guard !hooksInstalled else { return }
        hooksInstalled = true
        atexit { RawMode.restoreSaved() }
        for number in [SIGTERM, SIGHUP] {
            let previous = signal(number) { received in
                RawMode.restoreSaved()
                signal(received, SIG_DFL)
                raise(received)
            }
            // Ignored or handled by someone else already (nohup): leave it that way.
            if previous != nil { signal(number, previous) }
        }
    }
}

/// Unbuffered writes to the terminal, its width, and whether more input is on its way.
enum TerminalIO {
    static func write(_ text: String) { Output.write(text, to: STDOUT_FILENO) }

    static var width: Int {
        var size = winsize()
        return ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 ? Int(size.ws_col) : 80
    }

    static func inputArrives(withinMilliseconds timeout: Int32) -> Bool {
        var input = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
        return poll(&input, 1, timeout) > 0
    }
}
