import Foundation

/// The Debian mirror this machine is configured with (`/etc/apt/sources.list` and
/// `sources.list.d/*.list|*.sources`): snapshots download from where the host's apt does,
/// so a site's local mirror or proxy is used without extra configuration.
public enum HostAptSources {
    public struct Mirrors: Sendable, Equatable {
        public var main: String
        public var security: String?
    }

    public static func detect(etc: String = "/etc/apt") -> Mirrors? {
        var entries: [(uri: String, suites: [String])] = []
        var files = ["\(etc)/sources.list"]
        let partsDir = "\(etc)/sources.list.d"
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: partsDir)) ?? []).sorted()
        where name.hasSuffix(".list") || name.hasSuffix(".sources") {
            files.append("\(partsDir)/\(name)")
        }
        for file in files {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
            if file.hasSuffix(".sources") {
                // deb822 stanzas, separated by blank lines.
                for stanza in text.components(separatedBy: "\n\n") {
                    var fields: [String: String] = [:]
                    for line in stanza.split(separator: "\n") where !line.hasPrefix("#") {
                        let parts = line.split(separator: ":", maxSplits: 1)
                        if parts.count == 2 { fields[parts[0].trimmingCharacters(in: .whitespaces).lowercased()] = parts[1].trimmingCharacters(in: .whitespaces) }
                    }
                    guard fields["types"]?.split(separator: " ").contains("deb") == true, fields["enabled"]?.lowercased() != "no",
                          let uris = fields["uris"], let suites = fields["suites"] else { continue }
                    for uri in uris.split(separator: " ") { entries.append((String(uri), suites.split(separator: " ").map(String.init))) }
                }
            } else {
                for line in text.split(separator: "\n") {
                    var words = line.split(separator: " ").map(String.init)
                    guard words.first == "deb" else { continue }
                    words.removeFirst()
                    if words.first?.hasPrefix("[") == true {
                        while let w = words.first, !w.hasSuffix("]") { words.removeFirst() }
                        if !words.isEmpty { words.removeFirst() }
                    }
                    if words.count >= 2 { entries.append((words[0], [words[1]])) }
                }
            }
        }
        // Debian's own archives first: a third-party repository with a plain suite name
        // (`deb https://apt.grafana.com stable main`, listed earlier) is not the mirror.
        func isDebian(_ uri: String, _ last: String) -> Bool {
            uri.split(separator: "/").last.map(String.init) == last
        }
        let mains = entries.filter { $0.suites.contains { !$0.contains("-") } }
        let securities = entries.filter { $0.suites.contains { $0.hasSuffix("-security") } }
        guard let main = (mains.first { isDebian($0.uri, "debian") } ?? mains.first)?.uri else { return nil }
        let security = (securities.first { isDebian($0.uri, "debian-security") } ?? securities.first)?.uri
        return Mirrors(main: main, security: security)
    }
}
