import Foundation
import Logging

/// Takes workflow files dropped into `DIR/incoming/` and submits them.
///
/// A file is claimed by renaming it into `processing/` (rename is atomic, so of several agents
/// watching one directory exactly one wins), then validated and submitted, and moved to
/// `accepted/ID-NAME` or to `rejected/NAME` with `NAME.error` saying why. Files whose names
/// start with `.` are ignored (write to `.name` and rename, so a half-written file is never
/// read). Nothing is deleted.
final class SpoolWatcher: Sendable {
    let incoming: URL, processing: URL, accepted: URL, rejected: URL
    let engine: WorkflowEngine
    let agentName: String
    let submitter: @Sendable () -> String
    let logger: Logger

    init(directory: String, engine: WorkflowEngine, agentName: String, submitter: @escaping @Sendable () -> String) throws {
        let root = URL(fileURLWithPath: directory)
        incoming = root.appendingPathComponent("incoming")
        processing = root.appendingPathComponent("processing")
        accepted = root.appendingPathComponent("accepted")
        rejected = root.appendingPathComponent("rejected")
        for dir in [incoming, processing, accepted, rejected] {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        }
        self.engine = engine
        self.agentName = agentName
        self.submitter = submitter
        logger = BatonLog.logger(agent: agentName, module: "spool")
    }

    func run() async {
        logger.info("watching \(incoming.path)")
        // Files this agent claimed before a crash are finished first.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: processing.path)) ?? [] where name.hasSuffix(".\(agentName)") {
            process(claimed: processing.appendingPathComponent(name))
        }
        while !Task.isCancelled {
            scanOnce()
            try? await Task.sleep(for: .milliseconds(500))
        }
    }

    func scanOnce() {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: incoming.path)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        for name in names {
            // The claim: one rename; whoever loses gets ENOENT and moves on.
            let claimed = processing.appendingPathComponent("\(name).\(UUID().uuidString.prefix(8)).\(agentName)")
            guard rename(incoming.appendingPathComponent(name).path, claimed.path) == 0 else { continue }
            process(claimed: claimed)
        }
    }

    private func process(claimed: URL) {
        // processing/NAME.CLAIM.AGENT → NAME
        let parts = claimed.lastPathComponent.components(separatedBy: ".")
        let original = parts.dropLast(2).joined(separator: ".")
        let claimID = parts.dropLast().last ?? "x"
        do {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: claimed.path, isDirectory: &isDirectory), !isDirectory.boolValue else {
                throw WorkflowError.invalid("\(original) is not a regular file")
            }
            let data = try Data(contentsOf: claimed)
            let document = try WorkflowParser.parse(data: data, source: original)
            // The id derives from the claim, so finishing a claim after a crash cannot submit twice.
            let id = String(WorkflowDirectoryHash.hex(of: claimed.lastPathComponent).prefix(12))
            let submitted = try engine.submit(document, by: "spool \(submitter())", id: id)
            try FileManager.default.moveItem(at: claimed, to: accepted.appendingPathComponent("\(submitted.id)-\(original)"))
            logger.info("spool: \(original) accepted as workflow \(submitted.id)")
        } catch {
            let target = rejected.appendingPathComponent(original.isEmpty ? claimID : original)
            let destination = FileManager.default.fileExists(atPath: target.path)
                ? rejected.appendingPathComponent("\(original)-\(claimID)") : target
            do {
                try FileManager.default.moveItem(at: claimed, to: destination)
                try "\(error)\n".write(to: destination.appendingPathExtension("error"), atomically: true, encoding: .utf8)
            } catch {
                logger.error("spool: cannot move \(claimed.path) to rejected/: \(error)")
            }
            logger.warning("spool: \(original) rejected: \(error)")
        }
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
