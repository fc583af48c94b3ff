import AgentKernel
import Foundation

/// Where the shell's lines come from: a terminal (prompt, history in ~/.baton_history) or a
/// script on stdin (no prompt, no history: nothing but the commands' own output).
///
/// Lines are read with plain `readLine` — no raw-mode editing, so no arrow-key recall and no
/// tab completion; the `history` command shows past lines instead.
final class LineInput: Sendable {
    let interactive: Bool
    let historyFile: String
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
        self.historyFile = historyFile
        let saved = interactive ? (try? String(contentsOfFile: historyFile, encoding: .utf8)) ?? "" : ""
        history = Locked(saved.split(separator: "\n").map(String.init))
    }

    var lines: [String] { history.value }

    /// The next line (prompting on a terminal), or nil at end of input.
    func next(prompt: String) async -> String? {
        if interactive {
            FileHandle.standardOutput.write(Data(prompt.utf8))
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
            handle.write(Data((line + "\n").utf8))
            try? handle.close()
        }
    }

    private func create() -> FileHandle? {
        _ = FileManager.default.createFile(atPath: historyFile, contents: nil, attributes: [.posixPermissions: 0o600])
        return FileHandle(forWritingAtPath: historyFile)
    }
}
