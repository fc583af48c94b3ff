import Foundation

/// Extracts .deb files once per content digest; later builds reuse the tree.
struct DebExtractor {
    let cacheDir: URL

    func extract(_ deb: URL, sha256: String) throws -> URL {
        let dest = cacheDir.appendingPathComponent(sha256)
        if FileManager.default.fileExists(atPath: dest.path) { return dest }
        try FileManager.default.createDirectory(at: cacheDir, withIntermediateDirectories: true)
        let stage = cacheDir.appendingPathComponent(".stage-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: stage) }
        try Tool.run(["dpkg-deb", "-x", deb.path, stage.path], timeout: 600)
        if rename(stage.path, dest.path) != 0 && !FileManager.default.fileExists(atPath: dest.path) {
            throw POSIXError(.init(rawValue: errno) ?? .EIO)
        }
        return dest
    }
}

/// Kernel modules the initramfs must load, with dependencies resolved from each module's
/// .modinfo `depends=` (the .deb ships no modules.dep; depmod runs in its postinst).
struct KernelModules {
    let moduleRoot: URL  // .../lib/modules/<kver>

    /// Modules a squashfs-on-virtio root with an overlay needs; anything built in is skipped.
    static let wanted = ["virtio_pci", "virtio_blk", "squashfs", "overlay"]

    func index() throws -> [String: URL] {
        var map: [String: URL] = [:]
        let e = FileManager.default.enumerator(at: moduleRoot.appendingPathComponent("kernel"), includingPropertiesForKeys: nil)
        while let url = e?.nextObject() as? URL {
            guard url.pathExtension == "ko" else { continue }
            map[url.deletingPathExtension().lastPathComponent.replacingOccurrences(of: "-", with: "_")] = url
        }
        return map
    }

    func depends(_ ko: URL) throws -> [String] {
        let data = try Data(contentsOf: ko)
        guard let r = data.range(of: Data("depends=".utf8)) else { return [] }
        let tail = data[r.upperBound...].prefix { $0 != 0 }
        return String(decoding: tail, as: UTF8.self).split(separator: ",").map { $0.replacingOccurrences(of: "-", with: "_") }
    }

    /// Dependency-ordered module files (dependencies first).
    func resolve(_ names: [String] = wanted) throws -> [URL] {
        let idx = try index()
        var order: [URL] = []
        var seen: Set<String> = []
        func visit(_ n: String) throws {
            guard !seen.contains(n) else { return }
            seen.insert(n)
            guard let url = idx[n] else { return }  // built into the kernel
            for d in try depends(url) { try visit(d) }
            order.append(url)
        }
        for n in names { try visit(n) }
        return order
    }
}
