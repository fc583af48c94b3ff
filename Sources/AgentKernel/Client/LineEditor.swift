import Foundation

// The interactive shell's line editing, free of terminal I/O so tests can drive it key by key:
// `KeyDecoder` turns the bytes a raw-mode terminal sends into keys, `LineEditor` applies keys
// to a line (cursor, history, Tab) and says what the screen needs, and `CommandCompleter`
// finds Tab's candidates in a shell's command tables. agentctl's `LineInput` does the I/O.

/// A one-line editor: the line, the cursor, a walk through earlier lines and Tab completion.
/// One editor per prompt; it never touches the terminal, it only answers what to show.
public struct LineEditor: Sendable {
    /// Given the text before the cursor, the candidates for the word that ends there (each a
    /// whole replacement for that word, escaped as it should be typed).
    public typealias Completer = @Sendable (_ textBeforeCursor: String) -> [String]

    /// A key as the editor understands it; `KeyDecoder` maps control keys and escape sequences here.
    public enum Key: Sendable, Equatable {
        case character(Character)
        case enter
        case backspace, delete
        case left, right, home, end
        case up, down
        case killToEnd, killToStart, deleteWordBefore
        case tab
        case clearScreen
        /// Ctrl-C: forget the line.
        case interrupt
        /// Ctrl-D: end of input on an empty line, else delete at the cursor.
        case endOfInput
    }

    /// What the terminal has to do after a key.
    public enum Action: Sendable, Equatable {
        /// Nothing changed.
        case none
        /// The line or the cursor changed: draw the line again.
        case redraw
        /// Tab found nothing to add.
        case bell
        /// Clear the screen, then draw the line again.
        case clearScreen
        /// The second Tab in a row on an ambiguous word: show these below the line, then redraw.
        case listCandidates([String])
        /// Enter: this is the line.
        case submit(String)
        /// Ctrl-C: the line was dropped; show a fresh prompt (the editor is empty again).
        case cancel
        /// Ctrl-D on an empty line.
        case endOfInput
    }

    /// Characters, not a String, so the cursor is a plain index.
    public private(set) var characters: [Character] = []
    /// Where the next character goes, 0...characters.count.
    public private(set) var cursor = 0
    public let history: [String]
    /// `history.count` is the line being typed; below it, a recalled entry.
    private var historyIndex: Int
    /// The line being typed, kept while Up walks the history and given back at the bottom.
    private var draft: [Character] = []
    /// The previous key was a Tab that left several candidates: another Tab lists them.
    private var tabListsNext = false
    private let completer: Completer?

    public var line: String { String(characters) }

    public init(history: [String] = [], completer: Completer? = nil) {
        self.history = history
        self.completer = completer
        historyIndex = history.count
    }

    public mutating func handle(_ key: Key) -> Action {
        let afterTab = tabListsNext
        tabListsNext = false
        switch key {
        case .character(let character):
            characters.insert(character, at: cursor)
            cursor += 1
        case .enter:
            return .submit(line)
        case .backspace:
            guard cursor > 0 else { return .none }
            cursor -= 1
            characters.remove(at: cursor)
        case .delete:
            guard cursor < characters.count else { return .none }
            characters.remove(at: cursor)
        case .endOfInput:
            if characters.isEmpty { return .endOfInput }
            return handle(.delete)
        case .left:
            guard cursor > 0 else { return .none }
            cursor -= 1
        case .right:
            guard cursor < characters.count else { return .none }
            cursor += 1
        case .home:
            cursor = 0
        case .end:
            cursor = characters.count
        case .killToEnd:
            characters.removeSubrange(cursor...)
        case .killToStart:
            characters.removeSubrange(..<cursor)
            cursor = 0
        case .deleteWordBefore:
            var start = cursor
            while start > 0, characters[start - 1].isWhitespace { start -= 1 }
            while start > 0, !characters[start - 1].isWhitespace { start -= 1 }
            characters.removeSubrange(start..<cursor)
            cursor = start
        case .up:
            guard historyIndex > 0 else { return .none }
            if historyIndex == history.count { draft = characters }
            historyIndex -= 1
            show(Array(history[historyIndex]))
        case .down:
            guard historyIndex < history.count else { return .none }
            historyIndex += 1
            show(historyIndex == history.count ? draft : Array(history[historyIndex]))
        case .clearScreen:
            return .clearScreen
        case .interrupt:
            characters = []
            cursor = 0
            draft = []
            historyIndex = history.count
            return .cancel
        case .tab:
            return complete(listing: afterTab)
        }
        return .redraw
    }

    private mutating func show(_ recalled: [Character]) {
        characters = recalled
        cursor = recalled.count
    }

    /// One candidate replaces the word (then a space, unless it is a directory to go on into);
    /// several extend it to their longest common prefix, and a second Tab lists them.
    private mutating func complete(listing: Bool) -> Action {
        guard let completer else { return .bell }
        let start = CompletionWords.wordStart(characters, before: cursor)
        let word = String(characters[start..<cursor])
        var seen = Set<String>()
        // A candidate that does not extend the word would delete what was typed: never used.
        let candidates = completer(String(characters[..<cursor])).filter { $0.hasPrefix(word) && seen.insert($0).inserted }
        switch candidates.count {
        case 0:
            return .bell
        case 1:
            let only = candidates[0]
            replace(start..<cursor, with: only.hasSuffix("/") ? only : only + " ")
            return .redraw
        default:
            tabListsNext = true
            let common = Self.longestCommonPrefix(candidates)
            if common.count > word.count {
                replace(start..<cursor, with: common)
                return .redraw
            }
            return listing ? .listCandidates(candidates) : .bell
        }
    }

    private mutating func replace(_ range: Range<Int>, with text: String) {
        characters.replaceSubrange(range, with: Array(text))
        cursor = range.lowerBound + text.count
    }

    public static func longestCommonPrefix(_ strings: [String]) -> String {
        guard var prefix = strings.first.map(Array.init) else { return "" }
        for string in strings.dropFirst() {
            let shared = zip(prefix, string).prefix { $0 == $1 }.count
            prefix.removeSubrange(shared...)
        }
        return String(prefix)
    }

    /// `items` in columns across `width`, filled top to bottom like ls; one string per row.
    public static func columns(_ items: [String], width: Int) -> [String] {
        guard let widest = items.map(\.count).max() else { return [] }
        let columnWidth = widest + 2
        let columnCount = max(1, min(items.count, (width + 2) / columnWidth))
        let rowCount = (items.count + columnCount - 1) / columnCount
        return (0..<rowCount).map { row in
            stride(from: row, to: items.count, by: rowCount).map { index in
                items[index].padding(toLength: columnWidth, withPad: " ", startingAt: 0)
            }.joined().replacingOccurrences(of: " +$", with: "", options: .regularExpression)
        }
    }
}

/// Turns the bytes a terminal in raw mode sends into `LineEditor.Key`s: UTF-8 text, control
/// keys, and the CSI/SS3 sequences of arrows, Home/End and Delete. A sequence or character cut
/// between two reads is kept until the rest arrives.
public struct KeyDecoder: Sendable {
    private var pending: [UInt8] = []

    public init() {}

    /// Bytes wait for the rest of a sequence. A lone Escape looks the same, so the reader
    /// calls `flush` when nothing more comes shortly.
    public var isIncomplete: Bool { !pending.isEmpty }

    public mutating func decode<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> [LineEditor.Key] {
        pending.append(contentsOf: bytes)
        var keys: [LineEditor.Key] = []
        var index = 0
        while index < pending.count, let (key, length) = Self.parse(pending[index...]) {
            if let key { keys.append(key) }
            index += length
        }
        pending.removeFirst(index)
        return keys
    }

    /// Drops an incomplete sequence: a lone Escape (or Alt held with nothing after) does nothing.
    public mutating func flush() {
        pending.removeAll()
    }

    /// The key at the start of `bytes` (nil for bytes that mean nothing here) and how many bytes
    /// it took, or nil when the bytes stop in the middle of a sequence.
    private static func parse(_ bytes: ArraySlice<UInt8>) -> (LineEditor.Key?, Int)? {
        let first = bytes[bytes.startIndex]
        switch first {
        case 0x1B: return escape(bytes)
        case 0x20..<0x7F: return (.character(Character(Unicode.Scalar(first))), 1)
        case 0x80...: return utf8(bytes)
        default: return (control(first), 1)
        }
    }

    private static func control(_ byte: UInt8) -> LineEditor.Key? {
        switch byte {
        case 0x01: .home            // Ctrl-A
        case 0x02: .left            // Ctrl-B
        case 0x03: .interrupt       // Ctrl-C
        case 0x04: .endOfInput      // Ctrl-D
        case 0x05: .end             // Ctrl-E
        case 0x06: .right           // Ctrl-F
        case 0x08, 0x7F: .backspace // Ctrl-H, and what Backspace sends
        case 0x09: .tab
        case 0x0A, 0x0D: .enter
        case 0x0B: .killToEnd       // Ctrl-K
        case 0x0C: .clearScreen     // Ctrl-L
        case 0x0E: .down            // Ctrl-N
        case 0x10: .up              // Ctrl-P
        case 0x15: .killToStart     // Ctrl-U
        case 0x17: .deleteWordBefore // Ctrl-W
        default: nil
        }
    }

    /// ESC [ params final (CSI), ESC O final (SS3); ESC with anything else (Alt-key) is dropped.
    private static func escape(_ bytes: ArraySlice<UInt8>) -> (LineEditor.Key?, Int)? {
        let start = bytes.startIndex
        guard bytes.count > 1 else { return nil }
        switch bytes[start + 1] {
        case UInt8(ascii: "["):
            var index = start + 2
            while index < bytes.endIndex, (0x20...0x3F).contains(bytes[index]) { index += 1 }
            guard index < bytes.endIndex else { return nil }
            let final = bytes[index]
            guard (0x40...0x7E).contains(final) else { return (nil, index - start) }  // malformed: drop the prefix
            let parameters = String(decoding: bytes[(start + 2)..<index], as: UTF8.self)
            return (csi(final: final, firstParameter: parameters.split(separator: ";").first.flatMap { Int($0) }), index - start + 1)
        case UInt8(ascii: "O"):
            guard bytes.count > 2 else { return nil }
            return (csi(final: bytes[start + 2], firstParameter: nil), 3)
        case 0x1B:
            return (nil, 1)  // ESC ESC: the first one alone
        default:
            return (nil, 2)
        }
    }

    private static func csi(final: UInt8, firstParameter: Int?) -> LineEditor.Key? {
        switch final {
        case UInt8(ascii: "A"): .up
        case UInt8(ascii: "B"): .down
        case UInt8(ascii: "C"): .right
        case UInt8(ascii: "D"): .left
        case UInt8(ascii: "H"): .home
        case UInt8(ascii: "F"): .end
        case UInt8(ascii: "~"):
            switch firstParameter {
            case 1, 7: .home
            case 4, 8: .end
            case 3: .delete
            default: nil
            }
        default: nil
        }
    }

    private static func utf8(_ bytes: ArraySlice<UInt8>) -> (LineEditor.Key?, Int)? {
        let start = bytes.startIndex
        let length: Int
        switch bytes[start] {
        case 0xC2...0xDF: length = 2
        case 0xE0...0xEF: length = 3
        case 0xF0...0xF4: length = 4
        default: return (nil, 1)  // a stray continuation byte or an invalid lead
        }
        for offset in 1..<length {
            guard start + offset < bytes.endIndex else { return nil }
            guard (0x80...0xBF).contains(bytes[start + offset]) else { return (nil, offset) }
        }
        let text = String(decoding: bytes[start..<(start + length)], as: UTF8.self)
        guard let character = text.first, text.unicodeScalars.first != "\u{FFFD}" else { return (nil, length) }
        return (.character(character), length)
    }
}

/// How the editor and the completer agree on words: blanks separate them unless a backslash
/// escapes the blank (as the shell's own word splitting does). Quotes are not followed, so a
/// quoted word is not completed.
enum CompletionWords {
    /// Where the word that ends at `cursor` begins.
    static func wordStart(_ characters: [Character], before cursor: Int) -> Int {
        var start = 0
        var escaped = false
        for (index, character) in characters[..<cursor].enumerated() {
            if escaped {
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character.isWhitespace {
                start = index + 1
            }
        }
        return start
    }

    /// The finished words before the last one (unescaped), and the last one as typed.
    static func split(_ text: String) -> (finished: [String], partial: String) {
        let characters = Array(text)
        let start = wordStart(characters, before: characters.count)
        return (words(String(characters[..<start])), String(characters[start...]))
    }

    /// Words as the shell will split them (quotes, backslashes), an open quote running to the end.
    static func words(_ text: String) -> [String] { ShellWords.splitPartial(text) }

    static func unescape(_ word: String) -> String { words(word).joined(separator: " ") }

    static func escape(_ text: String) -> String {
        var escaped = ""
        for character in text {
            if character.isWhitespace || "\\'\"".contains(character) { escaped.append("\\") }
            escaped.append(character)
        }
        return escaped
    }
}

/// Tab's candidates in a shell of contexts (agentctl's `xmpp/`, `wf/`, `ctr/`), from the shell's
/// own tables given as data. The first word completes to a command of the current context, a
/// command every context has, or a context (`wf/`); after a context's name, to that context's
/// commands. An argument completes by the placeholder at its place in the command's usage
/// line, the only local knowledge there is: FILE → paths, CMD → command names, CONTEXT → contexts.
public struct CommandCompleter: Sendable {
    public struct Command: Sendable {
        public var name: String
        /// As `help` shows it: the name, then a placeholder per argument (`submit FILE [watch]`).
        public var usage: String

        public init(name: String, usage: String) {
            self.name = name
            self.usage = usage
        }
    }

    public struct Context: Sendable {
        public var name: String
        public var commands: [Command]

        public init(name: String, commands: [Command]) {
            self.name = name
            self.commands = commands
        }
    }

    public var contexts: [Context]
    /// The current context's name; nil at `/`.
    public var current: String?
    /// Commands the shell handles in every context (help, cd, exit …); they win over a context's.
    public var builtins: [Command]
    /// Where relative paths start.
    public var workingDirectory: String

    public init(contexts: [Context], current: String?, builtins: [Command],
                workingDirectory: String = FileManager.default.currentDirectoryPath) {
        self.contexts = contexts
        self.current = current
        self.builtins = builtins
        self.workingDirectory = workingDirectory
    }

    /// Candidates for the word that ends `textBeforeCursor`, sorted; `LineEditor.Completer`'s shape.
    public func candidates(before textBeforeCursor: String) -> [String] {
        let (finished, partial) = CompletionWords.split(textBeforeCursor)
        var context = current.flatMap(context(named:))
        var words = finished[...]
        var commands = builtins + (context?.commands ?? [])
        if let first = words.first, let named = self.context(named: first) {
            // `wf list` runs wf's list from anywhere (and only wf's commands).
            context = named
            commands = named.commands
            words = words.dropFirst()
            if words.isEmpty { return matching(commands.map(\.name), partial) }
        }
        guard let name = words.first else {
            return matching(commands.map(\.name) + contexts.map { $0.name + "/" }, partial)
        }
        guard let command = commands.first(where: { $0.name == name }) else { return [] }
        let placeholders = command.usage.split(separator: " ").dropFirst()
        let position = words.count - 1
        guard position < placeholders.count else { return [] }
        let placeholder = placeholders[placeholders.startIndex + position].trimmingCharacters(in: CharacterSet(charactersIn: "[].")).uppercased()
        if placeholder == "FILE" { return paths(partial) }
        if placeholder == "CMD" { return matching(commandNames(in: context), partial) }
        if placeholder.hasPrefix("CONTEXT") { return matching(contexts.map(\.name) + ["..", "/"], partial) }
        return []
    }

    private func context(named word: String) -> Context? {
        let bare = word.hasSuffix("/") ? String(word.dropLast()) : word
        return contexts.first { $0.name == bare }
    }

    /// What `help` accepts: any context's command (the current one's first) or a context.
    private func commandNames(in context: Context?) -> [String] {
        (context?.commands ?? []).map(\.name) + contexts.flatMap { $0.commands.map(\.name) } + contexts.map(\.name)
    }

    private func matching(_ words: [String], _ partial: String) -> [String] {
        Array(Set(words.filter { $0.hasPrefix(partial) })).sorted()
    }

    /// Entries of the directory the partial path names, relative to `workingDirectory`;
    /// directories end with `/`, dot files only show once a `.` is typed.
    private func paths(_ partial: String) -> [String] {
        let typed = CompletionWords.unescape(partial)
        let slash = typed.lastIndex(of: "/")
        let directory = slash.map { String(typed[...$0]) } ?? ""
        let stem = slash.map { String(typed[typed.index(after: $0)...]) } ?? typed
        let listed = directory.hasPrefix("/") ? directory : (workingDirectory as NSString).appendingPathComponent(directory)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: listed.isEmpty ? "." : listed) else { return [] }
        return names.filter { $0.hasPrefix(stem) && (stem.hasPrefix(".") || !$0.hasPrefix(".")) }.map { name in
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: (listed as NSString).appendingPathComponent(name), isDirectory: &isDirectory)
            return CompletionWords.escape(directory + name) + (isDirectory.boolValue ? "/" : "")
        }.sorted()
    }
}
