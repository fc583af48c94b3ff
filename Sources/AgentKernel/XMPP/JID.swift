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
            local = String(rest[..<at])
            rest = rest[rest.index(after: at)...]
        }
        guard !rest.isEmpty, local != "", resource != "" else { return nil }
        domain = String(rest)
    }

    public var bare: String { local.map { "\($0)@\(domain)" } ?? domain }
    public var description: String { resource.map { "\(bare)/\($0)" } ?? bare }
}
