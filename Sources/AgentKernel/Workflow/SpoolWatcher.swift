import CStrophe
import Foundation
import Logging
import Synchronization

/// Takes workflow files dropped into `DIR/incoming/` and submits them.
///
/// A file is claimed by renaming it into `processing/AGENT/` (rename is atomic, so of several
/// agents watching one directory exactly one wins), then validated and submitted, and moved to
/// `accepted/ID-NAME` or to `rejected/NAME` with `NAME.error` saying why. Nothing is deleted.
///
/// Files whose names start with `.` are ignored: write to `.name` and rename, so a half-written
/// file is never read. A file written in place (cp, scp, curl -o) is claimed only once it has
/// been left alone — seen unchanged (inode, size, mtime, ctime) for `quietPeriod` by the agent's
/// monotonic clock — since a file cut inside `steps:` is still valid YAML, with fewer steps. Editors' and downloads' leftovers (`isLeftover`) are
/// never claimed.
///
/// Only the file's own faults reject it. A claim the agent could not finish (the journal
/// failed, the disk is full, the move to `accepted/` failed, reading it ran out of
/// descriptors or met an I/O error) stays in `processing/` and is tried again every
/// `retryInterval` and at the next start.
final class SpoolWatcher: Sendable {
    /// `engine.submit(document, by:, id:)`; a parameter so that tests need no engine.
    typealias Submit = @Sendable (_ document: WorkflowDocument, _ submitter: String, _ id: String) throws -> WorkflowDocument

    let incoming: URL, processing: URL, accepted: URL, rejected: URL
    /// This agent's claims: `processing/AGENT/` (see `Claim`).
    let claims: URL
    let submit: Submit
    let agentName: String
    let submitter: @Sendable () -> String
    let logger: Logger
    /// The watcher's clock. Monotonic: a wall clock stepped back, or a file's times from an NFS
    /// server whose clock is ahead, made a finished file wait out the difference, silently.
    typealias Instant = ContinuousClock.Instant
    static let retryInterval: Duration = .seconds(5)
    /// How long a file in `incoming/` must have been seen unchanged to be claimed.
    static let quietPeriod: Duration = .milliseconds(1500)
    /// How long a file may keep changing before it is reported (once) as never left alone.
    static let unsettledReport: Duration = .seconds(60)

    private struct Kept {
        var retryAt: Instant
        var problem: String
        /// The workflow, once submitted: a retry only moves the file (see `process`).
        var submitted: String?
    }
    /// Claims left in `processing/` after a failure of the agent's, by path.
    private let kept = Mutex<[String: Kept]>([:])

    /// What a file in `incoming/` looked like; a change of any of it means a writer is at work.
    /// The times are only compared with the previous scan's, never with a clock: mtime may be
    /// set anywhere (`cp -p`, `touch -d`, an archive's), and both come from the file server's
    /// clock on NFS. ctime changes with every write and with the rename into `incoming/`.
    struct Sighting: Equatable {
        var inode: UInt64, size: Int64, modified: Date, changed: Date
    }
    /// A file of `incoming/` as the scans have seen it.
    private struct Watched {
        var sighting: Sighting
        /// The first scan that saw it as it is now.
        var unchangedSince: Instant
        /// The first scan that saw it at all.
        var firstSeen: Instant
    }
    /// The files of `incoming/` at the previous scan, by name.
    private let sightings = Mutex<[String: Watched]>([:])
    /// Problems logged, by name in `incoming/` (`listing` for the directory's own).
    private let reported = Mutex<[String: String]>([:])

    /// Reads a claimed file (path, name); `readDroppedFile` but in tests.
    let readFile: @Sendable (_ path: String, _ name: String) throws -> Data
    /// `renameat2` with `RENAME_NOREPLACE`, but in tests of the file systems that lack it.
    let renameNoReplace: RenameNoReplace

    init(directory: String, agentName: String, submitter: @escaping @Sendable () -> String, submit: @escaping Submit,
         read: @escaping @Sendable (_ path: String, _ name: String) throws -> Data = {
             try SpoolWatcher.readDroppedFile($0, name: $1, limit: WorkflowParser.maximumBytes)
         },
         renameNoReplace: @escaping RenameNoReplace = SpoolWatcher.systemRenameNoReplace) throws {
        let root = URL(fileURLWithPath: directory)
        incoming = root.appendingPathComponent("incoming")
        processing = root.appendingPathComponent("processing")
        accepted = root.appendingPathComponent("accepted")
        rejected = root.appendingPathComponent("rejected")
        claims = processing.appendingPathComponent(Self.directoryName(agent: agentName))
        for dir in [incoming, processing, claims, accepted, rejected] {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        }
        lock = try Self.takeLock(claims: claims, agent: agentName, spool: directory)
        self.submit = submit
        self.readFile = read
        self.renameNoReplace = renameNoReplace
        self.agentName = agentName
        self.submitter = submitter
        logger = BatonLog.logger(agent: agentName, module: "spool")
    }

    deinit { close(lock) }

    /// The descriptor holding `flock` on `processing/AGENT/.lock` for the watcher's life.
    private let lock: Int32

    /// Two agents of one name would share `processing/AGENT/`, and each retries every claim
    /// there that it does not remember making: each would submit the other's claims, under
    /// journals of their own that cannot tell a duplicate. So one watcher per name: the
    /// second one's init throws `SpoolNameInUse`. (flock works across NFS clients on Linux,
    /// through the NFS lock manager, unless the spool is mounted with `nolock`.)
    private static func takeLock(claims: URL, agent: String, spool: String) throws -> Int32 {
        let path = claims.appendingPathComponent(".lock").path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SystemError(errno, "cannot open \(path)") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(fd)
            if code == EWOULDBLOCK { throw SpoolNameInUse(spool: spool, agent: agent, lock: path) }
            throw SystemError(code, "cannot lock \(path)")
        }
        return fd
    }

    func run() async {
        logger.info("watching \(incoming.path)")
        while !Task.isCancelled {
            scanOnce()
            try? await Task.sleep(for: .milliseconds(500))
        }
    }

    func scanOnce(now: Instant = .now) {
        // Claims kept after a failure, and at the first scan those left by a crash, come first.
        retryClaims(now: now)
        let listed: [String]
        do { listed = try FileManager.default.contentsOfDirectory(atPath: incoming.path) } catch {
            report(Self.listing, "cannot list \(incoming.path): \(error)")
            return
        }
        let names = listed.filter { !$0.hasPrefix(".") }.sorted()
        let previous = sightings.withLock { $0 }
        var seen: [String: Watched] = [:]
        for name in names {
            if Self.isLeftover(name) {
                report(name, "leaving incoming/\(name) alone: an editor's or a download's leftover", level: .info)
                continue
            }
            let path = incoming.appendingPathComponent(name).path
            guard let sighting = Self.sighting(of: path) else { continue }
            let before = previous[name]
            let watched = Watched(sighting: sighting, unchangedSince: before?.sighting == sighting ? before!.unchangedSince : now,
                                  firstSeen: before?.firstSeen ?? now)
            seen[name] = watched
            guard now - watched.unchangedSince >= Self.quietPeriod else {
                // A writer that never stops (a log appended to, a copy stuck in a loop) would
                // otherwise keep the file waiting with no word.
                if now - watched.firstSeen >= Self.unsettledReport {
                    report(name, "incoming/\(name) has kept changing for over a minute; it is claimed once left alone for 1.5 s", level: .warning)
                }
                continue
            }
            if name.utf8.count > Self.maximumNameBytes {
                rejectLongName(name)
                continue
            }
            // The claim: one rename; whoever loses gets ENOENT on the file and moves on.
            let claim = Claim(in: claims, name: name)
            let code = move(path, toClaim: claim)
            guard code == 0 else {
                if code == ENOENT, Self.sighting(of: path) == nil { continue }
                report(name, "cannot claim incoming/\(name): \(String(cString: strerror(code)))")
                continue
            }
            process(claim, now: now)
        }
        sightings.withLock { $0 = seen }
        // What was reported of names gone is forgotten: if they come back, they are told again.
        let present = Set(listed)
        reported.withLock { $0 = $0.filter { key, _ in present.contains(key) } }
    }

    /// Renames `path` (in `incoming/`) to `claim`: 0 or the errno. A claims directory gone
    /// (removed by hand, or moved away by an earlier version's agent) is made again, or no file
    /// could be claimed until the agent's restart.
    private func move(_ path: String, toClaim claim: Claim) -> Int32 {
        if rename(path, claim.url.path) == 0 { return 0 }
        let code = errno
        guard code == ENOENT, Self.sighting(of: path) != nil, !FileManager.default.fileExists(atPath: claims.path),
              (try? FileManager.default.createDirectory(at: claims, withIntermediateDirectories: true)) != nil else { return code }
        logger.warning("spool: \(claims.path) was gone; made it again")
        return rename(path, claim.url.path) == 0 ? 0 : errno
    }

    /// The key of `incoming/`'s own problem in `reported` (no file name is empty).
    static let listing = ""
    /// The longest name taken as it is: the claim adds 9 bytes, `accepted/ID-` 13 and
    /// `rejected/NAME.error` 6 to the 255 a name may have (the names tried after a collision,
    /// longer still, are cut short: see `place`).
    static let maximumNameBytes = 240

    /// Logs a problem of a name in `incoming/` (or of `incoming/` itself) when it is new: the
    /// scan meets it twice a second.
    private func report(_ key: String, _ problem: String, level: Logger.Level = .error) {
        guard reported.withLock({ $0.updateValue(problem, forKey: key) != problem }) else { return }
        logger.log(level: level, "spool: \(problem)")
    }

    /// What `report` said, by name: for tests.
    var problems: [String: String] { reported.withLock { $0 } }

    /// A name too long to be claimed goes to `rejected/` under its first 200 bytes, the
    /// `.error` saying what it was. Moving it there is the claim: of several agents one wins.
    private func rejectLongName(_ name: String) {
        let short = Self.prefix(of: name, bytes: 200)
        let claim = Claim(url: incoming.appendingPathComponent(name), name: short, id: Claim.newID(), key: name)
        let reason = "the name is \(name.utf8.count) bytes long; the spool takes names of at most \(Self.maximumNameBytes) bytes. It was: \(name)"
        do {
            let placed = try place(claim, in: rejected, as: short, note: reason + "\n")
            logger.warning("spool: \(short)… rejected as \(placed): \(reason)")
        } catch let error as SystemError where error.code == ENOENT && Self.sighting(of: claim.url.path) == nil {
            // Another agent took it.
        } catch {
            report(name, "cannot move incoming/\(name) to rejected/: \(error)")
        }
    }

    /// Names of editors' backups and swap files and of downloads in progress, which are not
    /// workflows even when they end up in `incoming/`: `NAME~`, `#NAME#` (and `.#NAME`, as
    /// every dot file), `*.swp`, `*.swo`, `*.swx`, `*.tmp`, `*.part`, `*.crdownload`.
    static func isLeftover(_ name: String) -> Bool {
        name.hasSuffix("~") || (name.count > 1 && name.hasPrefix("#") && name.hasSuffix("#"))
            || [".swp", ".swo", ".swx", ".tmp", ".part", ".crdownload"].contains { name.hasSuffix($0) }
    }

    /// The names in directory `path`; none if it does not exist; nil if it cannot be listed.
    static func list(_ path: String) -> [String]? {
        do { return try FileManager.default.contentsOfDirectory(atPath: path) } catch {
            return (error as? CocoaError)?.code == .fileReadNoSuchFile ? [] : nil
        }
    }

    /// Whether `path` is a regular file, a link not followed.
    static func isRegularFile(_ path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFREG
    }

    static func sighting(of path: String) -> Sighting? {
        var status = stat()
        guard lstat(path, &status) == 0 else { return nil }
        func date(_ time: timespec) -> Date { Date(timeIntervalSince1970: Double(time.tv_sec) + Double(time.tv_nsec) / 1e9) }
        return Sighting(inode: UInt64(status.st_ino), size: Int64(status.st_size), modified: date(status.st_mtim), changed: date(status.st_ctim))
    }

    /// A file this agent claimed: `processing/AGENT/CLAIMID-NAME`, CLAIMID 8 random hex
    /// digits. A directory per agent, its name matched whole, keeps agents apart whatever their
    /// names hold (the old `processing/NAME.CLAIMID.AGENT` gave agent `eu` the claims of
    /// `build.eu`, and both submitted them).
    struct Claim {
        let url: URL
        /// The name it was dropped under.
        let name: String
        let id: String
        /// What the workflow id derives from: the same on every retry and after a restart.
        let key: String

        /// A new claim for `name`.
        init(in claims: URL, name: String) {
            self.init(url: claims.appendingPathComponent("\(Self.newID())-\(name)"))
        }

        /// A fresh claim id: 8 hex digits.
        static func newID() -> String { String(UUID().uuidString.prefix(8).lowercased()) }

        init(url: URL, name: String, id: String, key: String) {
            self.url = url
            self.name = name
            self.id = id
            self.key = key
        }

        /// The claim at `url` in an agent's directory.
        init(url: URL) {
            let file = url.lastPathComponent
            let prefix = file.prefix(8)
            let wellFormed = file.count > 9 && prefix.allSatisfy(\.isHexDigit) && file.dropFirst(8).first == "-"
            self.url = url
            name = wellFormed ? String(file.dropFirst(9)) : file
            id = wellFormed ? String(prefix) : String(WorkflowDirectoryHash.hex(of: file).prefix(8))
            key = "\(url.deletingLastPathComponent().lastPathComponent)/\(file)"
        }

        /// A claim left by an agent of an earlier version, `processing/NAME.CLAIMID.AGENT`, if
        /// `file` is one of `agent`'s: it ends in `.AGENT`, preceded by `.` and 8 hex digits.
        init?(old file: String, in processing: URL, agent: String) {
            guard file.hasSuffix(".\(agent)") else { return nil }
            let rest = file.dropLast(agent.count + 1)
            guard let dot = rest.lastIndex(of: "."), dot > rest.startIndex else { return nil }
            let claimID = rest[rest.index(after: dot)...]
            guard claimID.count == 8, claimID.allSatisfy(\.isHexDigit) else { return nil }
            url = processing.appendingPathComponent(file)
            name = String(rest[..<dot])
            id = String(claimID)
            key = file  // as that version derived the workflow id
        }
    }

    /// `agent` as a directory name: `/`, `%`, a leading `.` and control characters as `%XX`.
    static func directoryName(agent: String) -> String {
        var bytes: [UInt8] = []
        for (index, byte) in agent.utf8.enumerated() {
            if byte == UInt8(ascii: "/") || byte == UInt8(ascii: "%") || byte < 0x20 || (index == 0 && byte == UInt8(ascii: ".")) {
                bytes += Array("%\(byte < 16 ? "0" : "")\(String(byte, radix: 16, uppercase: true))".utf8)
            } else {
                bytes.append(byte)
            }
        }
        return bytes.isEmpty ? "%" : String(decoding: bytes, as: UTF8.self)
    }

    /// This agent's claims: those kept after a failure, and at the first scan those left by a
    /// crash (old-format ones too).
    private func retryClaims(now: Instant) {
        let ownListing = Self.list(claims.path), oldListing = Self.list(processing.path)
        let own = (ownListing ?? []).sorted()
            .filter { !$0.hasPrefix(".") }  // .lock; a claim never starts with a dot (CLAIMID-NAME)
            .map { Claim(url: claims.appendingPathComponent($0)) }
        let old = (oldListing ?? []).sorted()
            .compactMap { Claim(old: $0, in: processing, agent: agentName) }
            // A claim was a file: `build.20241129.eu`, agent build.20241129.eu's claims directory,
            // has the form of one of agent eu's.
            .filter { Self.isRegularFile($0.url.path) }
        // Records of claims moved away by hand are dropped; but a listing that failed (EMFILE,
        // EIO) says nothing of what is there, and dropping the record of a claim submitted but
        // not yet moved would submit it again.
        if ownListing != nil, oldListing != nil {
            let paths = Set((own + old).map(\.url.path))
            kept.withLock { $0 = $0.filter { paths.contains($0.key) } }
        }
        for claim in own + old {
            if let retryAt = kept.withLock({ $0[claim.url.path]?.retryAt }), retryAt > now { continue }
            process(claim, now: now)
        }
    }

    private func process(_ claim: Claim, now: Instant) {
        // The id derives from the claim, so finishing a claim after a crash cannot submit twice:
        // the journal ignores a second submission of an id it holds (for a week after it ended).
        let id = String(WorkflowDirectoryHash.hex(of: claim.key).prefix(12))
        let submitted: String
        if let earlier = kept.withLock({ $0[claim.url.path]?.submitted }) {
            submitted = earlier
        } else {
            let document: WorkflowDocument
            do {
                document = try WorkflowParser.parse(data: readFile(claim.url.path, claim.name), source: claim.name)
            } catch let error as TemporaryReadFailure {
                keep(claim, problem: "\(error) (kept for a retry)", now: now)
                return
            } catch {
                reject(claim, because: error, now: now)
                return
            }
            do {
                submitted = try submit(document, "spool \(submitter())", id).id
            } catch {
                // The document is valid: the agent failed, not the file.
                keep(claim, problem: "cannot submit \(claim.name) (kept for a retry): \(error)", now: now)
                return
            }
        }
        // Submitted: the workflow runs, so whatever happens now, the file is never rejected.
        do {
            try place(claim, in: accepted, as: "\(submitted)-\(claim.name)")
            kept.withLock { $0[claim.url.path] = nil }
            logger.info("spool: \(claim.name) accepted as workflow \(submitted)")
        } catch {
            keep(claim, problem: "\(claim.name) submitted as workflow \(submitted), but cannot move it to accepted/ (kept for a retry): \(error)",
                 now: now, submitted: submitted)
        }
    }

    /// Leaves a claim in `processing/` for a retry, logging its problem once.
    private func keep(_ claim: Claim, problem: String, now: Instant, submitted: String? = nil) {
        let isNew = kept.withLock { kept in
            let isNew = kept[claim.url.path]?.problem != problem
            kept[claim.url.path] = Kept(retryAt: now + Self.retryInterval, problem: problem, submitted: submitted)
            return isNew
        }
        if isNew { logger.error("spool: \(problem)") }
    }

    private func reject(_ claim: Claim, because error: Error, now: Instant) {
        do {
            try place(claim, in: rejected, as: claim.name.isEmpty ? claim.id : claim.name, note: "\(error)\n")
        } catch {
            keep(claim, problem: "cannot move \(claim.url.path) to rejected/ (kept for a retry): \(error)", now: now)
            return
        }
        kept.withLock { $0[claim.url.path] = nil }
        logger.warning("spool: \(claim.name) rejected: \(error)")
    }

    /// The longest name a file may have (NAME_MAX).
    static let maximumFileNameBytes = 255

    /// The first characters of `text` that fit in `bytes` bytes of UTF-8.
    static func prefix(of text: String, bytes: Int) -> String {
        var prefix = "", used = 0
        for character in text {
            // Stops at the first that does not fit: a later, shorter one must not be taken.
            guard used + character.utf8.count <= bytes else { break }
            prefix.append(character)
            used += character.utf8.count
        }
        return prefix
    }

    /// Moves a claim into `directory` as `name`, or `name-CLAIMID` (then `-2`, `-3`, …) when
    /// that is taken, and returns the name. `name` is cut short so that each name tried, with
    /// `.error`, fits in 255 bytes: `accepted/ID-NAME-CLAIMID` of a 240-byte name is 262 bytes,
    /// and its ENAMETOOLONG would keep the claim in processing/ for ever. With a `note`, `NAME.error` holding it is written
    /// first and must be free too. Each name is taken in one step that fails if it exists
    /// (O_EXCL, RENAME_NOREPLACE): between a check and a move, another agent may take the name,
    /// and a file dropped as `NAME.error` is as much a dropped file as any.
    @discardableResult
    func place(_ claim: Claim, in directory: URL, as name: String, note: String? = nil) throws -> String {
        let room = Self.maximumFileNameBytes - (note == nil ? 0 : ".error".utf8.count)
        for attempt in 0..<100 {
            let suffix = attempt == 0 ? "" : attempt == 1 ? "-\(claim.id)" : "-\(claim.id)-\(attempt)"
            let candidate = Self.prefix(of: name, bytes: room - suffix.utf8.count) + suffix
            let target = directory.appendingPathComponent(candidate).path
            if let note {
                let code = Self.create(target + ".error", holding: note)
                if code == EEXIST { continue }
                guard code == 0 else { throw SystemError(code, "cannot write \(target).error") }
            }
            let code = Self.moveWithoutReplacing(claim.url.path, to: target, renameNoReplace: renameNoReplace)
            if code == 0 { return candidate }
            // The note was written by this call a moment ago: no one else's file.
            if note != nil { unlink(target + ".error") }
            guard code == EEXIST else { throw SystemError(code, "cannot move \(claim.url.path) to \(target)") }
        }
        throw SystemError(EEXIST, "no free name for \(name) in \(directory.path)")
    }

    /// Creates `path`, which must not exist, holding `text`; 0 or the errno.
    static func create(_ path: String, holding text: String) -> Int32 {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else {
                let code = count < 0 ? errno : ENOSPC
                unlink(path)
                return code
            }
            bytes = bytes.dropFirst(count)
        }
        return 0
    }

    /// A rename that fails with EEXIST rather than replace `to`: 0 or the errno.
    typealias RenameNoReplace = @Sendable (_ from: String, _ to: String) -> Int32
    static let systemRenameNoReplace: RenameNoReplace = { baton_rename_noreplace($0, $1) == 0 ? 0 : errno }

    /// rename(2) that fails with EEXIST rather than replace `to`; 0 or the errno.
    static func moveWithoutReplacing(_ from: String, to: String, renameNoReplace: RenameNoReplace = systemRenameNoReplace) -> Int32 {
        let code = renameNoReplace(from, to)
        guard code == EINVAL || code == ENOSYS else { return code }
        // No RENAME_NOREPLACE here (NFS, OpenZFS before 2.2). The name is reserved by a file
        // only this call can have made (O_EXCL), and the source renamed over it: a rename that
        // replaces only our own placeholder, and moves the source in one step, so of two agents
        // moving one file only one can. Not link() and unlink(): with fs.protected_hardlinks
        // (the distributions' default) link() fails with EPERM on a file the agent neither owns
        // nor may write — any file dropped by another user with mode 0644 — and a source left in
        // place until the unlink can be linked by two agents at once. A crash between the two
        // steps leaves an empty placeholder; the claim is still in processing/ and its retry
        // takes the next free name.
        let fd = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return errno }
        close(fd)
        guard rename(from, to) == 0 else {
            let code = errno
            unlink(to)  // the placeholder made just now
            return code
        }
        return 0
    }
}

/// Another watcher (of this process or another, on this machine or another) holds the lock of
/// the agent's claims directory: an agent of the same name watches the spool.
struct SpoolNameInUse: Error, CustomStringConvertible {
    let spool: String, agent: String, lock: String
    var description: String {
        "spool \(spool) is not watched by this agent: another agent named '\(agent)' watches it (it holds \(lock)). "
            + "Agents sharing a spool must have distinct names, or they would submit each other's files twice: set `name:` "
            + "in each agent's configuration (it defaults to the local part of the JID, so build@host/a and build@host/b are both 'build')"
    }
}

/// A file that could not be read for a reason of the system's (see `readFailure`).
struct TemporaryReadFailure: Error, CustomStringConvertible {
    let description: String
}

/// A failed system call: what was tried and strerror's words.
struct SystemError: Error, CustomStringConvertible {
    let code: Int32
    let description: String
    init(_ code: Int32, _ what: String) {
        self.code = code
        description = "\(what): \(String(cString: strerror(code)))"
    }
}

extension SpoolWatcher {
    /// `WorkflowError.invalid` for the file's faults (EACCES, …); `TemporaryReadFailure` for
    /// the system's, which a retry may get past: descriptors or memory short, an I/O error.
    static func readFailure(_ name: String, _ code: Int32) -> Error {
        let message = "cannot read \(name): \(String(cString: strerror(code)))"
        return [EMFILE, ENFILE, ENOMEM, ENOBUFS, EIO, EINTR].contains(code) ? TemporaryReadFailure(description: message) : WorkflowError.invalid(message)
    }

    /// The bytes of a file dropped into the spool, read only if it is a regular file of at most
    /// `limit` bytes. A symbolic link is not followed (`incoming/x -> /dev/zero` would read
    /// for ever; `-> /etc/shadow` would read what the dropper cannot), a FIFO does not block
    /// the spool, and the size is known before a byte is read. `followingLinks` is for a
    /// user's own file (`agentctl wf submit`): read with the user's rights, a link may be followed,
    /// to a regular file only.
    static func readDroppedFile(_ path: String, name: String, limit: Int, followingLinks: Bool = false) throws -> Data {
        let fd = open(path, O_RDONLY | (followingLinks ? 0 : O_NOFOLLOW) | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            if code == ELOOP, !followingLinks { throw WorkflowError.invalid("\(name) is a symbolic link; drop the workflow file itself") }
            throw readFailure(name, code)
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw readFailure(name, errno) }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw WorkflowError.invalid("\(name) is not a regular file (a directory, FIFO, socket or device)\(followingLinks ? "" : "; drop the workflow file itself")")
        }
        guard Int(status.st_size) <= limit else { throw WorkflowError.tooLarge(bytes: Int(status.st_size), limit: limit) }
        // Read to the end, but never more than the limit allows: the file may still grow.
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while data.count <= limit {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw readFailure(name, errno) }
            if count == 0 { break }
            data.append(contentsOf: buffer[0..<count])
        }
        guard data.count <= limit else { throw WorkflowError.tooLarge(bytes: data.count, limit: limit) }
        return data
    }
}

extension WorkflowParser {
    /// The bytes of a workflow file named on a command line (`agentctl wf submit FILE`): a
    /// regular file, links followed, of at most `maximumBytes`, checked before reading and
    /// while reading — a FIFO must not block the command, nor /dev/zero fill its memory.
    public static func readFile(_ path: String) throws -> Data {
        try SpoolWatcher.readDroppedFile(path, name: path, limit: maximumBytes, followingLinks: true)
    }
}

/// FNV-1a over a string, as hex: a stable short id (no cryptographic claim).
enum WorkflowDirectoryHash {
    static func hex(of text: String) -> String {
        var a: UInt64 = 0xcbf29ce484222325, b: UInt64 = 0x84222325cbf29ce4
        for byte in text.utf8 {
            a = (a ^ UInt64(byte)) &* 0x100000001b3
            b = (b ^ UInt64(byte)) &* 0x1000193
        }
        return String(format: "%016llx%016llx", a, b)
    }
}
