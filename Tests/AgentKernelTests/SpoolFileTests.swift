import Foundation
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
}
