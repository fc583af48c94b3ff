import Foundation
@testable import LauncherEngine
#if canImport(Glibc)
import Glibc
#endif

/// Builds the test images once per test process: a busybox base image
/// whose httpd serves CGI probes, a webserver tarball (start script) and a
/// homedir tarball (a world-writable data dir) for READ/READWRITE mounts.
struct Fixtures: Sendable {
    let imageDir: String

    static let shared: Fixtures = {
        do {
            let f = try build()
            atexit { try? FileManager.default.removeItem(atPath: "/tmp/baton-launcher-fixtures-\(getpid())") }
            return f
        } catch { fatalError("fixture build failed: \(error)") }
    }()

    static let applets = ["sh", "httpd", "ps", "id", "env", "hostname", "cat", "touch", "kill", "sleep", "ls",
                          "echo", "mkdir", "rm", "true", "false"]

    static func build() throws -> Fixtures {
        let fm = FileManager.default
        let root = "/tmp/baton-launcher-fixtures-\(getpid())"
        try? fm.removeItem(atPath: root)
        let images = "\(root)/images"
        try fm.createDirectory(atPath: images, withIntermediateDirectories: true)

        // Base root filesystem.
        let base = "\(root)/base"
        for d in ["bin", "etc", "tmp", "www/cgi-bin", "var/lib64", "proc", "sys", "dev"] {
            try fm.createDirectory(atPath: "\(base)/\(d)", withIntermediateDirectories: true)
        }
        chmod("\(base)/tmp", 0o1777)
        try fm.copyItem(atPath: "/bin/busybox", toPath: "\(base)/bin/busybox")
        for a in applets { try fm.createSymbolicLink(atPath: "\(base)/bin/\(a)", withDestinationPath: "busybox") }
        try write("\(base)/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n")
        try write("\(base)/etc/group", "root:x:0:\nnogroup:x:65534:\n")
        try write("\(base)/start.sh", "#!/bin/sh\necho started as $(id -u) on $(hostname)\nexec sleep 100000\n", exec: true)
        try write("\(base)/exit-at-once.sh", "#!/bin/sh\necho bye\nexit 3\n", exec: true)
        let cgi: [String: String] = [
            "ps": "ps -o pid,user,args",
            "id": "id",
            "env": "env",
            "hostname": "hostname",
            "writeread": "if touch /webserver/probe-$(hostname) 2>/dev/null; then echo OK; else echo FAIL; fi",
            "writerw": "if echo x > /webserver/home/data/probe-$(hostname); then echo OK; else echo FAIL; fi",
            "readrw": "ls /webserver/home/data",
        ]
        for (name, body) in cgi {
            try write("\(base)/www/cgi-bin/\(name)", "#!/bin/sh\necho 'Content-Type: text/plain'\necho\n\(body)\n", exec: true)
        }
        try tar(base, "\(images)/basefs.tar.gz", gzip: true)

        // webserver.tar: mounted READ at /webserver/; it has no home/ so the
        // engine must create the nested mount point itself.
        let web = "\(root)/webserver"
        try fm.createDirectory(atPath: web, withIntermediateDirectories: true)
        try write("\(web)/start.sh", "#!/bin/sh\necho \"httpd on $PORT\"\nhttpd -f -p 127.0.0.1:$PORT -h /www &\nwait\n", exec: true)
        try tar(web, "\(images)/webserver.tar", gzip: false)

        let home = "\(root)/homedir"
        try fm.createDirectory(atPath: "\(home)/data", withIntermediateDirectories: true)
        chmod("\(home)/data", 0o777)
        try write("\(home)/data/seed.txt", "seed\n")
        try tar(home, "\(images)/homedir.tar", gzip: false)

        try write("\(images)/corrupt.tar.gz", "this is not a tarball at all\n")
        try fm.createSymbolicLink(atPath: "\(images)/basedir", withDestinationPath: base)
        return Fixtures(imageDir: images)
    }

    static func write(_ path: String, _ text: String, exec: Bool = false) throws {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, exec ? 0o755 : 0o644)
    }

    static func tar(_ dir: String, _ out: String, gzip: Bool) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/tar")
        p.arguments = ["--numeric-owner", gzip ? "-czf" : "-cf", out, "-C", dir, "."]
        try p.run(); p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw LauncherError.ioFailure("tar failed for \(dir)") }
    }
}

/// A fresh state directory per test, removed afterwards by `cleanup`.
func makeStateDir() -> String {
    let d = "/tmp/baton-launcher-state-\(UUID().uuidString.prefix(8))"
    try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

/// Mounts under `dir` as the kernel sees them, read with cat(1) so the
/// check is independent of the engine's own /proc/mounts reader (and of
/// Foundation, which truncates procfs files at 4 KiB).
func procMounts(under dir: String) -> [String] {
    let p = Process(), pipe = Pipe()
    p.executableURL = URL(fileURLWithPath: "/bin/cat")
    p.arguments = ["/proc/self/mounts"]
    p.standardOutput = pipe
    try? p.run()
    let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return text.split(separator: "\n").compactMap { l in
        let f = l.split(separator: " "); return f.count > 1 && f[1].hasPrefix(dir) ? String(f[1]) : nil
    }
}

func instanceDirs(_ stateDir: String) -> [String] {
    (try? FileManager.default.contentsOfDirectory(atPath: "\(stateDir)/instances")) ?? []
}

/// GET with retries until `deadline` (the server may still be starting).
/// A plain HTTP/1.0 socket client: busybox httpd's CGI replies carry no
/// Content-Length and are delimited by close, which is exactly 1.0 style.
func httpGet(_ url: String, deadline: Double = 10) async -> String? {
    guard let u = URL(string: url), let port = u.port else { return nil }
    let end = Date().addingTimeInterval(deadline)
    while Date() < end {
        if let body = rawGet(port: UInt16(port), path: u.path) { return body }
        try? await Task.sleep(nanoseconds: 100_000_000)
    }
    return nil
}

private func rawGet(port: UInt16, path: String) -> String? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var tv = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let ok = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard ok == 0 else { return nil }
    let req = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)
    guard send(fd, req, req.count, Int32(MSG_NOSIGNAL)) == req.count else { return nil }
    var bytes = [UInt8](), buf = [UInt8](repeating: 0, count: 8192)
    while true {
        let n = recv(fd, &buf, buf.count, 0)
        if n <= 0 { break }
        bytes += buf[0..<n]
    }
    let text = String(decoding: bytes, as: UTF8.self)
    guard text.hasPrefix("HTTP/1.") && text.split(separator: "\n").first?.contains(" 200") == true,
          let sep = text.range(of: "\r\n\r\n") ?? text.range(of: "\n\n") else { return nil }
    return String(text[sep.upperBound...])
}

/// Polls `cond` until true or the deadline passes.
func eventually(_ seconds: Double = 10, _ cond: () async -> Bool) async -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if await cond() { return true }
        try? await Task.sleep(nanoseconds: 100_000_000)
    }
    return await cond()
}

func configJSON(name: String = "web", major: String = "1", minor: String = "01", base: String = "basefs.tar.gz",
                mounts: [String] = [], script: String = "/start.sh", owner: String? = nil, env: String? = nil,
                network: String? = nil, limits: String? = nil) -> Data {
    var fields = ["\"name\": \"\(name)\"", "\"major\": \"\(major)\"", "\"minor\": \"\(minor)\"",
                  "\"base_image\": \"\(base)\"",
                  "\"mounts\": [\(mounts.map { "\"\($0)\"" }.joined(separator: ", "))]",
                  "\"startup_script\": \"\(script)\""]
    if let owner { fields.append("\"startup_owner\": \"\(owner)\"") }
    if let env { fields.append("\"startup_env\": \"\(env)\"") }
    if let network { fields.append("\"network\": \"\(network)\"") }
    if let limits { fields.append("\"limits\": \(limits)") }
    return Data("{ \(fields.joined(separator: ", ")) }".utf8)
}

/// Runs `body` with a fresh engine and state dir, then always destroys
/// everything; the directory is removed only once nothing is mounted in it
/// (removing through a live overlay would be wrong).
func withEngine(startupGrace: Double = 0.3, _ body: (Launcher, String) async throws -> Void) async throws {
    let state = makeStateDir()
    let engine = try await Launcher(stateDir: state, imageDir: Fixtures.shared.imageDir, startupGrace: startupGrace)
    do { try await body(engine, state) } catch {
        _ = try? await engine.destroyAll()
        if procMounts(under: state).isEmpty { try? FileManager.default.removeItem(atPath: state) }
        throw error
    }
    _ = try? await engine.destroyAll()
    if procMounts(under: state).isEmpty { try? FileManager.default.removeItem(atPath: state) }
}
