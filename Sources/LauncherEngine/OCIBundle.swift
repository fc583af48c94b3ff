import Foundation

/// Builds an OCI runtime-spec config.json. Only the fields the engine needs
/// are emitted; the defaults mirror `runc spec` / Docker so scripts see a
/// conventional /proc, /dev and /sys.
struct OCIBundle {
    struct BindMount { var source: String; var destination: String; var readOnly: Bool }

    var args: [String]
    var env: [String]
    var uid: UInt32
    var gid: UInt32
    var hostname: String
    var network: NetworkMode
    var binds: [BindMount]
    var resources: [String: Any]?
    var cgroupsPath: String?
    var cwd = "/"
    /// The container's root: `rootfs` in the bundle, or an absolute directory used in place.
    var rootPath = "rootfs"

    /// Docker's default capability set. A non-root owner gets them only in
    /// the bounding set (like Docker) so uid 65534 really is unprivileged.
    static let defaultCaps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
                              "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
                              "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]

    func json() throws -> Data {
        let caps = Self.defaultCaps
        let active = uid == 0 ? caps : []
        var namespaces: [[String: Any]] = [["type": "pid"], ["type": "ipc"], ["type": "uts"], ["type": "mount"]]
        if network == .none { namespaces.append(["type": "network"]) }
        var mounts: [[String: Any]] = [
            ["destination": "/proc", "type": "proc", "source": "proc"],
            ["destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]],
            ["destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]],
            ["destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]],
            ["destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]],
            ["destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]],
            ["destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]],
        ]
        // User mounts come after the system ones and keep the order listed.
        for b in binds {
            mounts.append(["destination": b.destination, "type": "bind", "source": b.source,
                           "options": ["rbind", "nosuid", "nodev", b.readOnly ? "ro" : "rw"]])
        }
        var linux: [String: Any] = [
            "namespaces": namespaces,
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        ]
        if let resources { linux["resources"] = resources }
        if let cgroupsPath { linux["cgroupsPath"] = cgroupsPath }
        let spec: [String: Any] = [
            "ociVersion": "1.0.2",
            "process": [
                "terminal": false,
                "user": ["uid": uid, "gid": gid],
                "args": args,
                "env": env,
                "cwd": cwd,
                "capabilities": ["bounding": caps, "effective": active, "permitted": active],
                "rlimits": [["type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024]],
                "noNewPrivileges": true,
            ] as [String: Any],
            "root": ["path": rootPath, "readonly": false],
            "hostname": hostname,
            "mounts": mounts,
            "linux": linux,
        ]
        return try JSONSerialization.data(withJSONObject: spec, options: [.prettyPrinted, .sortedKeys])
    }
}

/// Maps requested limits onto linux.resources, keeping only controllers the
/// host actually has and saying plainly which ones were dropped.
enum CgroupSupport {
    static func resources(for limits: ResourceLimits, root: String = "/sys/fs/cgroup") -> (resources: [String: Any]?, warnings: [String]) {
        guard !limits.isEmpty else { return (nil, []) }
        var res: [String: Any] = [:]
        var warnings: [String] = []
        if let m = limits.memoryBytes {
            if has("memory", root: root) { res["memory"] = ["limit": m] }
            else { warnings.append("limits.memory not applied: the host has no memory cgroup controller") }
        }
        if let p = limits.pids {
            if has("pids", root: root) { res["pids"] = ["limit": p] }
            else { warnings.append("limits.pids not applied: the host has no pids cgroup controller") }
        }
        if let c = limits.cpus {
            // Parsing checked the range; limits made in code are checked again rather than trap.
            if (try? NumberLimits.check(c, "limits.cpu", in: NumberLimits.cpus, unit: "CPUs")) == nil {
                warnings.append("limits.cpu not applied: \(NumberLimits.text(c)) is outside \(NumberLimits.text(NumberLimits.cpus.lowerBound))"
                                + "...\(NumberLimits.text(NumberLimits.cpus.upperBound)) CPUs")
            } else if has("cpu", root: root) { res["cpu"] = ["quota": Int64(c * 100_000), "period": 100_000] }
            else { warnings.append("limits.cpu not applied: the host has no cpu cgroup controller") }
        }
        return (res.isEmpty ? nil : res, warnings)
    }

    /// cgroup v2 lists controllers in cgroup.controllers; v1 (and hybrid,
    /// as on this host) mounts one hierarchy per controller.
    static func has(_ controller: String, root: String) -> Bool {
        if let text = try? String(contentsOfFile: "\(root)/cgroup.controllers", encoding: .utf8) {
            return text.split(whereSeparator: { $0 == " " || $0 == "\n" }).contains { $0 == controller }
        }
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: "\(root)/\(controller)", isDirectory: &isDir) && isDir.boolValue
    }
}
