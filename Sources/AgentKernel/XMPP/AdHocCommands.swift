import Foundation
import Synchronization

/// One XEP-0050 command an agent offers.
///
/// A command runs in stages: each stage shows a form (built from the values given so far), and
/// `run` gets everything submitted. A command without stages runs as soon as it is executed.
public struct AdHocCommand: Sendable {
    public typealias Stage = @Sendable (_ valuesSoFar: [String: [String]]) async throws -> DataForm

    public let node: String
    public let name: String
    public let stages: [Stage]
    /// Commands that only read (like `status`) may be open to everyone; the rest need trust.
    public let requiresTrust: Bool
    public let run: @Sendable (CommandInvocation) async throws -> CommandResult

    public init(node: String, name: String, requiresTrust: Bool = true, stages: [Stage] = [],
                run: @escaping @Sendable (CommandInvocation) async throws -> CommandResult) {
        self.node = node
        self.name = name
        self.requiresTrust = requiresTrust
        self.stages = stages
        self.run = run
    }

    /// A one-stage command with a fixed form.
    public init(node: String, name: String, requiresTrust: Bool = true, form: DataForm,
                run: @escaping @Sendable (CommandInvocation) async throws -> CommandResult) {
        self.init(node: node, name: name, requiresTrust: requiresTrust, stages: [{ _ in form }], run: run)
    }
}

public struct CommandInvocation: Sendable {
    public let from: String
    public let values: [String: [String]]
    public func value(_ name: String) -> String? { values[name]?.first.flatMap { $0.isEmpty ? nil : $0 } }
    /// The value of a field the form marks required (the form's check has made sure it is
    /// there); `bad-request` naming the field rather than a crash should a form ever not say so.
    public func required(_ name: String) throws -> String {
        guard let value = value(name) else { throw StanzaError(.badRequest, "field '\(name)' is required") }
        return value
    }
    public init(from: String, values: [String: [String]]) { self.from = from; self.values = values }
}

public struct CommandResult: Sendable {
    public var form: DataForm?
    public var notes: [AdHocStanzas.Note]
    public init(form: DataForm? = nil, notes: [AdHocStanzas.Note] = []) { self.form = form; self.notes = notes }
    public static func text(_ text: String) -> CommandResult { CommandResult(notes: [.init(.info, text)]) }
    /// A result form of `var = value` fields, shown by clients as a read-only form.
    public static func fields(_ title: String, _ pairs: [(String, String)]) -> CommandResult {
        CommandResult(form: DataForm(.result, title: title, fields: pairs.map {
            DataForm.Field($0.0, type: $0.1.contains("\n") ? .textMulti : .textSingle, label: $0.0,
                           values: $0.1.contains("\n") ? $0.1.components(separatedBy: "\n") : [$0.1])
        }))
    }
}

/// Runs commands and keeps multi-stage sessions (XEP-0050 §3.4).
public final class AdHocCommandService: Sendable {
    private struct Session {
        let node: String
        let owner: String
        var stage: Int
        var values: [String: [String]]
        /// When a request last worked on it: a session expires after a quiet `sessionLifetime`.
        var lastActive: ContinuousClock.Instant
    }

    private let commandsByNode: [String: AdHocCommand]
    public let commands: [AdHocCommand]
    private let sessions = Mutex<[String: Session]>([:])
    /// Ids of sessions that expired lately (the last 1000), which XEP-0050 answers differently
    /// from ids never seen: not-allowed with <session-expired/>, so a client can say why.
    private let expired = Mutex<(ids: Set<String>, order: [String])>(([], []))
    private let sessionLifetime: Duration
    static let maximumSessionsPerJID = 20
    static let maximumSessions = 1000

    public init(commands: [AdHocCommand], sessionLifetime: Duration = .seconds(600)) {
        self.commands = commands
        self.sessionLifetime = sessionLifetime
        commandsByNode = Dictionary(commands.map { ($0.node, $0) }, uniquingKeysWith: { first, _ in first })
    }

    public func command(_ node: String) -> AdHocCommand? { commandsByNode[node] }

    /// Handles an IQ-set `<command/>` from `from`; returns the `<command/>` payload of the result.
    public func handle(_ request: XMLElement, from: String, trusted: Bool) async throws -> XMLElement {
        guard let node = request["node"], let command = commandsByNode[node] else {
            throw StanzaError(.itemNotFound, "no command '\(request["node"] ?? "")' on this agent")
        }
        if command.requiresTrust && !trusted {
            throw StanzaError(.forbidden, "\(JID(from)?.bare ?? from) may not run '\(node)' on this agent")
        }
        let actionName = request["action"] ?? "execute"
        guard let action = AdHocStanzas.Action(rawValue: actionName) else {
            throw StanzaError(.badRequest, "unknown action '\(actionName)'", appCondition: AdHocStanzas.condition("malformed-action"))
        }
        let submitted = try request.child("x", xmlns: NS.dataForms).map { try DataForm(parsing: $0) }
        if let submitted, submitted.kind != .submit && submitted.kind != .cancel {
            throw StanzaError(.badRequest, "a submitted form must have type 'submit', not '\(submitted.kind.rawValue)'")
        }
        expireSessions()

        guard let sessionID = request["sessionid"] else {
            guard action == .execute || action == .complete else {
                throw StanzaError(.badRequest, "action '\(actionName)' needs a sessionid", appCondition: AdHocStanzas.condition("bad-sessionid"))
            }
            return try await start(command, from: from, submitted: submitted)
        }
        // Taken out while this request works on it, and put back only for a later stage: a
        // second request for the session meanwhile (a double click on Finish, a client's resend)
        // finds none, and cannot run the command twice.
        if expired.withLock({ $0.ids.contains(sessionID) }) {
            throw StanzaError(.notAllowed, "session '\(sessionID)' of '\(node)' expired after \(sessionLifetime.components.seconds / 60) minutes; start the command again",
                              appCondition: AdHocStanzas.condition("session-expired"))
        }
        let taken = sessions.withLock { all -> Result<Session, StanzaError> in
            guard let session = all[sessionID], session.node == node else {
                return .failure(StanzaError(.badRequest, "no session '\(sessionID)' for command '\(node)' (expired, ended, or busy with a request)",
                                            appCondition: AdHocStanzas.condition("bad-sessionid")))
            }
            guard session.owner == from else { return .failure(StanzaError(.forbidden, "session '\(sessionID)' belongs to another JID")) }
            all.removeValue(forKey: sessionID)
            return .success(session)
        }
        var session = try taken.get()
        let unchanged = session
        func putBack(_ session: Session) {
            var session = session
            session.lastActive = .now
            sessions.withLock { $0[sessionID] = session }
        }
        switch action {
        case .cancel:
            return AdHocStanzas.response(node: node, sessionID: sessionID, status: .canceled)
        case .prev:
            session.stage = max(0, session.stage - 1)
            putBack(session)
            return try await render(command, session: session, id: sessionID)
        case .execute, .next, .complete:
            let isLast = session.stage + 1 >= command.stages.count
            do {
                guard let submitted, submitted.kind == .submit else {
                    throw StanzaError(.badRequest, "stage \(session.stage + 1) of '\(node)' needs a submitted form")
                }
                // Only where it was offered: finishing early would skip the later stages' fields.
                if action == .complete && !isLast {
                    throw StanzaError(.badRequest, "'complete' is not offered at stage \(session.stage + 1) of \(command.stages.count) of '\(node)'",
                                      appCondition: AdHocStanzas.condition("bad-action"))
                }
                let form = try await command.stages[session.stage](session.values)
                try form.validate(submitted.submitted)
            } catch {
                putBack(unchanged)  // the client may mend its form and send it again
                throw error
            }
            session.values.merge(submitted?.submitted ?? [:]) { _, new in new }
            if isLast {
                return try await finish(command, from: from, values: session.values, id: sessionID)
            }
            session.stage += 1
            putBack(session)
            return try await render(command, session: session, id: sessionID)
        }
    }

    private func start(_ command: AdHocCommand, from: String, submitted: DataForm?) async throws -> XMLElement {
        let sessionID = UUID().uuidString.lowercased()
        if command.stages.isEmpty {
            return try await finish(command, from: from, values: submitted?.submitted ?? [:], id: sessionID)
        }
        if let submitted {
            // A batch client (agentctl) may send every value with `execute`: check them against
            // every stage and run at once, saving the round trips.
            var values: [String: [String]] = [:]
            var fields: [DataForm.Field] = []
            for stage in command.stages {
                fields += try await stage(values.merging(submitted.submitted) { _, new in new }).fields
                values.merge(submitted.submitted) { _, new in new }
            }
            try DataForm(.form, fields: fields).validate(submitted.submitted)
            return try await finish(command, from: from, values: submitted.submitted, id: sessionID)
        }
        let session = Session(node: command.node, owner: from, stage: 0, values: [:], lastActive: .now)
        let room = sessions.withLock { all -> Bool in
            guard all.count < Self.maximumSessions, all.values.count(where: { $0.owner == from }) < Self.maximumSessionsPerJID else { return false }
            all[sessionID] = session
            return true
        }
        // Bounded: anyone may start the open commands, and each session is kept ten minutes.
        guard room else {
            throw StanzaError(.resourceConstraint, "too many unfinished command sessions (at most \(Self.maximumSessionsPerJID) per JID, \(Self.maximumSessions) in all); finish or cancel some, or wait for them to expire")
        }
        return try await render(command, session: session, id: sessionID)
    }

    private func render(_ command: AdHocCommand, session: Session, id: String) async throws -> XMLElement {
        var form = try await command.stages[session.stage](session.values)
        form.kind = .form
        var allowed: [AdHocStanzas.Action] = []
        if session.stage > 0 { allowed.append(.prev) }
        allowed.append(session.stage + 1 < command.stages.count ? .next : .complete)
        return AdHocStanzas.response(node: command.node, sessionID: id, status: .executing, form: form, allowed: allowed)
    }

    private func finish(_ command: AdHocCommand, from: String, values: [String: [String]], id: String) async throws -> XMLElement {
        let result: CommandResult
        do {
            result = try await command.run(CommandInvocation(from: from, values: values))
        } catch let error as StanzaError {
            throw error
        } catch {
            throw StanzaError(.internalServerError, "\(command.node): \(error)")
        }
        return AdHocStanzas.response(node: command.node, sessionID: id, status: .completed, form: result.form, notes: result.notes)
    }

    private func expireSessions() {
        let cutoff = ContinuousClock.now - sessionLifetime
        let gone = sessions.withLock { all -> [String] in
            let gone = all.filter { $0.value.lastActive <= cutoff }.map(\.key)
            for id in gone { all.removeValue(forKey: id) }
            return gone
        }
        guard !gone.isEmpty else { return }
        expired.withLock { recent in
            for id in gone where recent.ids.insert(id).inserted { recent.order.append(id) }
            while recent.order.count > 1000 { recent.ids.remove(recent.order.removeFirst()) }
        }
    }
}
