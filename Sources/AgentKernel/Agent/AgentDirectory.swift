import Foundation

/// What an agent publishes about itself on `baton/agents`.
///
/// ```xml
/// <agent xmlns='urn:baton:agent:0' name='build' version='0.1.0' load='1' concurrency='2'>
///   <action>build.image</action>
/// </agent>
/// ```
public struct AgentDescription: Sendable, Equatable {
    public var jid: String
    public var name: String
    public var version: String
    public var actions: [String]
    public var load: Int
    public var concurrency: Int

    public init(jid: String, name: String, version: String, actions: [String], load: Int, concurrency: Int) {
        self.jid = jid
        self.name = name
        self.version = version
        self.actions = actions
        self.load = load
        self.concurrency = concurrency
    }

    public var element: XMLElement {
        XMLElement("agent", xmlns: NS.baton, ["name": name, "version": version, "load": String(load), "concurrency": String(concurrency)],
                   children: actions.map { XMLElement("action", text: $0) })
    }

    public init?(jid: String, element: XMLElement?) {
        guard let element, element.name == "agent", element.xmlns == NS.baton else { return nil }
        self.init(jid: jid, name: element["name"] ?? jid, version: element["version"] ?? "?",
                  actions: element.children("action").map(\.text), load: Int(element["load"] ?? "") ?? 0,
                  concurrency: Int(element["concurrency"] ?? "") ?? 1)
    }
}

/// An agent's live view of its peers: items from `baton/agents`, liveness from presence.
public actor AgentDirectory {
    public struct Peer: Sendable, Equatable {
        public var description: AgentDescription
        public var online: Bool
        public var jid: String { description.jid }
    }

    private var peers: [String: Peer] = [:]
    /// Full JIDs whose available presence we hold; kept apart from `peers` because presence may
    /// arrive before the peer's item does.
    private var available: Set<String> = []
    private var waiters: [(id: UUID, check: @Sendable ([Peer]) -> Bool, continuation: CheckedContinuation<Bool, Never>)] = []

    public init() {}

    public var all: [Peer] { peers.values.sorted { $0.jid < $1.jid } }
    public func peer(_ jid: String) -> Peer? { peers[jid] }

    /// Online agents offering `action`: least loaded first; ties broken by a hash of `key`
    /// (the workflow id) so that one workflow's retries go to the same agent, and different
    /// workflows spread out.
    public func candidates(for action: String, key: String = "") -> [Peer] {
        peers.values.filter { $0.online && $0.description.actions.contains(action) }.sorted { a, b in
            let loadA = Double(a.description.load) / Double(max(1, a.description.concurrency))
            let loadB = Double(b.description.load) / Double(max(1, b.description.concurrency))
            if loadA != loadB { return loadA < loadB }
            return Self.stableHash(key + a.jid) < Self.stableHash(key + b.jid)
        }
    }

    /// FNV-1a, stable across processes (Swift's `hashValue` is seeded per process).
    static func stableHash(_ s: String) -> UInt64 {
        var hash: UInt64 = 0xcbf29ce484222325
        for byte in s.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100000001b3 }
        return hash
    }

    /// Records an item; returns true if the peer is new (so the caller can greet it).
    @discardableResult
    public func update(_ description: AgentDescription) -> Bool {
        let isNew = peers[description.jid] == nil
        peers[description.jid] = Peer(description: description, online: available.contains(description.jid))
        notify()
        return isNew
    }

    public func remove(_ jid: String) {
        peers.removeValue(forKey: jid)
        notify()
    }

    public func setOnline(_ jid: String, _ online: Bool) {
        if online { available.insert(jid) } else { available.remove(jid) }
        guard peers[jid] != nil else { return }
        peers[jid]?.online = online
        notify()
    }

    /// Marks every peer offline (our own connection was lost: we know nothing any more).
    public func markAllOffline() {
        available.removeAll()
        for key in peers.keys { peers[key]?.online = false }
        notify()
    }

    /// Waits until `condition` holds for the peers, or `timeout` seconds pass; returns whether it held.
    public func wait(timeout: Double, until condition: @escaping @Sendable ([Peer]) -> Bool) async -> Bool {
        if condition(all) { return true }
        let id = UUID()
        return await withCheckedContinuation { continuation in
            waiters.append((id, condition, continuation))
            Task { [weak self] in
                try? await Task.sleep(for: .milliseconds(Int(timeout * 1000)))
                await self?.expire(id)
            }
        }
    }

    private func expire(_ id: UUID) {
        if let index = waiters.firstIndex(where: { $0.id == id }) {
            waiters.remove(at: index).continuation.resume(returning: false)
        }
    }

    private func notify() {
        let current = all
        waiters.removeAll { waiter in
            guard waiter.check(current) else { return false }
            waiter.continuation.resume(returning: true)
            return true
        }
    }
}
