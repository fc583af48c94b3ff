import Foundation
import Testing
@testable import AgentKernel

/// The shell's line editing without a terminal: bytes to keys, keys to line and cursor, Tab.
@Suite struct LineEditorTests {
    typealias Key = LineEditor.Key

    func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// An editor after typing `text` (then the keys), so each test starts from a known line.
    func editor(typing text: String, history: [String] = [], completer: LineEditor.Completer? = nil) -> LineEditor {
        var editor = LineEditor(history: history, completer: completer)
        for character in text { _ = editor.handle(.character(character)) }
        return editor
    }

    // MARK: decoding

    @Test func decodesTextAndControlKeys() {
        var decoder = KeyDecoder()
        let keys = decoder.decode([0x61, 0x01, 0x05, 0x0B, 0x15, 0x17, 0x7F, 0x08, 0x09, 0x0D, 0x03, 0x04, 0x0C, 0x10, 0x0E, 0x02, 0x06])
        #expect(keys == [.character("a"), .home, .end, .killToEnd, .killToStart, .deleteWordBefore, .backspace, .backspace,
                         .tab, .enter, .interrupt, .endOfInput, .clearScreen, .up, .down, .left, .right])
        #expect(!decoder.isIncomplete)
    }

    @Test func decodesEscapeSequences() {
        var decoder = KeyDecoder()
        let keys = decoder.decode(bytes("\u{1B}[A\u{1B}[B\u{1B}[C\u{1B}[D\u{1B}[H\u{1B}[F\u{1B}[1~\u{1B}[4~\u{1B}OH\u{1B}OF\u{1B}[3~\u{1B}[7~\u{1B}[8~\u{1B}[1;5C"))
        #expect(keys == [.up, .down, .right, .left, .home, .end, .home, .end, .home, .end, .delete, .home, .end, .right])
    }

    @Test func keepsASequenceSplitAcrossReads() {
        var decoder = KeyDecoder()
        #expect(decoder.decode(bytes("x\u{1B}[")) == [.character("x")])
        #expect(decoder.isIncomplete)
        #expect(decoder.decode(bytes("3")) == [])
        #expect(decoder.decode(bytes("~y")) == [.delete, .character("y")])
        #expect(!decoder.isIncomplete)
    }

    @Test func keepsAUTF8CharacterSplitAcrossReads() {
        var decoder = KeyDecoder()
        let euro = bytes("€")  // three bytes
        #expect(decoder.decode(euro[..<1]) == [])
        #expect(decoder.decode(euro[1...] + bytes("é")) == [.character("€"), .character("é")])
    }

    @Test func dropsUnknownSequencesAndALoneEscapeOnFlush() {
        var decoder = KeyDecoder()
        #expect(decoder.decode(bytes("\u{1B}[5~\u{1B}xa")) == [.character("a")])  // PageUp, Alt-x: nothing
        #expect(decoder.decode([0x1B]) == [])
        decoder.flush()
        #expect(decoder.decode(bytes("[A")) == [.character("["), .character("A")])
    }

    // MARK: editing

    @Test func insertsBackspacesAndDeletesInTheMiddle() {
        var editor = editor(typing: "helo")
        #expect(editor.handle(.left) == .redraw)
        #expect(editor.handle(.character("l")) == .redraw)
        #expect(editor.line == "hello" && editor.cursor == 4)
        _ = editor.handle(.left)
        _ = editor.handle(.left)
        #expect(editor.handle(.backspace) == .redraw)
        #expect(editor.line == "hllo" && editor.cursor == 1)
        #expect(editor.handle(.delete) == .redraw)
        #expect(editor.line == "hlo" && editor.cursor == 1)
        _ = editor.handle(.end)
        #expect(editor.handle(.delete) == .none)
        _ = editor.handle(.home)
        #expect(editor.handle(.backspace) == .none)
        #expect(editor.line == "hlo" && editor.cursor == 0)
    }

    @Test func movesHomeEndAndKills() {
        var editor = editor(typing: "wf submit a.yaml")
        _ = editor.handle(.home)
        #expect(editor.cursor == 0)
        _ = editor.handle(.end)
        #expect(editor.cursor == 16)
        for _ in 0..<7 { _ = editor.handle(.left) }
        #expect(editor.handle(.killToEnd) == .redraw)
        #expect(editor.line == "wf submit" && editor.cursor == 9)
        _ = editor.handle(.left)
        _ = editor.handle(.left)
        #expect(editor.handle(.killToStart) == .redraw)
        #expect(editor.line == "it" && editor.cursor == 0)
    }

    @Test func deletesTheWordBeforeTheCursor() {
        var editor = editor(typing: "wf submit  a.yaml  ")
        _ = editor.handle(.deleteWordBefore)
        #expect(editor.line == "wf submit  " && editor.cursor == 11)
        _ = editor.handle(.left)
        _ = editor.handle(.left)
        _ = editor.handle(.left)
        _ = editor.handle(.deleteWordBefore)
        #expect(editor.line == "wf t  " && editor.cursor == 3)  // "submi" went, the "t" after the cursor stays
    }

    @Test func enterSubmitsAndCtrlDEndsOnlyAnEmptyLine() {
        var editor = editor(typing: "ab")
        _ = editor.handle(.home)
        #expect(editor.handle(.endOfInput) == .redraw)  // deletes at the cursor instead
        #expect(editor.line == "b" && editor.cursor == 0)
        #expect(editor.handle(.enter) == .submit("b"))
        var empty = LineEditor()
        #expect(empty.handle(.endOfInput) == .endOfInput)
    }

    @Test func ctrlCDropsTheLine() {
        var editor = editor(typing: "half typed", history: ["old"])
        _ = editor.handle(.up)
        #expect(editor.handle(.interrupt) == .cancel)
        #expect(editor.line == "" && editor.cursor == 0)
        _ = editor.handle(.up)
        #expect(editor.line == "old")
        _ = editor.handle(.down)
        #expect(editor.line == "")  // the dropped line is not the draft any more
    }

    @Test func historyUpAndDownRestoresTheLineInProgress() {
        var editor = editor(typing: "new", history: ["first", "second"])
        _ = editor.handle(.left)
        #expect(editor.handle(.up) == .redraw)
        #expect(editor.line == "second" && editor.cursor == 6)
        _ = editor.handle(.up)
        #expect(editor.line == "first" && editor.cursor == 5)
        #expect(editor.handle(.up) == .none)
        #expect(editor.line == "first")
        _ = editor.handle(.down)
        #expect(editor.line == "second")
        _ = editor.handle(.down)
        #expect(editor.line == "new" && editor.cursor == 3)
        #expect(editor.handle(.down) == .none)
        #expect(editor.line == "new")
    }

    // MARK: completion

    static let words: LineEditor.Completer = { text in
        ["cancel", "cd", "ctr/", "exit", "status", "submit"].filter { $0.hasPrefix(text.split(separator: " ", omittingEmptySubsequences: false).last.map(String.init) ?? "") }
    }

    @Test func oneCandidateIsInsertedWithASpace() {
        var editor = editor(typing: "ex", completer: Self.words)
        #expect(editor.handle(.tab) == .redraw)
        #expect(editor.line == "exit " && editor.cursor == 5)
    }

    @Test func aDirectoryCandidateGetsNoSpace() {
        var editor = editor(typing: "ct", completer: Self.words)
        _ = editor.handle(.tab)
        #expect(editor.line == "ctr/" && editor.cursor == 4)
    }

    @Test func completesTheWordAtTheCursorInTheMiddle() {
        var editor = editor(typing: "ex tail", completer: Self.words)
        for _ in 0..<5 { _ = editor.handle(.left) }
        _ = editor.handle(.tab)
        #expect(editor.line == "exit  tail" && editor.cursor == 5)
    }

    @Test func severalCandidatesExtendToTheirCommonPrefixThenListOnTheSecondTab() {
        var ambiguous = editor(typing: "su", completer: { _ in ["submit", "subscribe"] })
        #expect(ambiguous.handle(.tab) == .redraw)
        #expect(ambiguous.line == "sub" && ambiguous.cursor == 3)
        #expect(ambiguous.handle(.tab) == .listCandidates(["submit", "subscribe"]))
        #expect(ambiguous.line == "sub" && ambiguous.cursor == 3)
    }

    @Test func aFirstTabThatAddsNothingRingsAndTheSecondLists() {
        var editor = editor(typing: "c", completer: Self.words)
        #expect(editor.handle(.tab) == .bell)
        #expect(editor.line == "c" && editor.cursor == 1)
        #expect(editor.handle(.tab) == .listCandidates(["cancel", "cd", "ctr/"]))
        // Any other key in between starts over.
        _ = editor.handle(.character("a"))
        _ = editor.handle(.backspace)
        #expect(editor.handle(.tab) == .bell)
    }

    @Test func noCandidateRingsAndChangesNothing() {
        var editor = editor(typing: "zz", completer: Self.words)
        #expect(editor.handle(.tab) == .bell)
        #expect(editor.handle(.tab) == .bell)
        #expect(editor.line == "zz" && editor.cursor == 2)
        var without = self.editor(typing: "ex")
        #expect(without.handle(.tab) == .bell)
        #expect(without.line == "ex")
    }

    @Test func longestCommonPrefix() {
        #expect(LineEditor.longestCommonPrefix(["submit", "subscribe", "sub"]) == "sub")
        #expect(LineEditor.longestCommonPrefix(["status", "cancel"]) == "")
        #expect(LineEditor.longestCommonPrefix(["only"]) == "only")
        #expect(LineEditor.longestCommonPrefix([]) == "")
        #expect(LineEditor.longestCommonPrefix(["é1", "é2"]) == "é")
    }

    @Test func columnsFillTopToBottom() {
        let rows = LineEditor.columns(["a", "bb", "ccc", "d", "e"], width: 12)
        #expect(rows == ["a    d", "bb   e", "ccc"])
        #expect(LineEditor.columns(["long-name", "x"], width: 5) == ["long-name", "x"])
        #expect(LineEditor.columns([], width: 80) == [])
    }

    // MARK: the shell's candidates

    let completer = CommandCompleter(
        contexts: [
            .init(name: "xmpp", commands: [.init(name: "agents", usage: "agents"), .init(name: "ping", usage: "ping JID")]),
            .init(name: "wf", commands: [.init(name: "submit", usage: "submit FILE [watch] [to=JID]"), .init(name: "status", usage: "status ID")]),
        ],
        current: "wf",
        builtins: [.init(name: "help", usage: "help CMD"), .init(name: "cd", usage: "cd CONTEXT|..|/"), .init(name: "exit", usage: "exit")])

    @Test func firstWordsComeFromTheContextBuiltinsAndContexts() {
        #expect(completer.candidates(before: "") == ["cd", "exit", "help", "status", "submit", "wf/", "xmpp/"])
        #expect(completer.candidates(before: "s") == ["status", "submit"])
        var atRoot = completer
        atRoot.current = nil
        #expect(atRoot.candidates(before: "") == ["cd", "exit", "help", "wf/", "xmpp/"])
        #expect(atRoot.candidates(before: "xmpp ") == ["agents", "ping"])
        #expect(atRoot.candidates(before: "xmpp/ p") == ["ping"])
        #expect(atRoot.candidates(before: "xmpp help ") == [])  // `xmpp help` is not a command
    }

    @Test func argumentsFollowTheUsagePlaceholders() {
        #expect(completer.candidates(before: "help s") == ["status", "submit"])
        #expect(completer.candidates(before: "help ") == ["agents", "ping", "status", "submit", "wf", "xmpp"])
        #expect(completer.candidates(before: "cd ") == ["..", "/", "wf", "xmpp"])
        #expect(completer.candidates(before: "status ") == [])
        #expect(completer.candidates(before: "help status ") == [])
        #expect(completer.candidates(before: "nosuch ") == [])
    }

    @Test func fileArgumentsCompletePaths() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("line-editor-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/flows", withIntermediateDirectories: true)
        for file in ["flows/hello.yaml", "flows/help.yaml", "my flow.yaml", ".hidden"] {
            #expect(FileManager.default.createFile(atPath: root + "/" + file, contents: Data()))
        }
        var inRoot = completer
        inRoot.workingDirectory = root
        let completer = inRoot
        #expect(completer.candidates(before: "submit ") == ["flows/", "my\\ flow.yaml"])
        #expect(completer.candidates(before: "submit fl") == ["flows/"])
        #expect(completer.candidates(before: "wf submit flows/hel") == ["flows/hello.yaml", "flows/help.yaml"])
        #expect(completer.candidates(before: "submit my\\ f") == ["my\\ flow.yaml"])
        #expect(completer.candidates(before: "submit .h") == [".hidden"])
        #expect(completer.candidates(before: "submit " + root + "/flows/hello") == [root + "/flows/hello.yaml"])
        #expect(completer.candidates(before: "submit flows/hello.yaml ") == [])  // [watch]: not a path

        // Through the editor: a directory gets no space, a file does, an escaped blank stays one word.
        let candidates: LineEditor.Completer = { completer.candidates(before: $0) }
        var editor = editor(typing: "submit fl", completer: candidates)
        _ = editor.handle(.tab)
        #expect(editor.line == "submit flows/" && editor.cursor == 13)
        _ = editor.handle(.tab)
        #expect(editor.line == "submit flows/hel" && editor.cursor == 16)
        #expect(editor.handle(.tab) == .listCandidates(["flows/hello.yaml", "flows/help.yaml"]))
        _ = editor.handle(.character("l"))
        _ = editor.handle(.tab)
        #expect(editor.line == "submit flows/hello.yaml " && editor.cursor == 24)
        var spaced = self.editor(typing: "submit my\\ ", completer: candidates)
        _ = spaced.handle(.tab)
        #expect(spaced.line == "submit my\\ flow.yaml " && spaced.cursor == 21)
    }
}
