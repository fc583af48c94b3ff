import Foundation
import Testing
@testable import AgentKernel

/// The journal's WAL is grown once at open (so that synced commits overwrite instead of append)
/// and kept across restarts; neither may cost a stored document.
@Suite struct JournalTests {
    private static func scratch() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("baton-journal-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.path
    }

    private static func size(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? -1
    }

    private static func document(_ name: String) -> WorkflowDocument {
        WorkflowDocument(name: name, steps: [.init(id: "s1", action: "t.one")]).submitted(by: "ops@baton.test/test")
    }

    @Test func walIsGrownAtOpenAndKeptWhenTheJournalCloses() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/journal.sqlite"
        let grown: Int
        do {
            let journal = try Journal(path: path)
            // 1000-page checkpoints of 4 KiB pages: header + 1064 frames of 4120 bytes.
            grown = Self.size(path + "-wal")
            #expect(grown == 32 + 1064 * 4120)
            #expect(try journal.accept(Self.document("kept"), seq: 0))
        }
        // Closed: SQLite checkpoints, but keeps the (persistent) WAL at its size.
        #expect(Self.size(path + "-wal") == grown)
        let reopened = try Journal(path: path)
        #expect(try reopened.entries(in: [.accepted]).map(\.document.name) == ["kept"])
        #expect(Self.size(path + "-wal") == grown)
    }

    /// After a checkpoint (a clean stop does one) the database file alone holds everything.
    /// `cancel 3f` once cancelled whichever workflow starting with 3f came first.
    @Test func anIdPrefixFindsOneWorkflowOrIsRefused() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let journal = try Journal(path: dir + "/journal.sqlite")
        for id in ["3f2a00000001", "3f9b00000002", "a1_b00000003"] {
            var document = Self.document("w")
            document.id = id
            #expect(try journal.accept(document, seq: 0))
        }
        #expect(try journal.entries(workflow: "3f2").map(\.document.id) == ["3f2a00000001"])
        #expect(try journal.entries(workflow: "3f9b00000002").map(\.document.id) == ["3f9b00000002"])
        #expect(throws: WorkflowError.invalid("'3f' is the start of several workflow ids (3f2a00000001, 3f9b00000002); give more of it")) {
            try journal.entries(workflow: "3f")
        }
        // What is typed is text, not a LIKE pattern.
        #expect(try journal.entries(workflow: "3%").isEmpty)
        #expect(try journal.entries(workflow: "a1%").isEmpty)
        #expect(try journal.entries(workflow: "a1_").map(\.document.id) == ["a1_b00000003"])
        #expect(try journal.entries(workflow: "ff").isEmpty)
    }

    /// Pruning by count alone dropped dedup keys a late resend still needed.
    @Test func pruningKeepsAWeekWhateverTheCount() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let journal = try Journal(path: dir + "/journal.sqlite", retention: 2)
        var ids: [String] = []
        for index in 0..<5 {
            let document = Self.document("wf\(index)")
            ids.append(document.id)
            #expect(try journal.accept(document, seq: 0))
            try journal.update(document.id, seq: 0, state: .handed, target: "b@baton.test/agent")
        }
        try journal.prune()
        #expect(try journal.entries(in: [.handed]).count == 5, "all younger than a week")
        try journal.prune(now: Date().addingTimeInterval(8 * 24 * 3600))
        #expect(try journal.entries(in: [.handed]).count == 2, "a week on, the newest 2")
        let document = try #require(try journal.entries(in: [.handed]).first?.document)
        #expect(try !journal.accept(document, seq: 0), "a kept key still recognises a resend")
    }

    @Test func checkpointLeavesACompleteDatabaseFile() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/journal.sqlite", copy = dir + "/copy.sqlite"
        let journal = try Journal(path: path)
        for index in 0..<20 { #expect(try journal.accept(Self.document("wf\(index)"), seq: 0)) }
        let grown = Self.size(path + "-wal")
        try journal.checkpoint()
        #expect(Self.size(path + "-wal") == grown)
        try FileManager.default.copyItem(atPath: path, toPath: copy)  // without its WAL
        #expect(try Journal(path: copy).entries(in: [.accepted]).count == 20)
    }

    @Test func documentsCommittedBeforeACrashAreReadBackFromThePaddedWAL() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/journal.sqlite", copy = dir + "/crashed.sqlite"
        let journal = try Journal(path: path)
        var names: [String] = []
        for index in 0..<50 {
            let document = Self.document("wf\(index)")
            #expect(try journal.accept(document, seq: 0))
            names.append(document.name)
        }
        // The files as a crash would leave them: committed frames in the WAL (not yet
        // checkpointed into the database), then the zeros it was grown with.
        for suffix in ["", "-wal"] {
            try FileManager.default.copyItem(atPath: path + suffix, toPath: copy + suffix)
        }
        #expect(Self.size(copy) < 50 * 1024)  // the documents live in the WAL only
        let recovered = try Journal(path: copy)
        #expect(try recovered.entries(in: [.accepted]).map(\.document.name).sorted() == names.sorted())
        #expect(try recovered.accept(Self.document("after"), seq: 0))
        #expect(try recovered.entries(in: [.accepted]).count == 51)
    }
}

/// agentctl's `wf status 3f`: an agent's own refusal of an ambiguous prefix is what the user sees.
@Suite struct LocatedTests {
    @Test func anAgentsRefusalIsReportedAsItSaidIt() {
        let refusal = WorkflowClient.Sighting(agent: "build@baton.test/agent", entries: [], document: nil,
                                              refusal: "'3f' is the start of several workflow ids (3f2a, 3f9b); give more of it")
        #expect(throws: WorkflowClientError("build@baton.test/agent: '3f' is the start of several workflow ids (3f2a, 3f9b); give more of it")) {
            try Located(query: "3f", sightings: [refusal], failures: [])
        }
    }
}
