import Foundation
import GRDB
import GRDBSQLite

/// The agent's durable memory (SQLite through GRDB, WAL): every workflow it
/// holds, where each stands, and so which hand-offs it must still make after a crash.
///
/// One row per (workflow, seq), seq being the index of the step the holder is to run:
/// `accepted` → `running` (only the attempt number is written) → `handing` (step result
/// recorded, being handed to `target`) → `handed`; a new submission starts as `routing` (no step
/// run here yet); or `parked` (no agent for the next action), `finished` (completed, failed,
/// cancelled). The primary key is also the dedup key: a second copy of (workflow, seq) is
/// recognised and never run again.
public final class Journal: Sendable {
    public enum State: String, Sendable, Codable, DatabaseValueConvertible {
        case accepted, running, routing, handing, handed, parked, finished
        /// States whose step has not yet produced a recorded result.
        public var stepPending: Bool { self == .accepted || self == .running }
    }

    public struct Entry: Sendable, Equatable {
        public var document: WorkflowDocument
        public var seq: Int
        public var state: State
        public var target: String?
        public var updated: Date
    }

    private let db: DatabaseQueue
    /// How many finished or handed-on entries to keep for `status`/`trail` queries.
    public let retention: Int

    public init(path: String, retention: Int = 2000) throws {
        var config = Configuration()
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // Keep the WAL file when the journal closes, so that its preallocation (below)
            // outlives a restart instead of being deleted with the file.
            var persist: Int32 = 1
            sqlite3_file_control(db.sqliteConnection, "main", SQLITE_FCNTL_PERSIST_WAL, &persist)
        }
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        db = try DatabaseQueue(path: path, configuration: config)
        _ = try db.writeWithoutTransaction { db in try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL") }
        try Self.preallocateWAL(db, path: path + "-wal")
        self.retention = retention
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE custody (
                    workflow TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    document TEXT NOT NULL,
                    state TEXT NOT NULL,
                    target TEXT,
                    updated REAL NOT NULL,
                    PRIMARY KEY (workflow, seq)
                );
                CREATE INDEX custody_state ON custody(state);
                CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                """)
        }
        migrator.registerMigration("v2") { db in
            // The attempt a step is on, recorded when it starts without rewriting the document
            // (merged into the document's `attempts` when the entry is read).
            try db.execute(sql: "ALTER TABLE custody ADD COLUMN attempt INTEGER")
        }
        try migrator.migrate(db)
    }

    /// Grows the WAL file once to what a checkpoint cycle fills (zeros past its end).
    ///
    /// Why: every custody promise is a synced WAL commit. A commit that appends to the file also
    /// changes its size, so its fdatasync must commit the inode through ext4's journal as well —
    /// measured here at 0.22–0.24 ms against 0.10–0.13 ms for overwriting blocks already on
    /// disk. After a checkpoint SQLite writes the WAL from its start again, so once the file
    /// has its full size every commit overwrites. Safe: bytes past the WAL's end belong to no
    /// frame (recovery stops at the first invalid frame, and zeros are one), and the write lock
    /// is held meanwhile, so no commit appends concurrently. Best effort: only speed is at stake.
    private static func preallocateWAL(_ queue: DatabaseQueue, path: String) throws {
        try queue.writeWithoutTransaction { db in
            let pageSize = try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 4096
            let checkpointPages = try Int.fetchOne(db, sql: "PRAGMA wal_autocheckpoint") ?? 1000
            // WAL header, then frames of (24-byte header + page); room for one more large commit.
            let wanted = 32 + (checkpointPages + 64) * (pageSize + 24)
            try db.execute(sql: "BEGIN IMMEDIATE")
            defer { try? db.execute(sql: "COMMIT") }
            let fd = open(path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { return }  // not in WAL mode after all: nothing to grow
            defer { close(fd) }
            var status = stat()
            guard fstat(fd, &status) == 0, Int(status.st_size) < wanted else { return }
            let zeros = [UInt8](repeating: 0, count: 1 << 20)
            var offset = Int(status.st_size)
            while offset < wanted {
                let count = min(zeros.count, wanted - offset)
                let written = zeros.withUnsafeBytes { pwrite(fd, $0.baseAddress, count, off_t(offset)) }
                // Only speed is at stake: a full disk shows up in the journal's own writes.
                guard written > 0 else { break }
                offset += written
            }
            _ = fsync(fd)
        }
    }

    /// Copies everything the WAL holds into the database file (synced), as a clean stop does:
    /// the database file alone is then complete, e.g. for a copy taken with the agent stopped.
    /// The WAL keeps its size (see `preallocateWAL`).
    public func checkpoint() throws {
        _ = try db.writeWithoutTransaction { db in try db.checkpoint(.full) }
    }

    /// Stores a received document unless (workflow, seq) is already here. Returns false for a
    /// duplicate. The write is synced before this returns: only then may the sender be told yes.
    /// `json`, if given, is the document's text as received (stored as is).
    public func accept(_ document: WorkflowDocument, json: String? = nil, seq: Int, state: State = .accepted) throws -> Bool {
        let json = try json ?? document.json()
        return try durably { db in
            try db.cachedStatement(sql: "INSERT OR IGNORE INTO custody (workflow, seq, document, state, updated) VALUES (?, ?, ?, ?, ?)")
                .execute(arguments: [document.id, seq, json, state, Date().timeIntervalSince1970])
            return db.changesCount > 0
        }
    }

    /// Records a new state (and document) for an entry. `json`, if given, is `document` already
    /// encoded (the hand-off sends the same text).
    public func update(_ document: WorkflowDocument, json: String? = nil, seq: Int, state: State, target: String? = nil) throws {
        let json = try json ?? document.json()
        try promptly { db in
            try db.cachedStatement(sql: "UPDATE custody SET document = ?, state = ?, target = ?, updated = ? WHERE workflow = ? AND seq = ?")
                .execute(arguments: [json, state, target, Date().timeIntervalSince1970, document.id, seq])
        }
    }

    /// Records a new state for an entry whose document has not changed.
    public func update(_ workflow: String, seq: Int, state: State, target: String? = nil) throws {
        try promptly { db in
            try db.cachedStatement(sql: "UPDATE custody SET state = ?, target = ?, updated = ? WHERE workflow = ? AND seq = ?")
                .execute(arguments: [state, target, Date().timeIntervalSince1970, workflow, seq])
        }
    }

    /// Records that the step of (workflow, seq) begins its `attempt`-th attempt. Written before
    /// the step runs, so that the rerun after a crash is known as the next attempt.
    public func markRunning(_ workflow: String, seq: Int, attempt: Int) throws {
        try promptly { db in
            try db.cachedStatement(sql: "UPDATE custody SET state = 'running', attempt = ?, updated = ? WHERE workflow = ? AND seq = ?")
                .execute(arguments: [attempt, Date().timeIntervalSince1970, workflow, seq])
        }
    }

    /// Marks (workflow, seq) handed on and stores the next entry for ourselves, in one
    /// transaction: the hand-off to ourselves cannot be half done.
    public func handToSelf(_ document: WorkflowDocument, from seq: Int) throws {
        let json = try document.json()
        let now = Date().timeIntervalSince1970
        try durably { db in
            try db.execute(sql: "UPDATE custody SET document = ?, state = 'handed', target = 'self', updated = ? WHERE workflow = ? AND seq = ?",
                           arguments: [json, now, document.id, seq])
            try db.execute(sql: "INSERT OR IGNORE INTO custody (workflow, seq, document, state, updated) VALUES (?, ?, ?, 'accepted', ?)",
                           arguments: [document.id, document.cursor, json, now])
        }
    }

    /// A transaction synced to disk before it returns (`synchronous=FULL`): used where another
    /// agent is told "stored" — taking custody — so a power cut cannot undo the promise.
    private func durably<T>(_ body: (Database) throws -> T) throws -> T { try write(synchronous: "FULL", body) }

    /// A transaction that survives a crash of the agent (WAL, `synchronous=NORMAL`) but may be
    /// lost with the machine's power: state changes after custody. Losing one only repeats work
    /// (a step reruns, a hand-off is resent and deduplicated) — exactly what a crash does anyway.
    private func promptly<T>(_ body: (Database) throws -> T) throws -> T { try write(synchronous: "NORMAL", body) }

    private func write<T>(synchronous: String, _ body: (Database) throws -> T) throws -> T {
        try db.writeWithoutTransaction { db in
            try db.cachedStatement(sql: "PRAGMA synchronous = \(synchronous)").execute()
            // BEGIN and COMMIT as cached statements: GRDB's `inTransaction` compiles both from
            // their text on every call, and every hop makes four or five writes (CPU, which the
            // agents share with the server on a small machine).
            try db.cachedStatement(sql: "BEGIN IMMEDIATE").execute()
            do {
                let result = try body(db)
                try db.cachedStatement(sql: "COMMIT").execute()
                return result
            } catch {
                if sqlite3_get_autocommit(db.sqliteConnection) == 0 { try? db.execute(sql: "ROLLBACK") }
                throw error
            }
        }
    }

    /// Reads without GRDB's read-only savepoint, which compiles three statements around each
    /// read. Safe: this queue's one connection is the only one that writes, and a read runs
    /// between writes, never inside one.
    private func read<T>(_ body: (Database) throws -> T) throws -> T {
        try db.inDatabase(body)
    }

    /// The state of (workflow, seq), without reading its document; nil if not here.
    public func state(_ workflow: String, seq: Int) throws -> State? {
        try read { db in
            try State.fetchOne(db.cachedStatement(sql: "SELECT state FROM custody WHERE workflow = ? AND seq = ?"), arguments: [workflow, seq])
        }
    }

    public func entry(_ workflow: String, seq: Int) throws -> Entry? {
        try read { db in
            try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM custody WHERE workflow = ? AND seq = ?"), arguments: [workflow, seq]).map(Self.entry)
        }
    }

    /// Every entry of a workflow held here, latest step first.
    /// The entries of one workflow, given by its id or the first characters of it, latest
    /// step first. A prefix that several workflows share is refused with their ids: acting on
    /// one of them at random (`cancel 3f`) would be worse than asking for more characters.
    public func entries(workflow: String) throws -> [Entry] {
        try read { db in
            func entries(of id: String) throws -> [Entry] {
                try Row.fetchAll(db, sql: "SELECT * FROM custody WHERE workflow = ? ORDER BY seq DESC", arguments: [id]).map(Self.entry)
            }
            let exact = try entries(of: workflow)
            if !exact.isEmpty || workflow.isEmpty { return exact }
            // substr rather than LIKE: '%' and '_' in what was typed are characters, not patterns.
            let ids = try String.fetchAll(db, sql: "SELECT DISTINCT workflow FROM custody WHERE substr(workflow, 1, ?) = ? LIMIT 6",
                                          arguments: [workflow.count, workflow])
            guard ids.count <= 1 else {
                throw WorkflowError.invalid("'\(workflow)' is the start of several workflow ids (\(ids.prefix(5).joined(separator: ", "))\(ids.count > 5 ? ", …" : "")); give more of it")
            }
            guard let id = ids.first else { return [] }
            return try entries(of: id)
        }
    }

    public func entries(in states: [State]) throws -> [Entry] {
        try read { db in
            let marks = states.map { _ in "?" }.joined(separator: ",")
            return try Row.fetchAll(db, sql: "SELECT * FROM custody WHERE state IN (\(marks)) ORDER BY updated",
                                    arguments: StatementArguments(states.map(\.rawValue))).map(Self.entry)
        }
    }

    /// (workflow, seq) of the entries in `states`, without reading their documents.
    public func keys(in states: [State]) throws -> [(workflow: String, seq: Int)] {
        try read { db in
            let marks = states.map { _ in "?" }.joined(separator: ",")
            return try Row.fetchAll(db.cachedStatement(sql: "SELECT workflow, seq FROM custody WHERE state IN (\(marks))"),
                                    arguments: StatementArguments(states.map(\.rawValue))).map { ($0["workflow"], $0["seq"]) }
        }
    }

    public func recent(limit: Int = 50) throws -> [Entry] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM custody ORDER BY updated DESC LIMIT ?", arguments: [limit]).map(Self.entry)
        }
    }

    // MARK: module records (small JSON values by key, e.g. the launcher's configs and instances)

    public func setRecord(_ key: String, json: String?) throws {
        try promptly { db in
            if let json {
                try db.execute(sql: "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", arguments: [key, json])
            } else {
                try db.execute(sql: "DELETE FROM kv WHERE key = ?", arguments: [key])
            }
        }
    }

    public func records(prefix: String) throws -> [(key: String, json: String)] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT key, value FROM kv WHERE substr(key, 1, ?) = ? ORDER BY key",
                             arguments: [prefix.count, prefix]).map { ($0["key"], $0["value"]) }
        }
    }

    /// Handed-on and finished entries younger than this are kept whatever their number: each
    /// row is also the dedup key of its (workflow, seq), and a sender that waited out a long
    /// outage may still resend it.
    public static let minimumRetention: TimeInterval = 7 * 24 * 3600

    /// Drops the oldest handed/finished entries beyond `retention`, if older than `minimumRetention`.
    public func prune(now: Date = Date()) throws {
        // Counted first, through the state index: mostly nothing is beyond `retention`, and the
        // delete sorts every handed and finished entry while the journal waits — the connection's
        // I/O thread too, which takes hand-offs into it.
        let ended = try read { db in
            try Int.fetchOne(db.cachedStatement(sql: "SELECT count(*) FROM custody WHERE state IN ('handed', 'finished')")) ?? 0
        }
        guard ended > retention else { return }
        try promptly { db in
            try db.execute(sql: """
                DELETE FROM custody WHERE rowid IN (
                    SELECT rowid FROM custody WHERE state IN ('handed', 'finished') ORDER BY updated DESC LIMIT -1 OFFSET ?)
                  AND updated < ?
                """, arguments: [retention, now.timeIntervalSince1970 - Self.minimumRetention])
        }
    }

    private static func entry(_ row: Row) throws -> Entry {
        var document = try WorkflowDocument.from(json: row["document"])
        let seq: Int = row["seq"]
        if let attempt: Int = row["attempt"], document.steps.indices.contains(seq) {
            let step = document.steps[seq].id
            document.attempts[step] = max(document.attempts[step] ?? 0, attempt)
        }
        return Entry(document: document, seq: seq, state: row["state"], target: row["target"],
                     updated: Date(timeIntervalSince1970: row["updated"]))
    }
}
