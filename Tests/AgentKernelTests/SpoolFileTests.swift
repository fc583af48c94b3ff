import Foundation
import Synchronization
import Testing
@testable import AgentKernel

/// What the spool reads from `incoming/`: regular files only, and never more than the limit.
@Suite struct SpoolFileTests {
    let directory: String

    init() throws {
        directory = NSTemporaryDirectory() + "baton-spool-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func refusal(_ path: String, limit: Int = 1024) -> String {
        do {
            _ = try SpoolWatcher.readDroppedFile(path, name: "x.yaml", limit: limit)
            return "read"
        } catch { return "\(error)" }
    }

    @Test func aNameIsCutShortAtTheFirstCharacterThatDoesNotFit() {
        #expect(SpoolWatcher.prefix(of: "ab€c", bytes: 3) == "ab")
        #expect(SpoolWatcher.prefix(of: "ab€c", bytes: 5) == "ab€")
        #expect(SpoolWatcher.prefix(of: "abc", bytes: 10) == "abc")
    }

    @Test func aRegularFileIsRead() throws {
        try "workflow: w\n".write(toFile: directory + "/ok", atomically: true, encoding: .utf8)
        #expect(try SpoolWatcher.readDroppedFile(directory + "/ok", name: "ok", limit: 1024) == Data("workflow: w\n".utf8))
    }

    @Test func linksAreNotFollowed() throws {
        try FileManager.default.createSymbolicLink(atPath: directory + "/zero", withDestinationPath: "/dev/zero")
        try FileManager.default.createSymbolicLink(atPath: directory + "/passwd", withDestinationPath: "/etc/passwd")
        #expect(refusal(directory + "/zero") == "x.yaml is a symbolic link; drop the workflow file itself")
        #expect(refusal(directory + "/passwd") == "x.yaml is a symbolic link; drop the workflow file itself")
    }

    @Test func fifosAndDirectoriesAreRefusedWithoutBlocking() throws {
        #expect(mkfifo(directory + "/fifo", 0o600) == 0)
        #expect(refusal(directory + "/fifo") == "x.yaml is not a regular file (a directory, FIFO, socket or device); drop the workflow file itself")
        try FileManager.default.createDirectory(atPath: directory + "/dir", withIntermediateDirectories: false)
        #expect(refusal(directory + "/dir").hasPrefix("x.yaml is not a regular file"))
    }

    @Test func theSizeIsCheckedBeforeReading() throws {
        try Data(count: 2048).write(to: URL(fileURLWithPath: directory + "/big"))
        #expect(refusal(directory + "/big") == "workflow is 2048 bytes; the limit is 1024")
    }

    // MARK: the watcher

    static let workflow = "workflow: w\nsteps:\n  - { id: a, action: util.noop }\n"

    /// What the watcher submitted (ids), failing while `failure` is set.
    final class Submissions: Sendable {
        let ids = Mutex<[String]>([])
        let failure = Mutex<String?>(nil)
        var submit: SpoolWatcher.Submit {
            { document, _, id in
                if let failure = self.failure.withLock({ $0 }) { throw WorkflowError.invalid(failure) }
                self.ids.withLock { $0.append(id) }
                return document.submitted(by: "test", id: id)
            }
        }
    }

    func watcher(_ submissions: Submissions, agent: String = "a") throws -> SpoolWatcher {
        try SpoolWatcher(directory: directory, agentName: agent, submitter: { "test" }, submit: submissions.submit)
    }

    func drop(_ name: String, _ text: String = Self.workflow) throws {
        try text.write(toFile: "\(directory)/incoming/\(name)", atomically: false, encoding: .utf8)
    }

    /// The files (not directories) in `sub`, recursively, sorted; not dot files (the claim
    /// directories' `.lock`).
    func names(_ sub: String) -> [String] {
        ((try? FileManager.default.subpathsOfDirectory(atPath: "\(directory)/\(sub)")) ?? []).filter { path in
            guard !(path as NSString).lastPathComponent.hasPrefix(".") else { return false }
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: "\(directory)/\(sub)/\(path)", isDirectory: &isDirectory) && !isDirectory.boolValue
        }.sorted()
    }

    /// Scans at `now` and `quietPeriod` later: what was dropped before is claimed. The instant
    /// of the second scan.
    @discardableResult
    func settle(_ spool: SpoolWatcher, at now: ContinuousClock.Instant = .now) -> ContinuousClock.Instant {
        spool.scanOnce(now: now)
        spool.scanOnce(now: now + SpoolWatcher.quietPeriod)
        return now + SpoolWatcher.quietPeriod
    }

    /// Later than the retry of a claim kept at `now`.
    func afterRetry(_ now: ContinuousClock.Instant) -> ContinuousClock.Instant { now + SpoolWatcher.retryInterval + .seconds(1) }

    func append(_ text: String, to name: String) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(directory)/incoming/\(name)"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(text.utf8))
        try handle.close()
    }

    /// Replaces accepted/ by a file, so that moving a claim there fails (even for root).
    func breakAccepted() throws {
        try FileManager.default.removeItem(atPath: directory + "/accepted")
        try "".write(toFile: directory + "/accepted", atomically: false, encoding: .utf8)
    }

    func mendAccepted() throws {
        try FileManager.default.removeItem(atPath: directory + "/accepted")
        try FileManager.default.createDirectory(atPath: directory + "/accepted", withIntermediateDirectories: false)
    }

    /// Drops w.yaml and settles with accepted/ broken: submitted once, kept in processing/.
    /// The instant of the last scan.
    func submittedButKept(_ spool: SpoolWatcher, _ submissions: Submissions) throws -> ContinuousClock.Instant {
        try breakAccepted()
        try drop("w.yaml")
        let now = settle(spool)
        #expect(submissions.ids.withLock { $0.count } == 1)
        return now
    }

    @Test func aSubmittedFileIsNeverRejectedWhenItCannotBeMoved() throws {
        let submissions = Submissions()
        let spool = try watcher(submissions)
        let now = try submittedButKept(spool, submissions)
        #expect(names("rejected") == [])
        #expect(names("processing").count == 1)
        // Before the retry interval nothing happens; after it, the file is moved, not submitted again.
        spool.scanOnce(now: now + .seconds(1))
        try mendAccepted()
        spool.scanOnce(now: afterRetry(now))
        let ids = submissions.ids.withLock { $0 }
        #expect(ids.count == 1)
        #expect(names("accepted") == ["\(ids[0])-w.yaml"])
        #expect(names("processing") == [])
        #expect(names("rejected") == [])
    }

    @Test func aClaimLeftSubmittedIsResubmittedUnderTheSameIdAfterARestart() throws {
        let submissions = Submissions()
        do {
            let first = try watcher(submissions)
            try breakAccepted()
            try drop("w.yaml")
            settle(first)
            try mendAccepted()
        }
        // The next start (a new watcher) finishes the claim under the id it was submitted with,
        // which the journal ignores as a duplicate (JournalTests).
        let second = try watcher(submissions)
        second.scanOnce(now: .now)
        #expect(names("processing") == [])
        let ids = submissions.ids.withLock { $0 }
        #expect(ids.count == 2 && ids[0] == ids[1])
        #expect(names("accepted") == ["\(ids[0])-w.yaml"])
        #expect(names("rejected") == [])
    }

    @Test func aClaimsDirectoryThatCannotBeListedForgetsNoSubmission() throws {
        let submissions = Submissions()
        let spool = try watcher(submissions)
        let now = try submittedButKept(spool, submissions)
        // One retry finds processing/a unlistable (a file in its place: ENOTDIR, as EMFILE or
        // EIO would), the next finds it again, and accepted/ mended.
        let processing = directory + "/processing"
        #expect(rename(processing + "/a", processing + "/a.aside") == 0)
        try "".write(toFile: processing + "/a", atomically: false, encoding: .utf8)
        spool.scanOnce(now: afterRetry(now))
        try FileManager.default.removeItem(atPath: processing + "/a")
        #expect(rename(processing + "/a.aside", processing + "/a") == 0)
        try mendAccepted()
        spool.scanOnce(now: afterRetry(afterRetry(now)))
        let ids = submissions.ids.withLock { $0 }
        #expect(ids.count == 1)
        #expect(names("accepted") == ["\(ids.first ?? "?")-w.yaml"])
        #expect(names("processing") == [])
    }

    @Test func aFailedSubmissionKeepsTheClaimForARetry() throws {
        let submissions = Submissions()
        submissions.failure.withLock { $0 = "disk I/O error" }
        let spool = try watcher(submissions)
        try drop("w.yaml")
        let now = settle(spool)
        #expect(names("rejected") == [])
        #expect(names("processing").count == 1)
        submissions.failure.withLock { $0 = nil }
        spool.scanOnce(now: afterRetry(now))
        let ids = submissions.ids.withLock { $0 }
        #expect(names("accepted") == ["\(ids.first ?? "?")-w.yaml"])
        #expect(names("rejected") == [])
    }

    @Test func anInvalidFileIsRejectedWithItsReason() throws {
        let submissions = Submissions()
        let spool = try watcher(submissions)
        try drop("bad.yaml", "workflow: w\n")
        settle(spool)
        #expect(names("rejected") == ["bad.yaml", "bad.yaml.error"])
        #expect(submissions.ids.withLock { $0 } == [])
    }

    @Test func aFileIsClaimedOnlyOnceItHasBeenLeftAlone() throws {
        let submissions = Submissions()
        let spool = try watcher(submissions)
        try drop("w.yaml")
        // Seen unchanged for less than quietPeriod: a writer may be at work.
        let now = ContinuousClock.now
        spool.scanOnce(now: now)
        spool.scanOnce(now: now + .seconds(1))
        #expect(names("incoming") == ["w.yaml"])
        // Unchanged for quietPeriod by the agent's monotonic clock, whatever the wall clock
        // says: its ctime is a moment ago by the wall clock (as with a clock stepped back, or
        // an NFS server's ahead), and still it is claimed.
        spool.scanOnce(now: now + SpoolWatcher.quietPeriod)
        #expect(names("incoming") == [])
        #expect(submissions.ids.withLock { $0.count } == 1)
    }

    @Test func aFileThatChangesBetweenScansIsNotClaimed() throws {
        let submissions = Submissions()
        let spool = try watcher(submissions)
        try drop("w.yaml", "workflow: w\n")
        // Seen a minute apart, but grown between: not claimed until left alone for quietPeriod.
        let now = ContinuousClock.now
        spool.scanOnce(now: now)
        try append("steps:\n  - { id: a, action: util.noop }\n", to: "w.yaml")
        spool.scanOnce(now: now + .seconds(60))
        #expect(names("incoming") == ["w.yaml"])
        spool.scanOnce(now: now + .seconds(60) + SpoolWatcher.quietPeriod)
        #expect(names("accepted").count == 1)
        #expect(names("rejected") == [])
    }

    @Test func aFileThatNeverSettlesIsReportedAfterAMinute() throws {
        let spool = try watcher(Submissions())
        try drop("w.yaml")
        let now = ContinuousClock.now
        for second in [0, 1, 20, 40, 59] {
            try append("# \(second)\n", to: "w.yaml")
            spool.scanOnce(now: now + .seconds(second))
        }
        #expect(spool.problems["w.yaml"] == nil)
        try append("# 61\n", to: "w.yaml")
        spool.scanOnce(now: now + .seconds(61))
        #expect(spool.problems["w.yaml"]?.hasPrefix("incoming/w.yaml has kept changing for over a minute") == true)
        #expect(names("incoming") == ["w.yaml"])
    }

    @Test func editorLeftoversAreNeverClaimed() throws {
        let submissions = Submissions()
        let spool = try watcher(submissions)
        let leftovers = ["#w.yaml#", "w.yaml.crdownload", "w.yaml.part", "w.yaml.swp", "w.yaml.tmp", "w.yaml~"]
        for name in leftovers { try drop(name) }
        settle(spool, at: .now + .seconds(3600))
        #expect(names("incoming") == leftovers)
        #expect(submissions.ids.withLock { $0 } == [])
        #expect(names("rejected") == [])
    }

    @Test func anErrorFileNeverOverwritesARejectedDroppedFile() throws {
        let submissions = Submissions()
        let spool = try watcher(submissions)
        // A file dropped as bad.yaml.error was rejected before: its name is taken, not free for
        // bad.yaml's reason.
        try "dropped\n".write(toFile: directory + "/rejected/bad.yaml.error", atomically: false, encoding: .utf8)
        try drop("bad.yaml", "workflow: w\n")
        settle(spool)
        #expect(try String(contentsOfFile: directory + "/rejected/bad.yaml.error", encoding: .utf8) == "dropped\n")
        let rejected = names("rejected")
        #expect(rejected.count == 3)
        let placed = try #require(rejected.first { $0.hasPrefix("bad.yaml-") && !$0.hasSuffix(".error") })
        #expect(rejected.contains(placed + ".error"))
        #expect(try String(contentsOfFile: "\(directory)/rejected/\(placed)", encoding: .utf8) == "workflow: w\n")
    }

    @Test(arguments: [false, true]) func placingNeverReplacesAFile(withoutRenameNoReplace: Bool) throws {
        let move = withoutRenameNoReplace ? Self.noRenameNoReplace : SpoolWatcher.systemRenameNoReplace
        try "mine".write(toFile: directory + "/from", atomically: false, encoding: .utf8)
        try "theirs".write(toFile: directory + "/to", atomically: false, encoding: .utf8)
        #expect(SpoolWatcher.moveWithoutReplacing(directory + "/from", to: directory + "/to", renameNoReplace: move) == EEXIST)
        #expect(try String(contentsOfFile: directory + "/to", encoding: .utf8) == "theirs")
        #expect(SpoolWatcher.create(directory + "/to", holding: "note") == EEXIST)
        #expect(try String(contentsOfFile: directory + "/to", encoding: .utf8) == "theirs")
        #expect(SpoolWatcher.moveWithoutReplacing(directory + "/from", to: directory + "/free", renameNoReplace: move) == 0)
        #expect(try String(contentsOfFile: directory + "/free", encoding: .utf8) == "mine")
        // The source gone (another agent moved it): nothing is left under the name.
        #expect(SpoolWatcher.moveWithoutReplacing(directory + "/from", to: directory + "/again", renameNoReplace: move) == ENOENT)
        #expect(!FileManager.default.fileExists(atPath: directory + "/again"))
    }

    // MARK: file systems without RENAME_NOREPLACE (NFS, OpenZFS before 2.2)

    static let noRenameNoReplace: SpoolWatcher.RenameNoReplace = { _, _ in EINVAL }

    /// Runs `body` with files' permissions checked as user nobody when the tests run as root,
    /// who may hard-link any file: an agent's user may not link another user's file it cannot
    /// write (fs.protected_hardlinks). setfsuid is per thread, and `body` does not suspend.
    func asNobody<T>(_ body: () throws -> T) rethrows -> T {
        guard geteuid() == 0, let symbol = dlsym(nil, "setfsuid") else { return try body() }
        let setfsuid = unsafeBitCast(symbol, to: (@convention(c) (UInt32) -> Int32).self)
        _ = setfsuid(65534)
        defer { _ = setfsuid(0) }
        return try body()
    }

    @Test func withoutRenameNoReplaceAnotherUsersFilesEndAcceptedOrRejectedOnce() throws {
        let submissions = Submissions()
        let spool = try SpoolWatcher(directory: directory, agentName: "a", submitter: { "test" }, submit: submissions.submit,
                                     renameNoReplace: Self.noRenameNoReplace)
        for sub in ["incoming", "processing", "processing/a", "accepted", "rejected"] { chmod("\(directory)/\(sub)", 0o777) }
        try drop("w.yaml")
        try drop("bad.yaml", "workflow: w\n")
        // Dropped by another user, readable by all, writable by its owner only.
        for name in ["w.yaml", "bad.yaml"] {
            chmod("\(directory)/incoming/\(name)", 0o644)
            if geteuid() == 0 { chown("\(directory)/incoming/\(name)", 1, 1) }
        }
        asNobody {
            let now = settle(spool)
            spool.scanOnce(now: afterRetry(now))
        }
        let ids = submissions.ids.withLock { $0 }
        #expect(ids.count == 1)
        #expect(names("accepted") == ["\(ids.first ?? "?")-w.yaml"])
        #expect(names("rejected") == ["bad.yaml", "bad.yaml.error"])
        #expect(names("processing") == [])
        #expect(names("incoming") == [])
    }

    @Test func claimsLeftByAnEarlierVersionGoOnlyToTheirOwnAgent() throws {
        let forEU = Submissions(), forBuildEU = Submissions()
        let eu = try watcher(forEU, agent: "eu"), buildEU = try watcher(forBuildEU, agent: "build.eu")
        let old = "w.yaml.0A1B2C3D.build.eu"
        try Self.workflow.write(toFile: "\(directory)/processing/\(old)", atomically: false, encoding: .utf8)
        eu.scanOnce(now: .now)
        #expect(forEU.ids.withLock { $0 } == [])
        #expect(names("processing") == [old])
        buildEU.scanOnce(now: .now)
        // The id that version gave it, so a claim it had submitted is not submitted again.
        let id = String(WorkflowDirectoryHash.hex(of: old).prefix(12))
        #expect(forBuildEU.ids.withLock { $0 } == [id])
        #expect(names("accepted") == ["\(id)-w.yaml"])
    }

    @Test func agentsWithDotsInTheirNamesKeepTheirClaimsApart() throws {
        let forEU = Submissions(), forBuildEU = Submissions()
        let buildEU = try watcher(forBuildEU, agent: "build.eu")
        try breakAccepted()
        try drop("w.yaml")
        let now = settle(buildEU)
        #expect(names("processing").count == 1)
        try mendAccepted()
        // Agent eu, starting, finds no claim of its own in build.eu's.
        let eu = try watcher(forEU, agent: "eu")
        eu.scanOnce(now: afterRetry(now))
        #expect(forEU.ids.withLock { $0 } == [])
        buildEU.scanOnce(now: afterRetry(now))
        let ids = forBuildEU.ids.withLock { $0 }
        #expect(ids.count == 1)
        #expect(names("accepted") == ["\(ids.first ?? "?")-w.yaml"])
    }

    @Test func aSecondWatcherOfTheSameNameRefusesTheSpool() throws {
        let first = Submissions(), second = Submissions()
        do {
            let a = try watcher(first)
            // build@x/a and build@x/b are both agent `build` unless named apart.
            var b: SpoolWatcher?
            #expect(throws: SpoolNameInUse.self) { b = try watcher(second) }
            // Kept in processing/a/ after submission: a second watcher of that name would adopt it.
            try breakAccepted()
            try drop("w.yaml")
            let now = settle(a)
            b?.scanOnce(now: now)
            #expect(first.ids.withLock { $0.count } == 1)
            #expect(second.ids.withLock { $0 } == [])
            try mendAccepted()
        }
        // The lock goes with the watcher: the agent's next start takes it.
        #expect(throws: Never.self) { _ = try watcher(second) }
    }

    @Test func agentNamesBecomeOneDirectoryName() {
        #expect(SpoolWatcher.directoryName(agent: "build.eu") == "build.eu")
        #expect(SpoolWatcher.directoryName(agent: "a/b%c") == "a%2Fb%25c")
        #expect(SpoolWatcher.directoryName(agent: "..") == "%2E.")
        #expect(SpoolWatcher.directoryName(agent: "") == "%")
    }

    @Test func aNameTooLongToClaimIsRejectedUnderAShortOne() throws {
        let spool = try watcher(Submissions())
        let name = String(repeating: "n", count: 250) + ".yaml"
        try drop(name)
        settle(spool)
        let short = String(repeating: "n", count: 200)
        #expect(names("incoming") == [])
        #expect(names("rejected") == [short, short + ".error"])
        #expect(try String(contentsOfFile: "\(directory)/rejected/\(short).error", encoding: .utf8).hasSuffix("It was: \(name)\n"))
    }

    @Test func everyNameTriedForALongNameFitsAFileName() throws {
        let spool = try watcher(Submissions())
        // 240 bytes, the longest claimed as it is; é is 2 bytes, so a cut may fall inside one.
        let name = String(repeating: "é", count: 117) + "n.yaml"
        let id = "0123456789ab"
        func claim() throws -> SpoolWatcher.Claim {
            let url = URL(fileURLWithPath: "\(directory)/processing/a/0a1b2c3d-\(name)")
            try Self.workflow.write(to: url, atomically: false, encoding: .utf8)
            return SpoolWatcher.Claim(url: url)
        }
        // accepted/ID-NAME taken: ID-NAME-CLAIMID would be 262 bytes.
        try "".write(toFile: "\(directory)/accepted/\(id)-\(name)", atomically: false, encoding: .utf8)
        let accepted = try spool.place(try claim(), in: URL(fileURLWithPath: directory + "/accepted"), as: "\(id)-\(name)")
        #expect(accepted.utf8.count <= 255 && accepted.hasPrefix("\(id)-é") && accepted.hasSuffix("-0a1b2c3d"))
        // rejected/NAME and NAME-CLAIMID taken: NAME-CLAIMID-2.error would be 257 bytes.
        for taken in [name, "\(name)-0a1b2c3d"] {
            try "".write(toFile: "\(directory)/rejected/\(taken)", atomically: false, encoding: .utf8)
        }
        let rejected = try spool.place(try claim(), in: URL(fileURLWithPath: directory + "/rejected"), as: name, note: "why\n")
        #expect(rejected.utf8.count + 6 <= 255 && rejected.hasSuffix("-0a1b2c3d-2"))
        #expect(names("accepted").contains(accepted))
        #expect(names("rejected").contains(rejected) && names("rejected").contains(rejected + ".error"))
        #expect(names("processing") == [])
    }

    @Test func aFileThatCannotBeClaimedIsReportedNotSkippedSilently() throws {
        let spool = try watcher(Submissions())
        // Its claim directory a file: rename fails with ENOTDIR.
        try FileManager.default.removeItem(atPath: directory + "/processing/a")
        try "".write(toFile: directory + "/processing/a", atomically: false, encoding: .utf8)
        try drop("w.yaml")
        settle(spool)
        #expect(names("incoming") == ["w.yaml"])
        #expect(spool.problems["w.yaml"] == "cannot claim incoming/w.yaml: Not a directory")
    }

    @Test func aClaimsDirectoryGoneIsMadeAgain() throws {
        let submissions = Submissions()
        let spool = try watcher(submissions)
        try FileManager.default.removeItem(atPath: directory + "/processing/a")
        try drop("w.yaml")
        settle(spool)
        #expect(names("incoming") == [])
        #expect(names("accepted").count == 1)
        #expect(submissions.ids.withLock { $0.count } == 1)
    }

    @Test func anotherAgentsClaimsDirectoryIsNoOldClaim() throws {
        // Agent build.20241129.eu's directory has the form of agent eu's old claims
        // (NAME.CLAIMID.eu); eu must not take it, nor what is in it.
        let other = try watcher(Submissions(), agent: "build.20241129.eu")
        let forEU = Submissions()
        let eu = try watcher(forEU, agent: "eu")
        try breakAccepted()
        try drop("w.yaml")
        let now = settle(other)
        let claimed = names("processing")
        #expect(claimed.count == 1 && claimed.first?.hasPrefix("build.20241129.eu/") == true)
        eu.scanOnce(now: now)
        #expect(names("processing") == claimed)
        #expect(names("rejected") == [])
        #expect(forEU.ids.withLock { $0 } == [])
    }

    @Test func anIncomingDirectoryThatCannotBeListedIsReported() throws {
        let spool = try watcher(Submissions())
        try FileManager.default.removeItem(atPath: directory + "/incoming")
        try "".write(toFile: directory + "/incoming", atomically: false, encoding: .utf8)
        settle(spool)
        #expect(spool.problems[SpoolWatcher.listing]?.hasPrefix("cannot list \(directory)/incoming") == true)
    }

    @Test func aFileUnreadableForTheSystemsReasonIsKeptForARetry() throws {
        let failing = Mutex(true)
        let spool = try SpoolWatcher(directory: directory, agentName: "a", submitter: { "test" }, submit: Submissions().submit) { path, name in
            if failing.withLock({ $0 }) { throw SpoolWatcher.readFailure(name, EMFILE) }
            return try SpoolWatcher.readDroppedFile(path, name: name, limit: 1024)
        }
        try drop("w.yaml")
        let now = settle(spool)
        #expect(names("rejected") == [])
        #expect(names("processing").count == 1)
        failing.withLock { $0 = false }
        spool.scanOnce(now: afterRetry(now))
        #expect(names("accepted").count == 1)
        #expect(names("processing") == [])
    }

    @Test func onlyTheSystemsReadFailuresAreTemporary() {
        #expect(SpoolWatcher.readFailure("x.yaml", EMFILE) is TemporaryReadFailure)
        #expect(SpoolWatcher.readFailure("x.yaml", EIO) is TemporaryReadFailure)
        #expect(SpoolWatcher.readFailure("x.yaml", EACCES) as? WorkflowError == .invalid("cannot read x.yaml: Permission denied"))
    }

    /// `agentctl wf submit FILE` reads through the same checks, links followed.
    @Test func aWorkflowFileOnTheCommandLineIsReadWithinBounds() throws {
        try Self.workflow.write(toFile: directory + "/w.yaml", atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: directory + "/link.yaml", withDestinationPath: directory + "/w.yaml")
        #expect(try WorkflowParser.readFile(directory + "/link.yaml") == Data(Self.workflow.utf8))
        #expect(mkfifo(directory + "/fifo", 0o600) == 0)
        for path in [directory + "/fifo", "/dev/zero"] {
            #expect(throws: WorkflowError.invalid("\(path) is not a regular file (a directory, FIFO, socket or device)")) {
                try WorkflowParser.readFile(path)
            }
        }
        try Data(count: WorkflowParser.maximumBytes + 1).write(to: URL(fileURLWithPath: directory + "/big"))
        #expect(throws: WorkflowError.tooLarge(bytes: WorkflowParser.maximumBytes + 1, limit: WorkflowParser.maximumBytes)) {
            try WorkflowParser.readFile(directory + "/big")
        }
    }

    @Test func aFileWithItsModificationTimeAheadIsClaimedOnceLeftAlone() throws {
        let submissions = Submissions()
        let spool = try watcher(submissions)
        try drop("w.yaml")
        // Unpacked from an archive made on a clock a day ahead: its ctime says when it was written.
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(86400)], ofItemAtPath: directory + "/incoming/w.yaml")
        settle(spool)
        #expect(submissions.ids.withLock { $0.count } == 1)
    }
}
