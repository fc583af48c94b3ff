import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Thin wrappers over mount(2)/umount2(2) for the overlays the engine owns
/// on the host (the runtime does the in-container bind mounts itself).
enum HostMounts {
    static func overlay(lower: String, upper: String, work: String, target: String) throws {
        let opts = "lowerdir=\(lower),upperdir=\(upper),workdir=\(work)"
        guard mount("overlay", target, "overlay", 0, opts) == 0 else {
            throw LauncherError.mountFailed(target, errno: errno)
        }
    }

    /// Unmounts `target` if mounted; falls back to a lazy detach so a stray
    /// open file cannot make destroy leave the mount behind.
    static func unmount(_ target: String) {
        guard isMounted(target) else { return }
        if umount2(target, 0) != 0 { _ = umount2(target, Int32(MNT_DETACH)) }
    }

    /// Mount points from /proc/mounts (octal escapes like \040 decoded).
    static func mountPoints() -> [String] {
        return readProcFile("/proc/self/mounts").split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ")
            return f.count > 1 ? decode(String(f[1])) : nil
        }
    }

    /// procfs files report size 0, and Foundation's whole-file readers can
    /// stop early on them; a plain read(2) loop gets everything.
    static func readProcFile(_ path: String) -> String {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var bytes = [UInt8](), buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            bytes += buf[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func isMounted(_ path: String) -> Bool { mountPoints().contains(path) }

    static func mounts(under dir: String) -> [String] {
        let prefix = dir.hasSuffix("/") ? dir : dir + "/"
        return mountPoints().filter { $0.hasPrefix(prefix) || $0 == dir }
    }

    private static func decode(_ s: String) -> String {
        guard s.contains("\\") else { return s }
        var out = [UInt8](); let b = Array(s.utf8); var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "\\"), i + 3 < b.count, let v = UInt8(String(decoding: b[(i+1)...(i+3)], as: UTF8.self), radix: 8) {
                out.append(v); i += 4
            } else { out.append(b[i]); i += 1 }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
