import AgentKernel

/// One connection for the whole run of agentctl (a command, or a shell session), with the
/// workflow client and, once something is watched, the subscription to `baton/events`.
final class Session: Sendable {
    let client: ControlClient
    let workflows: WorkflowClient
    /// The full JID the server bound: what `baton/events` is subscribed for.
    let boundJID: String
    private let feedHolder = Locked<WorkflowEventFeed?>(nil)

    init(client: ControlClient, boundJID: String) {
        self.client = client
        self.boundJID = boundJID
        workflows = WorkflowClient(control: client)
    }

    var connection: XMPPConnection { client.connection }

    /// The event feed, created on first use: it takes over the connection's event stream.
    var feed: WorkflowEventFeed {
        feedHolder.withLock { feed in
            if let feed { return feed }
            let made = WorkflowEventFeed(connection: client.connection, service: client.pubsubService, subscriber: boundJID)
            feed = made
            return made
        }
    }

    /// Unsubscribes from `baton/events` (if subscribed) and closes the stream.
    func close() async {
        if let feed = feedHolder.value { await feed.close() }
        await client.connection.close()
    }
}
