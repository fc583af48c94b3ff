import Foundation

/// The debian profile: mmdebstrap (variant apt) from the snapshot repository only, then the
/// same guest tools, files, post scripts and format emitters as the micro profile.
public final class DebianImageBuilder: ImageBuilder {
    public static let builderVersion = "debian-2"
    public let cacheRoot: URL
    /// Where post scripts run; the build agent passes the container launcher.
    public let postScripts: any PostScriptRunner

    public init(cacheRoot: URL, postScripts: any PostScriptRunner = NamespaceChrootRunner()) {
        self.cacheRoot = cacheRoot
        self.postScripts = postScripts
    }

    public func makeRootfs(_ root: URL, pipeline: BuildPipeline) throws {
        try bootstrap(root, recipe: pipeline.recipe, snapshot: pipeline.snapshot, sde: pipeline.sourceDateEpoch)
    }

    /// The kernel packages stay out of the root file system: the builder boots the kernel
    /// directly and would only pay for initramfs-tools hooks.
    func bootstrap(_ root: URL, recipe: Recipe, snapshot: Snapshot, sde: Int) throws {
        let include = recipe.packages.filter { !$0.hasPrefix("linux-image-") }
        // In a mount namespace of its own: in root mode mmdebstrap mounts /proc, /sys and /dev
        // into the new root, and killed (a cancel, a time limit, a crash) it would leave them
        // mounted on the host — under a directory that is then removed.
        var argv = ["unshare", "--mount", "--propagation", "private",
                    "mmdebstrap", "--variant=apt", "--mode=root", "--quiet",
                    "--aptopt=Acquire::Languages \"none\"", "--aptopt=Apt::Install-Recommends \"false\""]
        if !include.isEmpty { argv.append("--include=" + include.joined(separator: ",")) }
        // The image must not carry the build host: mmdebstrap copies the host's resolv.conf in
        // (the guest's own network setup writes one), and the sources it installed from are a
        // path on the build host, marked trusted — an appliance would try it, or trust whatever
        // came to be there. The image says where it came from instead, and has no source.
        argv += ["--customize-hook=rm -f \"$1/etc/resolv.conf\"",
                 "--customize-hook=printf '%s\\n' \(Self.shellQuoted(Self.sourcesList(snapshot: snapshot.id))) > \"$1/etc/apt/sources.list\""]
        // copy: rather than file: because apt runs inside the new root, where the snapshot
        // path does not exist; the copy: method brings each .deb in.
        argv += [recipe.os.suite, root.path, "deb [trusted=yes] copy:\(snapshot.directory.path) ./"]
        try Tool.run(argv, env: ["SOURCE_DATE_EPOCH": String(sde)], timeout: 1800)
    }

    /// The image's /etc/apt/sources.list: no source, and where its packages came from.
    static func sourcesList(snapshot: String) -> String {
        "# Installed by Baton from package snapshot \(snapshot) only. No source is configured:\n"
            + "# add your site's mirror here (deb URL SUITE COMPONENTS) to update this system."
    }

    static func shellQuoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }
}
