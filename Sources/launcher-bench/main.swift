import ChildProcess
import Foundation
import LauncherEngine

// launcher-bench: launch-to-first-output through the engine vs plain
// `runc run` on a prepared bundle vs unpacking the tarball per instance;
// disk per idle instance; time to launch 20 at once. Needs root + runc.

let iterations = Int(ProcessInfo.processInfo.environment["BENCH_ITERATIONS"] ?? "") ?? 20
let runc = "/usr/sbin/runc"
let root = "/tmp/baton-bench-\(getpid())"
let fm = FileManager.default

@discardableResult
func sh(_ args: [String], quiet: Bool = true) -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: args[0]); p.arguments = Array(args.dropFirst())
    p.standardInput = FileHandle.nullDevice
    if quiet { p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice }
    try! p.runWithCleanSignals(); p.waitUntilExit(); return p.terminationStatus
}

func capture(_ args: [String]) -> String {
    let p = Process(), pipe = Pipe()
    p.executableURL = URL(fileURLWithPath: args[0]); p.arguments = Array(args.dropFirst())
    p.standardOutput = pipe
    try! p.runWithCleanSignals()
    let d = pipe.fileHandleForReading.readDataToEndOfFile(); p.waitUntilExit()
    try? pipe.fileHandleForReading.close()  // Foundation's Process keeps the pipe alive
    return String(decoding: d, as: UTF8.self)
}

/// Polls a log file until it holds "ready" (first output of the startup script).
func waitForOutput(_ path: String, timeout: Double = 30) {
    let end = Date().addingTimeInterval(timeout)
    while Date() < end {
        if let d = fm.contents(atPath: path), String(decoding: d, as: UTF8.self).contains("ready") { return }
        usleep(1000)
    }
    fatalError("no output in \(path)")
}

func percentile(_ xs: [Double], _ p: Double) -> Double {
    let s = xs.sorted(); return s[min(s.count - 1, Int((Double(s.count) * p).rounded(.up)) - 1)]
}
func ms(_ t: Double) -> String { String(format: "%8.1f ms", t * 1000) }
func duKB(_ path: String) -> Int { Int(capture(["/usr/bin/du", "-sxk", path]).split(separator: "\t").first ?? "0") ?? 0 }

// ---- image: busybox + 50 MB of random data ----
let base = "\(root)/base", images = "\(root)/images"
for d in ["\(base)/bin", "\(base)/data", images] { try fm.createDirectory(atPath: d, withIntermediateDirectories: true) }
try fm.copyItem(atPath: "/bin/busybox", toPath: "\(base)/bin/busybox")
for a in ["sh", "sleep", "echo"] { try fm.createSymbolicLink(atPath: "\(base)/bin/\(a)", withDestinationPath: "busybox") }
try "#!/bin/sh\necho ready\nexec sleep 100000\n".write(toFile: "\(base)/start.sh", atomically: true, encoding: .utf8)
chmod("\(base)/start.sh", 0o755)
sh(["/bin/dd", "if=/dev/urandom", "of=\(base)/data/blob", "bs=1M", "count=50"])
sh(["/usr/bin/tar", "--numeric-owner", "-czf", "\(images)/base.tar.gz", "-C", base, "."])
let tarMB = Double((try fm.attributesOfItem(atPath: "\(images)/base.tar.gz")[.size] as? NSNumber)?.intValue ?? 0) / 1e6

// ---- bundle template for the two runc baselines ----
func writeBundle(_ dir: String, rootfs: String, readonly: Bool) throws {
    try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
    sh([runc, "spec", "--bundle", dir])
    let url = URL(fileURLWithPath: "\(dir)/config.json")
    var spec = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    var process = spec["process"] as! [String: Any]
    process["terminal"] = false; process["args"] = ["/start.sh"]
    spec["process"] = process
    spec["root"] = ["path": rootfs, "readonly": readonly]
    try JSONSerialization.data(withJSONObject: spec).write(to: url)
}
func runDetached(_ id: String, bundle: String, log: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: runc)
    p.arguments = ["--root", "\(root)/runc", "run", "-d", "--bundle", bundle, id]
    _ = fm.createFile(atPath: log, contents: nil)
    let h = FileHandle(forWritingAtPath: log)!
    p.standardInput = FileHandle.nullDevice; p.standardOutput = h; p.standardError = h
    try! p.runWithCleanSignals(); p.waitUntilExit(); try? h.close()
}
func runcDelete(_ id: String) { sh([runc, "--root", "\(root)/runc", "delete", "--force", id]) }

// ---- 1. engine ----
let engine = try await Launcher(stateDir: "\(root)/state", imageDir: images, startupGrace: 0)
let cfg = #"{"name":"bench","major":"1","minor":"0","base_image":"base.tar.gz","startup_script":"/start.sh"}"#
try await engine.upload(Data(cfg.utf8), format: .json)
var t0 = Date()
let first = try await engine.launch(name: "bench", major: "1", minor: "0").instance
waitForOutput("\(root)/state/instances/\(first)/console.log")
let firstLaunch = Date().timeIntervalSince(t0)
try await engine.destroy(first)
var engineTimes: [Double] = []
for _ in 0..<iterations {
    t0 = Date()
    let name = try await engine.launch(name: "bench", major: "1", minor: "0").instance
    waitForOutput("\(root)/state/instances/\(name)/console.log")
    engineTimes.append(Date().timeIntervalSince(t0))
    try await engine.destroy(name)
}

// ---- 2. runc run on a prepared bundle (rootfs unpacked once, shared read-only) ----
let prepared = "\(root)/prepared"
try fm.createDirectory(atPath: "\(prepared)/rootfs", withIntermediateDirectories: true)
sh(["/usr/bin/tar", "-xzf", "\(images)/base.tar.gz", "-C", "\(prepared)/rootfs"])
try writeBundle(prepared, rootfs: "\(prepared)/rootfs", readonly: true)
var runcTimes: [Double] = []
for i in 0..<iterations {
    let log = "\(root)/prepared-\(i).log"
    t0 = Date()
    runDetached("prep-\(i)", bundle: prepared, log: log)
    waitForOutput(log)
    runcTimes.append(Date().timeIntervalSince(t0))
    runcDelete("prep-\(i)")
}

// ---- 3. naive: unpack the tarball for every instance ----
var naiveTimes: [Double] = []
for i in 0..<iterations {
    let dir = "\(root)/naive-\(i)"
    t0 = Date()
    try fm.createDirectory(atPath: "\(dir)/rootfs", withIntermediateDirectories: true)
    sh(["/usr/bin/tar", "-xzf", "\(images)/base.tar.gz", "-C", "\(dir)/rootfs"])
    try writeBundle(dir, rootfs: "\(dir)/rootfs", readonly: false)
    runDetached("naive-\(i)", bundle: dir, log: "\(dir)/log")
    waitForOutput("\(dir)/log")
    naiveTimes.append(Date().timeIntervalSince(t0))
    runcDelete("naive-\(i)")
    if i < iterations - 1 { try fm.removeItem(atPath: dir) }
}
let naiveDiskKB = duKB("\(root)/naive-\(iterations - 1)")
try fm.removeItem(atPath: "\(root)/naive-\(iterations - 1)")

// ---- disk per idle instance + 20 at once ----
t0 = Date()
let twenty = try await withThrowingTaskGroup(of: String.self) { g in
    for _ in 0..<20 { g.addTask { try await engine.launch(name: "bench", major: "1", minor: "0").instance } }
    var names: [String] = []
    for try await n in g { names.append(n) }
    return names
}
for n in twenty { waitForOutput("\(root)/state/instances/\(n)/console.log") }
let twentyTime = Date().timeIntervalSince(t0)
let perInstanceKB = twenty.map { duKB("\(root)/state/instances/\($0)") }
let avgKB = Double(perInstanceKB.reduce(0, +)) / Double(perInstanceKB.count)
let layerKB = duKB("\(root)/state/layers")
_ = try await engine.destroyAll()

print("""

launcher-bench  (\(iterations) iterations, base image \(String(format: "%.1f", tarMB)) MB gzip: busybox + 50 MB random)
runtime: \(engine.runtimeReport)

launch-to-first-output           p50          p99
engine (shared layer+overlay) \(ms(percentile(engineTimes, 0.5)))  \(ms(percentile(engineTimes, 0.99)))
runc run, prepared bundle     \(ms(percentile(runcTimes, 0.5)))  \(ms(percentile(runcTimes, 0.99)))
naive unpack per instance     \(ms(percentile(naiveTimes, 0.5)))  \(ms(percentile(naiveTimes, 0.99)))
engine first launch (unpacks once) \(ms(firstLaunch))

disk per idle instance: engine \(String(format: "%.0f", avgKB)) KB (+ one shared layer \(layerKB) KB), naive \(naiveDiskKB) KB
20 instances launched at once through the engine: \(ms(twentyTime)) until all printed output
""")
try? fm.removeItem(atPath: root)
