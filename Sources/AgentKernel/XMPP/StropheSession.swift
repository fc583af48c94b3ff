import CStrophe
import Foundation
import Logging
import Synchronization

/// The libstrophe seam: one context, one connection, one thread.
///
/// libstrophe is not thread-safe, so every call into it happens on the session's own thread.
/// Other threads hand work over through `inbox` — closures, and the jobs of tasks that prefer
/// this thread as their executor — and wake the thread through a pipe. The thread polls the
/// XMPP socket and the pipe itself and lets `xmpp_run_once(ctx, 0)` do the reading and writing,
/// so a request from Swift goes out at once instead of waiting for a select timeout.
final class StropheSession: @unchecked Sendable {
    typealias Event = ConnectionEvent

    private struct Inbox {
        var work: [Work] = []
        var sleeping = false
        /// The thread has ended: jobs run elsewhere, other work is refused (`perform` says so).
        var closed = false
    }

    private enum Work {
        case call(@Sendable () -> Void)
        /// A job of a task that prefers this thread (see the `TaskExecutor` conformance).
        case job(UnownedJob)
    }

    /// Answers an IQ request on the I/O thread: the reply stanza (result or error), or nil for none.
    typealias DirectHandler = @Sendable (_ request: XMLElement) -> XMLElement?

    let settings: ConnectionSettings
    let events: AsyncStream<Event>
    /// Set from any thread, read on the I/O thread.
    private let directHandlers = Mutex<[IQPayloadKey: DirectHandler]>([:])
    private let eventSink: AsyncStream<Event>.Continuation
    private let inbox = Mutex(Inbox())
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let logger: Logger

    // Everything below is touched only on the libstrophe thread.
    private var ctx: OpaquePointer!
    private var conn: OpaquePointer?
    private var connectionToRelease: OpaquePointer?
    private var streamManagement: OpaquePointer?
    private var online = false
    private var everOnline = false
    private var firstConnect: CheckedContinuation<String, Error>?
    private var pending: [String: PendingRequest] = [:]
    /// The account's JID as the server bound it (set when online): who answers for it.
    private var boundJID: JID?
    private var nextSweep = ContinuousClock.now
    private var reconnecting = false
    private var reconnectAt: ContinuousClock.Instant?
    private var reconnectAttempt = 0
    private var stopping = false
    private var stopped = false
    private var stanzasThisTurn = 0
    private static let idleTimeoutMillis: Int32 = 25
    /// libstrophe's logger, muted while online (see `muteLibstropheLog`).
    private var libstropheLog: UnsafeMutablePointer<xmpp_log_t>?
    private var libstropheLogHandler: xmpp_log_handler?
    private var libstropheComplaints: [String] = []
    private var idCounter: UInt64 = 0
    private let idPrefix = String(UInt32.random(in: 0...UInt32.max), radix: 36)

    /// A write to a socket the server already closed must be an error, not a fatal SIGPIPE.
    private static let ignoreBrokenPipes: Void = { signal(SIGPIPE, SIG_IGN); return () }()

    init(settings: ConnectionSettings, logger: Logger) {
        Self.ignoreBrokenPipes
        self.settings = settings
        self.logger = logger
        var fds: [Int32] = [0, 0]
        _ = pipe(&fds)
        wakeRead = fds[0]
        wakeWrite = fds[1]
        _ = fcntl(wakeRead, F_SETFL, O_NONBLOCK)
        _ = fcntl(wakeWrite, F_SETFL, O_NONBLOCK)
        (events, eventSink) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .unbounded)
        Thread { [self] in runLoop() }.start()
    }

    // MARK: - API for other threads

    /// Runs `work` on the libstrophe thread.
    /// Returns false, and drops `work`, once the thread has ended (after `stop`).
    @discardableResult
    func perform(_ work: @escaping @Sendable () -> Void) -> Bool {
        hand(.call(work))
    }

    private func hand(_ work: Work) -> Bool {
        let closed = inbox.withLock { inbox -> Bool in
            if inbox.closed { return true }
            inbox.work.append(work)
            if inbox.sleeping {
                // Under the lock: the loop closes the pipe when it ends, under the same lock.
                var byte: UInt8 = 1
                _ = write(wakeWrite, &byte, 1)
                inbox.sleeping = false
            }
            return false
        }
        if closed, case .job(let job) = work { runElsewhere(job) }
        return !closed
    }

    /// Connects once; throws a `ConnectionError` naming what went wrong. With `reconnect`, a
    /// connection lost later is re-established with exponential back-off and jitter.
    func connect(reconnect: Bool) async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            let handed = perform { [self] in
                guard !stopped else {
                    continuation.resume(throwing: ConnectionError.notConnected(jid: settings.jid))
                    return
                }
                reconnecting = reconnect
                firstConnect = continuation
                startConnection()
            }
            if !handed { continuation.resume(throwing: ConnectionError.notConnected(jid: settings.jid)) }
        }
    }

    func send(_ stanza: XMLElement) {
        perform { [self] in transmit(stanza) }
    }

    /// Answers IQ `type` requests whose payload is (`name`, `namespace`) with `handler`, called
    /// on the I/O thread as the request is read; its reply is sent from there. Such requests
    /// never reach `events`.
    func answerDirectly(_ type: String, _ name: String, _ namespace: String, with handler: @escaping DirectHandler) {
        directHandlers.withLock { $0[IQPayloadKey(type: type, name: name, namespace: namespace)] = handler }
    }

    func request(_ iq: XMLElement, timeout: Double) async throws -> XMLElement {
        try await withCheckedThrowingContinuation { continuation in
            let handed = perform { [self] in
                guard online else {
                    continuation.resume(throwing: ConnectionError.notConnected(jid: settings.jid))
                    return
                }
                var iq = iq
                let id = iq.id ?? nextID()
                iq["id"] = id
                // Bounded: a timeout of .infinity or 1e300 would trap when made milliseconds.
                let millis = timeout.isFinite ? Int(min(max(timeout, 0.001), 86_400) * 1000) : 86_400_000
                pending[id] = PendingRequest(continuation: continuation, deadline: .now + .milliseconds(millis), seconds: timeout,
                                             responder: iq.to.flatMap(JID.init))
                transmit(iq)
            }
            // Closed (`stop`): nothing will answer.
            if !handed { continuation.resume(throwing: ConnectionError.notConnected(jid: settings.jid)) }
        }
    }

    /// Sends `final` (e.g. unavailable presence), flushes, closes the stream and ends the thread.
    func stop(final: [XMLElement] = []) async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let handed = perform { [self] in
                for stanza in final { transmit(stanza) }
                stopping = true
                reconnecting = false
                if let conn, online {
                    xmpp_disconnect(conn)
                } else {
                    stopped = true
                }
                // Resumed when the loop exits.
                stopWaiters.append(done)
            }
            if !handed { done.resume() }  // stopped already
        }
    }
    private var stopWaiters: [CheckedContinuation<Void, Never>] = []

    // MARK: - The libstrophe thread

    private func runLoop() {
        // For `top -H`, perf and debuggers; Linux keeps 15 bytes. (Not through Foundation's
        // Thread.name: see `baton_name_this_thread`.)
        _ = baton_name_this_thread(String(decoding: "xmpp \(JID(settings.jid)?.local ?? settings.jid)".utf8.prefix(15), as: UTF8.self))
        xmpp_initialize()
        // libstrophe keeps this pointer for the context's whole life: it must not be a Swift
        // local passed with `&` (valid only during the call), so it gets memory of its own.
        let log = UnsafeMutablePointer<xmpp_log_t>.allocate(capacity: 1)
        defer { libstropheLog = nil; log.deallocate() }
        log.initialize(to: xmpp_log_t(handler: { userdata, level, area, message in
            let session = Unmanaged<StropheSession>.fromOpaque(userdata!).takeUnretainedValue()
            session.libstropheSaid(level: level, area: area.map { String(cString: $0) } ?? "",
                                   message: message.map { String(cString: $0) } ?? "")
        }, userdata: Unmanaged.passUnretained(self).toOpaque()))
        libstropheLog = log
        libstropheLogHandler = log.pointee.handler
        ctx = xmpp_ctx_new(nil, log)
        // Turns to run without sleeping after the socket had data: libstrophe reads at most
        // 4 KiB per turn, and the rest of a TLS record it already decrypted is invisible to
        // poll(2) — sleeping then would delay a large stanza (a hand-off) by the idle timeout.
        var eagerTurns = 0
        while !stopped {
            let work = inbox.withLock { inbox -> [Work] in
                defer { inbox.work.removeAll(keepingCapacity: true) }
                return inbox.work
            }
            for item in work {
                switch item {
                case .call(let call): call()
                case .job(let job): job.runSynchronously(on: asUnownedTaskExecutor())
                }
            }
            releaseDeadConnection()
            sweepTimers()
            stanzasThisTurn = 0
            if conn != nil { xmpp_run_once(ctx, 0) }
            // libstrophe writes what is queued at the start of a turn, so an answer queued while
            // this one read (a direct handler's: a hand-off's acknowledgement) would wait behind
            // the jobs that come first in the next turn, the step the hand-off brought among them.
            if stanzasThisTurn > 0, let conn, xmpp_conn_send_queue_len(conn) > 0 { xmpp_run_once(ctx, 0) }
            releaseDeadConnection()
            if stopped { break }
            if !work.isEmpty || stanzasThisTurn > 0 {
                eagerTurns = 8
                continue
            }
            if eagerTurns > 0 {
                eagerTurns -= 1
                continue
            }
            // Nothing happened: wait for the socket, a wake-up, or the idle timeout that lets
            // libstrophe's timers and ours (IQ timeouts, reconnection) run. Nothing else needs
            // it: what libstrophe has decrypted but not read is read by the eager turns (8 × 4 KiB
            // is more than a TLS record), so a shorter first timeout would only wake every idle
            // agent several times after each stanza (baton-bench: 4–5 wake-ups per agent and hop).
            if waitForActivity(timeoutMillis: Self.idleTimeoutMillis) {
                eagerTurns = 8
            }
        }
        // What was handed over but not run yet is run now, while the context still exists:
        // offline by now, a request fails at once, a send is dropped, a connect is refused and
        // a stop registers its waiter. Tasks that prefer this thread go on without it.
        let left = inbox.withLock { inbox -> [Work] in
            inbox.closed = true
            // Nothing writes to the pipe from now on (see `hand`): its descriptors go now, not
            // when the session is freed, which a task holding the connection can put off for ever.
            close(wakeRead)
            close(wakeWrite)
            defer { inbox.work.removeAll() }
            return inbox.work
        }
        for item in left {
            switch item {
            case .call(let call): call()
            case .job(let job): runElsewhere(job)
            }
        }
        failPending()
        if let conn { xmpp_conn_release(conn) }
        if let connectionToRelease { xmpp_conn_release(connectionToRelease) }
        if let streamManagement { xmpp_free_sm_state(streamManagement) }
        xmpp_ctx_free(ctx)
        eventSink.finish()
        for waiter in stopWaiters { waiter.resume() }
        stopWaiters.removeAll()
    }

    /// Returns whether the XMPP socket became readable.
    private func waitForActivity(timeoutMillis: Int32) -> Bool {
        let mustSleep = inbox.withLock { inbox -> Bool in
            guard inbox.work.isEmpty else { return false }
            inbox.sleeping = true
            return true
        }
        guard mustSleep else { return false }
        var fds = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
        if let conn, let socket = SocketRegistry.socket(of: conn) {
            var events = Int16(POLLIN)
            // Writable: stanzas are waiting, or the TCP connect has completed (otherwise noticed
            // only at the idle timeout).
            if xmpp_conn_send_queue_len(conn) > 0 || xmpp_conn_is_connecting(conn) != 0 { events |= Int16(POLLOUT) }
            fds.append(pollfd(fd: socket, events: events, revents: 0))
        }
        _ = poll(&fds, nfds_t(fds.count), timeoutMillis)
        inbox.withLock { $0.sleeping = false }
        var sink = [UInt8](repeating: 0, count: 64)
        while read(wakeRead, &sink, sink.count) > 0 {}
        return fds.count > 1 && fds[1].revents & Int16(POLLIN) != 0
    }

    private func nextID() -> String {
        idCounter &+= 1
        return "\(idPrefix)-\(idCounter)"
    }

    private func transmit(_ element: XMLElement) {
        guard let conn, online else {
            logger.debug("dropping stanza while offline: \(element.name) to \(element.to ?? "-")")
            return
        }
        // Rendered here rather than by libstrophe (`xmpp_send`): same queue and stream
        // management accounting, no C tree to build, and text escaped as the server likes it.
        let bytes = element.utf8XML
        bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { xmpp_send_raw(conn, $0.baseAddress, $0.count) }
        }
    }

    private func startConnection() {
        libstropheComplaints.removeAll()
        let conn = xmpp_conn_new(ctx)!
        self.conn = conn
        var flags = XMPP_CONN_FLAG_MANDATORY_TLS
        if settings.tls == .trustAny { flags |= XMPP_CONN_FLAG_TRUST_TLS }
        if !settings.streamManagement { flags |= XMPP_CONN_FLAG_DISABLE_SM }
        xmpp_conn_set_flags(conn, Int(flags))
        let jid = JID(settings.jid)
        let resource = jid?.resource ?? "baton-\(idPrefix)"
        xmpp_conn_set_jid(conn, "\(jid?.bare ?? settings.jid)/\(resource)")
        xmpp_conn_set_pass(conn, settings.password)
        if let caFile = settings.caFile { xmpp_conn_set_cafile(conn, caFile) }
        xmpp_conn_set_sockopt_callback(conn) { conn, socket in
            let fd = socket!.load(as: Int32.self)
            SocketRegistry.register(fd, for: conn!)
            // Pipelined IQs must not wait for delayed ACKs (Nagle), and a dead peer must be
            // noticed without waiting for the TCP retransmission timeout.
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            return xmpp_sockopt_cb_keepalive(conn, socket)
        }
        if let streamManagement {
            // Resume the XEP-0198 session: the server replays what we missed and we resend
            // what it never acknowledged.
            xmpp_conn_set_sm_state(conn, streamManagement)
            self.streamManagement = nil
        }
        let me = Unmanaged.passUnretained(self).toOpaque()
        xmpp_handler_add(conn, { _, stanza, userdata in
            let session = Unmanaged<StropheSession>.fromOpaque(userdata!).takeUnretainedValue()
            session.received(StropheBridge.element(from: stanza!))
            return 1
        }, nil, nil, nil, me)
        let status = xmpp_connect_client(conn, settings.host, UInt16(settings.port ?? 0), { conn, event, error, streamError, userdata in
            let session = Unmanaged<StropheSession>.fromOpaque(userdata!).takeUnretainedValue()
            let streamText = streamError.map { error -> String in
                let text = error.pointee.text.map { String(cString: $0) }
                return text ?? "stream error \(error.pointee.type.rawValue)"
            }
            session.connectionChanged(conn!, event: event, error: error, streamError: streamText)
        }, me)
        if status != XMPP_EOK {
            fail(.unreachable(jid: settings.jid, server: settings.serverDescription, reason: "connect call failed (\(status))"))
        }
    }

    private func libstropheSaid(level: xmpp_log_level_t, area: String, message: String) {
        let lower = message.lowercased()
        if level.rawValue >= XMPP_LEVEL_WARN.rawValue
            || lower.contains("auth failed") || lower.contains("tls") || lower.contains("certificate") {
            libstropheComplaints.append("\(area): \(message)")
            if libstropheComplaints.count > 20 { libstropheComplaints.removeFirst() }
        }
        if level.rawValue >= XMPP_LEVEL_WARN.rawValue {
            logger.debug("libstrophe \(area): \(message)")
        }
    }

    private func received(_ stanza: XMLElement) {
        stanzasThisTurn += 1
        if stanza.name == "iq", stanza.type == "get", let ping = stanza.firstChild, ping.name == "ping", ping.xmlns == NS.ping {
            // XEP-0199 is answered here on the I/O thread: liveness must not queue behind busy
            // work, and it spares every ping two thread hops.
            transmit(Stanza.iq(.result, to: stanza.from, id: stanza.id))
            return
        }
        if let key = IQPayloadKey(request: stanza), let handler = directHandlers.withLock({ $0[key] }) {
            if let reply = handler(stanza) { transmit(reply) }
            return
        }
        if stanza.name == "iq", let type = stanza.type, type == "result" || type == "error",
           let id = stanza.id, let request = pending[id] {
            // Ids can be guessed: an answer counts only from whom the request went to (the
            // server stamps `from`), or a third party could fake a peer's acknowledgement.
            guard request.isAnswered(by: stanza.from.flatMap(JID.init), account: boundJID) else {
                logger.warning("ignoring IQ \(type) \(id) from \(stanza.from ?? "(none)"): the request went to \(request.responder?.description ?? "the server")")
                return
            }
            pending.removeValue(forKey: id)
            if type == "error" {
                request.continuation.resume(throwing: StanzaError(parsing: stanza))
            } else {
                request.continuation.resume(returning: stanza)
            }
            return
        }
        eventSink.yield(.stanza(stanza))
    }

    private func connectionChanged(_ conn: OpaquePointer, event: xmpp_conn_event_t, error: Int32, streamError: String?) {
        switch event {
        case XMPP_CONN_CONNECT:
            muteLibstropheLog(true)
            online = true
            everOnline = true
            reconnectAttempt = 0
            let bound = xmpp_conn_get_bound_jid(conn).map { String(cString: $0) } ?? settings.jid
            boundJID = JID(bound)
            logger.info("online as \(bound) via \(settings.serverDescription)")
            firstConnect?.resume(returning: bound)
            firstConnect = nil
            eventSink.yield(.online(boundJID: bound))
        case XMPP_CONN_RAW_CONNECT:
            break
        default:
            muteLibstropheLog(false)
            let wasOnline = online
            online = false
            let reason = classify(error: error, streamError: streamError, wasOnline: wasOnline)
            failPending()
            // libstrophe must not free a connection from inside its own callback.
            if self.conn == conn {
                streamManagement = xmpp_conn_get_sm_state(conn)
                connectionToRelease = conn
                self.conn = nil
            }
            if stopping {
                stopped = true
                return
            }
            if wasOnline {
                logger.warning("connection lost: \(reason)")
                eventSink.yield(.offline(reason))
            }
            if let firstConnect, !everOnline {
                firstConnect.resume(throwing: reason)
                self.firstConnect = nil
                reconnecting = false
                return
            }
            if reconnecting { scheduleReconnect(after: reason) }
        }
    }

    /// Once online, libstrophe's log is the text of every stanza sent and received, each one
    /// formatted by its own character-by-character printf — twice for stanzas over 1 KiB — only
    /// to be dropped here. With no handler it formats nothing. Login chatter, which explains a
    /// failed connection, is logged again from the moment the connection drops.
    private func muteLibstropheLog(_ mute: Bool) {
        libstropheLog?.pointee.handler = mute ? nil : libstropheLogHandler
    }

    private func fail(_ error: ConnectionError) {
        if let firstConnect {
            firstConnect.resume(throwing: error)
            self.firstConnect = nil
        } else if reconnecting {
            scheduleReconnect(after: error)
        }
    }

    private func classify(error: Int32, streamError: String?, wasOnline: Bool) -> ConnectionError {
        let jid = settings.jid, server = settings.serverDescription
        let complaints = libstropheComplaints.joined(separator: "; ")
        if wasOnline {
            // libstrophe reports errno values for socket failures; small codes are its own.
            let detail = error > 1 ? String(cString: strerror(error)) : "connection closed"
            return .streamError(jid: jid, server: server, reason: streamError ?? detail)
        }
        if complaints.contains("auth failed") || complaints.lowercased().contains("no sasl") || complaints.contains("not-authorized") {
            return .authenticationFailed(jid: jid, server: server)
        }
        if let streamError { return .streamError(jid: jid, server: server, reason: streamError) }
        let lower = complaints.lowercased()
        if lower.contains("tls") || lower.contains("certificate") || lower.contains("ssl") {
            return .tlsFailed(jid: jid, server: server, reason: libstropheComplaints.last ?? "handshake failed")
        }
        if error != 0 {
            return .unreachable(jid: jid, server: server, reason: String(cString: strerror(error)))
        }
        return .unreachable(jid: jid, server: server, reason: complaints.isEmpty ? "connection closed during login" : complaints)
    }

    private func scheduleReconnect(after error: ConnectionError) {
        // Exponential back-off with full jitter on top of a floor, capped at 30 s.
        let base = min(30.0, 0.25 * pow(2.0, Double(reconnectAttempt)))
        let delay = base / 2 + Double.random(in: 0...(base / 2))
        reconnectAttempt += 1
        logger.info("reconnecting in \(String(format: "%.2f", delay)) s (attempt \(reconnectAttempt)): \(error)")
        reconnectAt = .now + .milliseconds(Int(delay * 1000))
    }

    private func releaseDeadConnection() {
        if let dead = connectionToRelease {
            SocketRegistry.forget(dead)
            xmpp_conn_release(dead)
            connectionToRelease = nil
        }
    }

    /// The connection is gone: no request will be answered.
    private func failPending() {
        for (_, request) in pending {
            request.continuation.resume(throwing: ConnectionError.disconnected(jid: settings.jid))
        }
        pending.removeAll()
    }

    private func sweepTimers() {
        let now = ContinuousClock.now
        if let at = reconnectAt, at <= now, reconnecting {
            reconnectAt = nil
            startConnection()
        }
        guard now >= nextSweep, !pending.isEmpty else { return }
        nextSweep = now + .milliseconds(50)
        for (id, request) in pending where request.deadline <= now {
            pending.removeValue(forKey: id)
            request.continuation.resume(throwing: ConnectionError.timeout(jid: settings.jid, what: "IQ \(id)", seconds: request.seconds))
        }
    }
}

/// An IQ request waiting for its answer.
struct PendingRequest {
    let continuation: CheckedContinuation<XMLElement, Error>
    let deadline: ContinuousClock.Instant
    let seconds: Double
    /// The request's `to`; nil for the account's own server.
    let responder: JID?

    /// Whether an answer from `sender` may be this request's (RFC 6120 §8.1.2.1): from the JID it
    /// went to; for a request to the account itself (or with no `to`), from the server on the
    /// account's behalf — no `from`, the account's bare JID, or its domain.
    func isAnswered(by sender: JID?, account: JID?) -> Bool { Self.isAnswer(from: sender, to: responder, account: account) }

    static func isAnswer(from sender: JID?, to responder: JID?, account: JID?) -> Bool {
        if let responder, responder.bare != account?.bare || responder.resource != nil {
            return sender == responder
        }
        guard let sender else { return true }
        return sender.resource == nil && (sender.bare == account?.bare || (sender.local == nil && sender.domain == account?.domain))
    }
}

/// Tasks may prefer the I/O thread (`Task(executorPreference: connection.executor)`): their
/// code between suspension points runs there, in turn with the reading and writing, so a
/// request they send and the reply they wait for cost no thread switch at all. Work that takes
/// long or blocks must not run this way: the connection is deaf meanwhile.
extension StropheSession: TaskExecutor {
    func enqueue(_ job: consuming ExecutorJob) {
        _ = hand(.job(UnownedJob(job)))
    }

    /// Runs a job of this executor's on a thread of the global pool, once this thread has ended.
    fileprivate func runElsewhere(_ job: UnownedJob) {
        let executor = asUnownedTaskExecutor()
        DispatchQueue.global().async { job.runSynchronously(on: executor) }
    }
}

/// libstrophe's socket-option callback carries no user data, so the socket of each connection
/// is noted here, keyed by the connection pointer.
enum SocketRegistry {
    private static let sockets = Mutex<[UInt: Int32]>([:])
    static func register(_ fd: Int32, for conn: OpaquePointer) {
        sockets.withLock { $0[UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(conn)))] = fd }
    }
    static func socket(of conn: OpaquePointer) -> Int32? {
        sockets.withLock { $0[UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(conn)))] }
    }
    static func forget(_ conn: OpaquePointer) {
        _ = sockets.withLock { $0.removeValue(forKey: UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(conn)))) }
    }
}
