import CStrophe
import Foundation

/// The limit for `baton-bench`: XEP-0199 pings between two libstrophe connections driven by a
/// plain C-style loop on one thread — no Swift concurrency, no `XMLElement` conversion, no
/// wake-up pipe. Client A pings client B's full JID through the server; B answers from its
/// handler; A sends the next ping from inside its result handler. Both connections use the
/// same flags as `StropheSession` (mandatory TLS, trust-any, TCP_NODELAY, XEP-0198 stream
/// management on or off as `ConnectionSettings` has it by default), so Baton's numbers compare
/// like with like.
///
/// Not thread-safe: call every method from one thread at a time (the benchmark uses one).
public final class BareStropheBenchmark: @unchecked Sendable {
    public struct Account: Sendable {
        public var jid: String
        public var password: String
        public init(jid: String, password: String) {
            self.jid = jid
            self.password = password
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// One run of pings: round trips in milliseconds (in completion order) and wall time.
    public struct Run: Sendable {
        public var roundTripsMillis: [Double]
        public var seconds: Double
        public var errors: Int
        /// For hand-offs: how long each journal write took, in milliseconds.
        public var journalMillis = JournalWrites()
        public var perSecond: Double { seconds > 0 ? Double(roundTripsMillis.count) / seconds : 0 }
    }

    /// The journal writes of bare hand-offs, each timed alone: they are most of the floor.
    public struct JournalWrites: Sendable {
        /// A's unsynced `handing` (the document with the step's result).
        public var handing: [Double] = []
        /// B's synced `accept`, the custody promise.
        public var accept: [Double] = []
        /// A's unsynced `handed`, after the answer.
        public var handed: [Double] = []
    }

    private let ctx: OpaquePointer
    private let a: OpaquePointer
    private let b: OpaquePointer
    private var connected = (a: false, b: false)
    private var disconnected = (a: false, b: false)
    private var failure: String?
    /// B's bound full JID: the ping target.
    public private(set) var targetJID = ""

    // Ping state, touched only inside `xmpp_run_once`.
    private var sendTimes: [UInt64] = []
    private var roundTrips: [UInt64] = []
    private var sent = 0
    private var answered = 0
    private var total = 0
    private var errors = 0
    private var idBuffer = [CChar](repeating: 0, count: 32)
    /// Text carried inside each ping (nil: an empty ping), to time a stanza as large as a
    /// hand-off. B's answer stays an empty result, as a hand-off's is small.
    public var pingText: String?

    // Hand-off state (`handoffs`), touched only inside `xmpp_run_once`.
    private var handoffJournals: (sender: Journal, receiver: Journal)?
    private var handoffDocuments: [WorkflowDocument] = []
    private var handoffTexts: [String] = []
    private var stanzas: [String] = []
    private var journalWrites = JournalWrites()

    /// Connects both accounts (TLS, any certificate accepted) and waits until both are online.
    public init(host: String, port: UInt16, a accountA: Account, b accountB: Account, timeout: Double = 10,
                streamManagement: Bool = ConnectionSettings.defaultStreamManagement) throws {
        xmpp_initialize()
        ctx = xmpp_ctx_new(nil, nil)
        a = xmpp_conn_new(ctx)
        b = xmpp_conn_new(ctx)
        let me = Unmanaged.passUnretained(self).toOpaque()
        for (conn, account) in [(a, accountA), (b, accountB)] {
            var flags = XMPP_CONN_FLAG_MANDATORY_TLS | XMPP_CONN_FLAG_TRUST_TLS
            if !streamManagement { flags |= XMPP_CONN_FLAG_DISABLE_SM }
            xmpp_conn_set_flags(conn, Int(flags))
            xmpp_conn_set_jid(conn, account.jid)
            xmpp_conn_set_pass(conn, account.password)
            xmpp_conn_set_sockopt_callback(conn) { conn, socket in
                let fd = socket!.load(as: Int32.self)
                var one: Int32 = 1
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                return xmpp_sockopt_cb_keepalive(conn, socket)
            }
        }
        // A: results (and errors) of its pings. B: answers every ping.
        xmpp_handler_add(a, { _, stanza, userdata in
            Unmanaged<BareStropheBenchmark>.fromOpaque(userdata!).takeUnretainedValue().resultArrived(stanza!)
            return 1
        }, nil, "iq", nil, me)
        xmpp_handler_add(b, { conn, stanza, userdata in
            guard let type = xmpp_stanza_get_type(stanza) else { return 1 }
            if strcmp(type, "set") == 0, let handoff = xmpp_stanza_get_child_by_ns(stanza, NS.batonWorkflow) {
                Unmanaged<BareStropheBenchmark>.fromOpaque(userdata!).takeUnretainedValue().handoffArrived(stanza!, handoff)
                return 1
            }
            guard strcmp(type, "get") == 0, xmpp_stanza_get_child_by_ns(stanza, "urn:xmpp:ping") != nil else { return 1 }
            let reply = xmpp_stanza_reply(stanza)!
            xmpp_stanza_set_type(reply, "result")
            xmpp_send(conn, reply)
            xmpp_stanza_release(reply)
            return 1
        }, nil, "iq", nil, me)
        let handler: xmpp_conn_handler = { conn, event, error, _, userdata in
            Unmanaged<BareStropheBenchmark>.fromOpaque(userdata!).takeUnretainedValue()
                .connectionChanged(conn!, event: event, error: error)
        }
        for conn in [a, b] {
            if xmpp_connect_client(conn, host, port, handler, me) != XMPP_EOK {
                failure = "xmpp_connect_client failed"
            }
        }
        let deadline = Self.now() + UInt64(timeout * 1e9)
        while failure == nil, !(connected.a && connected.b), Self.now() < deadline {
            xmpp_run_once(ctx, 10)
        }
        if failure == nil, !(connected.a && connected.b) { failure = "not online within \(timeout) s" }
        if let failure {
            close()
            throw Failure("bare libstrophe: \(failure)")
        }
        targetJID = xmpp_conn_get_bound_jid(b).map { String(cString: $0) } ?? accountB.jid
    }

    /// `count` pings, one at a time (each sent from the previous one's result handler).
    public func latency(count: Int, timeout: Double = 60) throws -> Run {
        try pings(count: count, window: 1, timeout: timeout)
    }

    /// `count` pings with `window` outstanding at any time.
    public func pings(count: Int, window: Int, timeout: Double = 60) throws -> Run {
        try run(count: count, what: "pings", timeout: timeout) {
            while sent < min(window, count) { sendPing() }
        }
    }

    /// Runs the loop until `count` answers arrived (`start` sends the first requests; the
    /// result handler sends the rest), then reports their round trips.
    private func run(count: Int, what: String, timeout: Double, start: () -> Void) throws -> Run {
        guard failure == nil else { throw Failure("bare libstrophe: \(failure!)") }
        sendTimes = [UInt64](repeating: 0, count: count)
        roundTrips = []
        roundTrips.reserveCapacity(count)
        sent = 0
        answered = 0
        errors = 0
        journalWrites = JournalWrites()
        total = count
        let started = Self.now()
        start()
        let deadline = started + UInt64(timeout * 1e9)
        while answered < count, failure == nil {
            xmpp_run_once(ctx, 1)
            if Self.now() > deadline { break }
        }
        let seconds = Double(Self.now() - started) / 1e9
        if let failure { throw Failure("bare libstrophe: \(failure)") }
        if answered < count { throw Failure("bare libstrophe: only \(answered) of \(count) \(what) answered within \(timeout) s") }
        return Run(roundTripsMillis: roundTrips.map { Double($0) / 1e6 }, seconds: seconds, errors: errors, journalMillis: journalWrites)
    }

    /// `documents.count` hand-offs, one at a time, as Baton makes them but with nothing else:
    /// A journals the document `handing` (not synced, as Baton does), sends Baton's hand-off IQ
    /// with the same text, B stores it with a synced `Journal.accept` and answers, and A
    /// journals it `handed`. Timed on A from its first write to its last, like Baton's
    /// `WorkflowEngine.Handoff.duration`. What Baton does besides is left out: encoding the
    /// document (the stanzas are rendered beforehand), decoding and checking it at B, and
    /// every thread hop (one thread drives both ends). Each document needs an id of its own;
    /// A's journal gets an entry for each (at `cursor - 1`, as a sender holds it) before the
    /// clock starts.
    public func handoffs(_ documents: [WorkflowDocument], sender: Journal, receiver: Journal, timeout: Double = 60) throws -> Run {
        var texts: [String] = []
        for document in documents {
            var held = document
            held.cursor -= 1
            _ = try sender.accept(held, seq: held.cursor)
            let json = try document.json()
            let escaped = json.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;")
            texts.append(json)
            stanzas.append("<iq type='set' id='h\(stanzas.count)' to='\(targetJID)'><handoff xmlns='\(NS.batonWorkflow)' "
                + "workflow='\(document.id)' seq='\(document.cursor)'><json xmlns='\(NS.json)'>\(escaped)</json></handoff></iq>")
        }
        handoffDocuments = documents
        handoffTexts = texts
        handoffJournals = (sender, receiver)
        defer { handoffJournals = nil; handoffDocuments = []; handoffTexts = []; stanzas = [] }
        return try run(count: documents.count, what: "hand-offs", timeout: timeout) { sendHandoff() }
    }

    /// Closes both streams (bounded wait) and frees everything.
    public func close() {
        for conn in [a, b] where xmpp_conn_is_connected(conn) != 0 { xmpp_disconnect(conn) }
        let deadline = Self.now() + 3_000_000_000
        while (xmpp_conn_is_disconnected(a) == 0 || xmpp_conn_is_disconnected(b) == 0), Self.now() < deadline {
            xmpp_run_once(ctx, 10)
        }
        xmpp_conn_release(a)
        xmpp_conn_release(b)
        xmpp_ctx_free(ctx)
    }

    // MARK: - Inside the loop

    private static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    private static func millis(since start: UInt64) -> Double { Double(now() - start) / 1e6 }

    private func sendPing() {
        let index = sent
        sent += 1
        _ = idBuffer.withUnsafeMutableBufferPointer { buffer in
            withVaList([index]) { vsnprintf(buffer.baseAddress, buffer.count, "p%d", $0) }
        }
        let iq = xmpp_iq_new(ctx, "get", idBuffer)!
        xmpp_stanza_set_to(iq, targetJID)
        let ping = xmpp_stanza_new(ctx)!
        xmpp_stanza_set_name(ping, "ping")
        xmpp_stanza_set_ns(ping, "urn:xmpp:ping")
        if let pingText {
            let text = xmpp_stanza_new(ctx)!
            xmpp_stanza_set_text(text, pingText)
            xmpp_stanza_add_child_ex(ping, text, 0)
        }
        xmpp_stanza_add_child_ex(iq, ping, 0)
        sendTimes[index] = Self.now()
        xmpp_send(a, iq)
        xmpp_stanza_release(iq)
    }

    private func resultArrived(_ stanza: OpaquePointer) {
        var received = Self.now()
        guard let type = xmpp_stanza_get_type(stanza), let id = xmpp_stanza_get_id(stanza),
              id.pointee == 0x70 /* p */ || id.pointee == 0x68 /* h */ else { return }
        let isResult = strcmp(type, "result") == 0
        guard isResult || strcmp(type, "error") == 0 else { return }
        let index = Int(strtol(id + 1, nil, 10))
        guard index >= 0, index < sent else { return }
        if !isResult { errors += 1 }
        let isHandoff = id.pointee == 0x68
        if isHandoff, let (sender, _) = handoffJournals {
            let document = handoffDocuments[index]
            do {
                let started = Self.now()
                try sender.update(document.id, seq: document.cursor - 1, state: .handed, target: targetJID)
                journalWrites.handed.append(Self.millis(since: started))
            } catch {
                failure = "A's journal: \(error)"
            }
            received = Self.now()
        }
        roundTrips.append(received - sendTimes[index])
        answered += 1
        if sent < total { isHandoff ? sendHandoff() : sendPing() }
    }

    private func sendHandoff() {
        guard let (sender, _) = handoffJournals else { return }
        let index = sent
        sent += 1
        let document = handoffDocuments[index]
        sendTimes[index] = Self.now()
        do {
            let started = Self.now()
            try sender.update(document, json: handoffTexts[index], seq: document.cursor - 1, state: .handing, target: targetJID)
            journalWrites.handing.append(Self.millis(since: started))
        } catch {
            failure = "A's journal: \(error)"
            return
        }
        let stanza = stanzas[index]
        xmpp_send_raw(a, stanza, stanza.utf8.count)
    }

    /// B: stores the document (synced) before answering, as a Baton receiver does.
    private func handoffArrived(_ stanza: OpaquePointer, _ handoff: OpaquePointer) {
        guard let (_, receiver) = handoffJournals, let id = xmpp_stanza_get_id(stanza), id.pointee == 0x68 else { return }
        let index = Int(strtol(id + 1, nil, 10))
        guard index >= 0, index < handoffDocuments.count,
              let json = xmpp_stanza_get_child_by_ns(handoff, NS.json), let text = xmpp_stanza_get_text(json) else { return }
        defer { xmpp_free(ctx, text) }
        let document = handoffDocuments[index]
        do {
            let started = Self.now()
            _ = try receiver.accept(document, json: String(cString: text), seq: document.cursor)
            journalWrites.accept.append(Self.millis(since: started))
        } catch {
            failure = "B's journal: \(error)"
            return
        }
        let reply = xmpp_stanza_reply(stanza)!
        xmpp_stanza_set_type(reply, "result")
        xmpp_send(b, reply)
        xmpp_stanza_release(reply)
    }

    private func connectionChanged(_ conn: OpaquePointer, event: xmpp_conn_event_t, error: Int32) {
        let isA = conn == a
        switch event {
        case XMPP_CONN_CONNECT:
            if isA { connected.a = true } else { connected.b = true }
        case XMPP_CONN_RAW_CONNECT:
            break
        default:
            if isA { disconnected.a = true } else { disconnected.b = true }
            if total > 0 || !(connected.a && connected.b) {
                failure = failure ?? "connection \(isA ? "A" : "B") closed (error \(error))"
            }
        }
    }
}
