import Testing
@testable import AgentKernel

@Suite struct StanzaTests {
    @Test func escapesTextAndAttributes() {
        let element = XMLElement("body", ["note": "a\"b'<c>&"], text: "1 < 2 & </body>")
        #expect(element.xml == "<body note=\"a&quot;b'&lt;c&gt;&amp;\">1 &lt; 2 &amp; &lt;/body&gt;</body>")
    }

    @Test func jsonTextKeepsItsQuotes() {
        let json = XMLElement("json", xmlns: "urn:xmpp:json:0", text: #"{"a":"<b> & 'c'"}"#)
        #expect(json.xml == #"<json xmlns="urn:xmpp:json:0">{"a":"&lt;b&gt; &amp; 'c'"}</json>"#)
    }

    @Test func charactersXMLForbidsAreReplaced() {
        let body = XMLElement("body", ["a": "x\ty\nz"], text: "\u{1B}[31mred\u{1B}[0m \u{0}\u{FFFF}\u{FFFD}é\r\n")
        #expect(body.xml == "<body a=\"x&#9;y&#10;z\">\u{FFFD}[31mred\u{FFFD}[0m \u{FFFD}\u{FFFD}\u{FFFD}é\r\n</body>")
        // At the very end too, and U+FFFC (EF BF BC) is an XML character: it stays.
        #expect(XMLElement("b", text: "a\u{FFFC}\u{FFFE}").xml == "<b>a\u{FFFC}\u{FFFD}</b>")
        #expect(XMLElement("b", text: "\u{7}").xml == "<b>\u{FFFD}</b>")
    }

    @Test func readsChildrenByNameAndNamespace() {
        let iq = Stanza.iq(.get, to: "a@b/c", id: "7", payload: XMLElement("query", xmlns: NS.discoInfo))
        #expect(iq.child("query", xmlns: NS.discoInfo) != nil)
        #expect(iq.child("query", xmlns: NS.discoItems) == nil)
        #expect(iq.type == "get" && iq.id == "7" && iq.to == "a@b/c")
    }

    @Test func errorReplyCarriesConditionAndText() {
        let request = Stanza.iq(.set, to: "agent@x/y", id: "42", payload: XMLElement("command", xmlns: NS.commands))
            .withAttribute("from", "ops@x/z")
        let reply = StanzaError(.forbidden, "not you").reply(to: request)
        #expect(reply.type == "error" && reply.to == "ops@x/z" && reply.id == "42")
        let parsed = StanzaError(parsing: reply)
        #expect(parsed.condition == .forbidden)
        #expect(parsed.text == "not you")
        #expect(reply.child("error")?["type"] == "auth")
        // A command that failed is not worth trying again as it is.
        #expect(StanzaError(.internalServerError, "boom").reply(to: request).child("error")?["type"] == "cancel")
        #expect(StanzaError(.resourceConstraint, "busy").reply(to: request).child("error")?["type"] == "wait")
    }

    @Test func jidParts() {
        let jid = JID("build@baton.test/agent")
        #expect(jid?.local == "build" && jid?.domain == "baton.test" && jid?.resource == "agent")
        #expect(jid?.bare == "build@baton.test")
        #expect(JID("@x") == nil)
        #expect(JID("a@b/") == nil)
        #expect(JID("pubsub.baton.test")?.local == nil)
        // Local part and domain compare without case; the resource keeps it.
        #expect(JID("Ops@Baton.TEST/Laptop")?.description == "ops@baton.test/Laptop")
    }

    @Test func iqAnswersCountOnlyFromWhomTheRequestWentTo() {
        let account = JID("build@baton.test/agent")
        func answers(_ from: String?, _ to: String?) -> Bool {
            PendingRequest.isAnswer(from: from.flatMap(JID.init), to: to.flatMap(JID.init), account: account)
        }
        #expect(answers("test@baton.test/agent", "test@baton.test/agent"))
        #expect(answers("Test@Baton.test/agent", "test@baton.test/agent"))
        #expect(!answers("mallory@baton.test/x", "test@baton.test/agent"))
        #expect(!answers("test@baton.test/other", "test@baton.test/agent"))
        #expect(!answers(nil, "test@baton.test/agent"))
        #expect(answers("pubsub.baton.test", "pubsub.baton.test"))
        #expect(!answers("baton.test", "pubsub.baton.test"))
        // To the account itself, or to no one: the server answers on its behalf.
        for server in [nil, "build@baton.test", "baton.test"] {
            #expect(answers(server, nil))
            #expect(answers(server, "build@baton.test"))
        }
        #expect(!answers("mallory@baton.test/x", nil))
        #expect(!answers("build@baton.test/other", nil))
        #expect(answers("build@baton.test/other", "build@baton.test/other"))
    }

    @Test func discoIdentitiesFollowTheRegistry() {
        func identity(_ node: String?) -> String? {
            Disco.info(name: "n", features: [], node: node).child("identity").map { "\($0["category"] ?? "")/\($0["type"] ?? "")" }
        }
        #expect(identity(nil) == "client/bot")
        #expect(identity(NS.commands) == "automation/command-list")
        #expect(identity("submit") == "automation/command-node")
    }

    @Test func pubsubEventsCountOnlyFromTheService() throws {
        func notification(from sender: String?) -> XMLElement {
            XMLElement("message", ["from": sender, "to": "build@baton.test/agent"], children: [
                XMLElement("event", xmlns: NS.pubsubEvent, children: [
                    XMLElement("items", ["node": "baton/agents"], children: [XMLElement("retract", ["id": "test@baton.test/agent"])]),
                ]),
            ])
        }
        let real = PubSubClient.event(in: notification(from: "pubsub.baton.test"), from: "pubsub.baton.test")
        #expect(real?.node == "baton/agents" && real?.retracted == ["test@baton.test/agent"])
        for forger in ["mallory@evil.example/x", "pubsub.baton.test/x", "baton.test", "mallory@pubsub.baton.test"] {
            #expect(PubSubClient.event(in: notification(from: forger), from: "pubsub.baton.test") == nil, "\(forger)")
        }
        #expect(PubSubClient.event(in: notification(from: nil), from: "pubsub.baton.test") == nil)
    }
}

extension XMLElement {
    func withAttribute(_ name: String, _ value: String) -> XMLElement {
        var copy = self
        copy[name] = value
        return copy
    }
}
