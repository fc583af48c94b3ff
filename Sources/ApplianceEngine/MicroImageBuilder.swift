import Foundation

/// The micro profile: a busybox-static root file system (µCernVM style), booted from a
/// squashfs through the Baton initramfs.
public final class MicroImageBuilder: ImageBuilder {
    public static let builderVersion = "micro-1"
    public let cacheRoot: URL
    /// Where post scripts run; the build agent passes the container launcher.
    public let postScripts: any PostScriptRunner

    public init(cacheRoot: URL, postScripts: any PostScriptRunner = NamespaceChrootRunner()) {
        self.cacheRoot = cacheRoot
        self.postScripts = postScripts
    }

    public func makeRootfs(_ root: URL, pipeline: BuildPipeline) throws { try populate(root, pipeline: pipeline) }

    /// FHS skeleton + busybox with an applet symlink for every command it provides.
    func populate(_ root: URL, pipeline p: BuildPipeline) throws {
        for d in ["bin", "sbin", "etc", "root", "mnt", "var", "usr/bin", "usr/sbin", "usr/lib"] {
            try p.mkdir(root.appendingPathComponent(d), d == "root" ? 0o700 : 0o755)
        }
        let bb = try p.busyboxTree().appendingPathComponent("bin/busybox")
        try FileManager.default.copyItem(at: bb, to: root.appendingPathComponent("bin/busybox"))
        let full = try Tool.run([bb.path, "--list-full"]).stdoutString.split(separator: "\n")
        for path in full where path != "bin/busybox" {
            try p.mkdir(root.appendingPathComponent(String(path)).deletingLastPathComponent(), 0o755)
            try p.symlink("/bin/busybox", at: root.appendingPathComponent(String(path)))
        }
        try p.write("root:x:0:0:root:/root:/bin/sh\n", to: root.appendingPathComponent("etc/passwd"), mode: 0o644)
        try p.write("root:x:0:\n", to: root.appendingPathComponent("etc/group"), mode: 0o644)
    }
}
