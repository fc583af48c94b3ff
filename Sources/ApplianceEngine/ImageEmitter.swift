import Foundation

/// Turns a staged root file system directory into image files. Every emitter pins time,
/// ordering and identifiers so the same tree always gives the same bytes.
struct ImageEmitter {
    let sourceDateEpoch: Int
    /// Deterministic UUID for ext4 (derived by the caller from the cache key).
    let uuid: String
    let label: String

    var sde: String { String(sourceDateEpoch) }
    var env: [String: String] { ["SOURCE_DATE_EPOCH": sde, "E2FSPROGS_FAKE_TIME": sde] }

    /// Sets every mtime in the tree (symlinks included) to SOURCE_DATE_EPOCH; ext4 and cpio
    /// copy mtimes from the tree.
    func clampTimes(_ root: URL) throws {
        try Tool.run(["find", root.path, "-exec", "touch", "-h", "-d", "@\(sde)", "{}", "+"], timeout: 600)
    }

    func tar(_ root: URL, to out: URL) throws {
        try Tool.run(["tar", "--sort=name", "--mtime=@\(sde)", "--numeric-owner", "--format=posix",
                      "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
                      "-C", root.path, "-cf", out.path, "."], env: env, timeout: 1800)
    }

    /// mksquashfs refuses SOURCE_DATE_EPOCH together with -all-time, so the explicit options
    /// are used and the variable is removed.
    /// Ownership comes from the staged tree (the builder chowns recipe files), so -all-root
    /// is not used.
    func squashfs(_ root: URL, to out: URL) throws {
        try Tool.run(["env", "-u", "SOURCE_DATE_EPOCH", "mksquashfs", root.path, out.path, "-noappend", "-all-time", sde, "-mkfs-time", sde,
                      "-no-progress", "-quiet"], timeout: 1800)
    }

    func ext4(_ root: URL, to out: URL) throws {
        let du = try Tool.run(["du", "-sb", root.path]).stdoutString
        let bytes = Int(du.split(separator: "\t").first ?? "0") ?? 0
        let blocks = max((bytes * 3 / 2 + (32 << 20)) / 4096, 8192)
        try? FileManager.default.removeItem(at: out)
        try Tool.run(["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-d", root.path, "-L", String(label.prefix(16)),
                      "-U", uuid, "-E", "hash_seed=\(uuid),root_owner=0:0", out.path, String(blocks)],
                     env: env, timeout: 1800)
    }

    func qcow2(from raw: URL, to out: URL) throws {
        try Tool.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw.path, out.path], timeout: 1800)
    }

    /// newc cpio with sorted names, root ownership and clamped mtimes, gzip without name/time.
    func initramfs(_ root: URL, to out: URL) throws {
        try clampTimes(root)
        let script = "cd \"$1\" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --reproducible -R 0:0 --quiet | gzip -9n > \"$2\""
        try Tool.run(["sh", "-c", script, "sh", root.path, out.path], env: env, timeout: 600)
    }

    /// UUID string from the first 16 bytes of a hex digest.
    static func uuid(fromHex h: String) -> String {
        let c = Array(h.prefix(32))
        return "\(String(c[0..<8]))-\(String(c[8..<12]))-\(String(c[12..<16]))-\(String(c[16..<20]))-\(String(c[20..<32]))"
    }
}
