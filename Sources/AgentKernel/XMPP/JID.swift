/// A Jabber ID split into its parts (RFC 7622, without stringprep: agents use ASCII names).
public struct JID: Sendable, Hashable, CustomStringConvertible {
    public var local: String?
    public var domain: String
    public var resource: String?

    public init?(_ string: String) {
        var rest = Substring(string)
        if let slash = rest.firstIndex(of: "/") {
            resource = String(rest[rest.index(after: slash)...])
            rest = rest[..<slash]
        }
        if let at = rest.firstIndex(of: "@") {
            local = String(rest[..<at]).lowercased()
            rest = rest[rest.index(after: at)...]
        }
        guard !rest.isEmpty, local != "", resource != "" else { return nil }
        // Local part and domain are case-insensitive (the server stamps them in lower case):
        // `Ops@Baton.test` in a config is the account `ops@baton.test`. The resource keeps its case.
        domain = String(rest).lowercased()
    }

    public var bare: String { local.map { "\($0)@\(domain)" } ?? domain }
    public var description: String { resource.map { "\(bare)/\($0)" } ?? bare }
}
