import Foundation

/// Builds the small seed disk the guest's /sbin/baton-context reads, in the forms grid sites
/// use: cloud-init NoCloud (label cidata) or glideinWMS user data (base64(ini)####args, or the
/// plain ini of debug mode).
public enum ContextSeed {
    /// Files for the seed disk, by name.
    public static func files(context: Recipe.Context, checks: [Recipe.VMCheck], instanceID: String) -> [String: Data] {
        let host = context.hostname ?? "baton-vm"
        switch context.method {
        case .nocloud:
            var ud = "#cloud-config\nhostname: \(host)\nruncmd:\n"
            // Single-quoted YAML scalars: the guest undoes the '' escaping.
            for c in checks { ud += "  - '\(c.run.replacingOccurrences(of: "'", with: "''"))'\n" }
            return ["meta-data": Data("instance-id: \(instanceID)\nlocal-hostname: \(host)\n".utf8),
                    "user-data": Data(ud.utf8)]
        case .glideinwms, .ini:
            var ini = "[baton]\nhostname = \(host)\ninstance_id = \(instanceID)\n\n[checks]\n"
            for c in checks { ini += "\(c.name) = \(c.run)\n" }
            if context.method == .ini { return ["userdata": Data(ini.utf8)] }
            let ud = Data(ini.utf8).base64EncodedString() + "####" + (context.args ?? "")
            return ["userdata": Data(ud.utf8)]
        }
    }

    /// An ext2 image (mke2fs -d; ext2 is read by the cloud kernel's built-in ext4 driver, so
    /// no module is needed for it) labelled `cidata`.
    public static func makeDisk(files: [String: Data], at image: URL) throws {
        let dir = image.deletingLastPathComponent().appendingPathComponent(".seed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, data) in files { try data.write(to: dir.appendingPathComponent(name)) }
        try? FileManager.default.removeItem(at: image)
        try Tool.run(["mke2fs", "-q", "-F", "-t", "ext2", "-L", "cidata", "-d", dir.path, image.path, "2M"], timeout: 60)
    }
}
