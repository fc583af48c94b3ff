import Foundation

/// Turns an image source (tarball or directory) into a read-only directory
/// that overlays and bind mounts can use as their lower layer.
///
/// Tarballs are unpacked once per sha256 digest into layers/<digest>/ and
/// shared by every instance; concurrent requests for the same digest wait
/// for the one unpack in flight instead of racing.
actor LayerStore {
    let layersDir: String
    private var inFlight: [String: Task<String, Error>] = [:]
    /// Digest cache keyed by file identity, so a second launch does not
    /// re-hash a large base image.
    private var digests: [String: String] = [:]

    init(layersDir: String) throws {
        self.layersDir = layersDir
        try FileManager.default.createDirectory(atPath: layersDir, withIntermediateDirectories: true)
    }

    /// Returns the directory holding the unpacked contents of `path`.
    func layer(for path: String) async throws -> String {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw LauncherError.imageNotFound(path)
        }
        // A directory is already "unpacked": use it in place as the lower layer.
        if isDir.boolValue { return path }
        let digest = try await digest(of: path)
        let dest = "\(layersDir)/\(digest)"
        if FileManager.default.fileExists(atPath: dest) { return dest }
        if let running = inFlight[digest] { return try await running.value }
        let task = Task { try await Self.unpack(path, into: dest, tmpRoot: layersDir) }
        inFlight[digest] = task
        defer { inFlight[digest] = nil }
        return try await task.value
    }

    func digest(of path: String) async throws -> String {
        var st = stat()
        guard stat(path, &st) == 0 else { throw LauncherError.imageNotFound(path) }
        let identity = "\(path)|\(st.st_dev)|\(st.st_ino)|\(st.st_size)|\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
        if let d = digests[identity] { return d }
        let out = try await Subprocess.check(["/usr/bin/sha256sum", "--", path])
        guard let d = out.split(separator: " ").first.map(String.init), d.count == 64 else {
            throw LauncherError.ioFailure("sha256sum gave unexpected output for \(path): \(out)")
        }
        digests[identity] = d
        return d
    }

    /// Unpacks into a temp dir then renames, so a crash or a corrupt archive
    /// never leaves a half-filled layer that later launches would trust.
    private static func unpack(_ tarball: String, into dest: String, tmpRoot: String) async throws -> String {
        let tmp = "\(tmpRoot)/.unpack-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        // GNU tar detects gzip itself; --numeric-owner keeps the image's uids
        // rather than remapping through the host's /etc/passwd.
        let r = try await Subprocess.run(["/usr/bin/tar", "--numeric-owner", "-xpf", tarball, "-C", tmp])
        guard r.status == 0 else {
            try? FileManager.default.removeItem(atPath: tmp)
            throw LauncherError.corruptImage(tarball, detail: r.output.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        if rename(tmp, dest) != 0 {
            try? FileManager.default.removeItem(atPath: tmp)
            guard FileManager.default.fileExists(atPath: dest) else {
                throw LauncherError.ioFailure("cannot move unpacked layer to \(dest): \(String(cString: strerror(errno)))")
            }
        }
        return dest
    }
}
