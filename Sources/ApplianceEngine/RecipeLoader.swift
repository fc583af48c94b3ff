import Foundation
import Yams

/// One problem in a recipe, with its position, formatted like a compiler diagnostic.
public struct RecipeIssue: Equatable, Sendable, CustomStringConvertible {
    public let file: String
    public let line: Int
    public let column: Int
    public let message: String
    public var description: String { "\(file):\(line):\(column): \(message)" }
}

public struct RecipeError: Error, CustomStringConvertible, Sendable {
    public let issues: [RecipeIssue]
    public var description: String { issues.map(\.description).joined(separator: "\n") }
}

extension Recipe {
    public static func load(file: URL) throws -> Recipe {
        let text = try String(contentsOf: file, encoding: .utf8)
        var recipe = try parse(yaml: text, file: file.path)
        recipe.baseDirectory = file.deletingLastPathComponent().path
        return recipe
    }

    /// Parses and validates; every problem found is reported, not just the first.
    public static func parse(yaml: String, file: String = "<recipe>") throws -> Recipe {
        let node: Node?
        do { node = try Yams.compose(yaml: yaml) } catch let e as YamlError {
            throw RecipeError(issues: [RecipeLoader.issue(fromYaml: e, file: file)])
        }
        var loader = RecipeLoader(file: file)
        let recipe = loader.recipe(node)
        if !loader.issues.isEmpty || recipe == nil {
            throw RecipeError(issues: loader.issues.isEmpty
                ? [RecipeIssue(file: file, line: 1, column: 1, message: "empty recipe")] : loader.issues)
        }
        return recipe!
    }
}

/// Walks the YAML node tree keeping marks, so each error points at a line.
struct RecipeLoader {
    let file: String
    var issues: [RecipeIssue] = []

    static func issue(fromYaml e: YamlError, file: String) -> RecipeIssue {
        switch e {
        case let .scanner(_, problem, mark, _), let .parser(_, problem, mark, _), let .composer(_, problem, mark, _):
            return RecipeIssue(file: file, line: mark.line, column: mark.column, message: "YAML: \(problem)")
        default:
            return RecipeIssue(file: file, line: 1, column: 1, message: "YAML: \(e)")
        }
    }

    mutating func fail(_ node: Node?, _ message: String) {
        issues.append(RecipeIssue(file: file, line: node?.mark?.line ?? 1, column: node?.mark?.column ?? 1, message: message))
    }

    /// Returns the mapping's entries by key after refusing keys not in `allowed`.
    mutating func fields(_ node: Node?, _ what: String, allowed: [String], required: [String]) -> [String: Node]? {
        guard let node, let mapping = node.mapping else { fail(node, "\(what) must be a mapping"); return nil }
        var out: [String: Node] = [:]
        for (k, v) in mapping {
            guard let key = k.string else { fail(k, "\(what): key must be a string"); continue }
            if !allowed.contains(key) {
                fail(k, "\(what): unknown key '\(key)' (allowed: \(allowed.joined(separator: ", ")))")
            } else if out[key] != nil {
                fail(k, "\(what): duplicate key '\(key)'")
            } else { out[key] = v }
        }
        for r in required where out[r] == nil { fail(node, "\(what): missing required key '\(r)'") }
        return out
    }

    mutating func string(_ node: Node?, _ what: String, pattern: String? = nil) -> String? {
        guard let node, let s = node.scalar?.string else { fail(node, "\(what) must be a string"); return nil }
        if let pattern, s.range(of: pattern, options: .regularExpression) == nil {
            fail(node, "\(what) '\(s)' is not valid (must match \(pattern))"); return nil
        }
        return s
    }

    mutating func int(_ node: Node?, _ what: String, range: ClosedRange<Int>) -> Int? {
        guard let node, let s = node.scalar?.string, let i = Int(s), range.contains(i) else {
            fail(node, "\(what) must be an integer in \(range.lowerBound)...\(range.upperBound)"); return nil
        }
        return i
    }

    mutating func list(_ node: Node?, _ what: String) -> [Node] {
        guard let node else { return [] }
        guard let seq = node.sequence else { fail(node, "\(what) must be a list"); return [] }
        return Array(seq)
    }

    mutating func recipe(_ node: Node?) -> Recipe? {
        guard let node else { return nil }
        guard let f = fields(node, "recipe", allowed: ["name", "version", "os", "profile", "packages", "files", "post", "formats", "tests", "context"],
                             required: ["name", "version", "os", "profile", "formats"]) else { return nil }
        let name = string(f["name"], "name", pattern: "^[a-z0-9][a-z0-9._-]{0,62}$")
        var version: Recipe.Version?
        if let v = fields(f["version"], "version", allowed: ["major", "minor"], required: ["major", "minor"]),
           let ma = int(v["major"], "version.major", range: 0...100_000), let mi = int(v["minor"], "version.minor", range: 0...100_000) {
            version = .init(major: ma, minor: mi)
        }
        var os: Recipe.OS?
        if let o = fields(f["os"], "os", allowed: ["suite", "architecture"], required: ["suite", "architecture"]),
           let s = string(o["suite"], "os.suite", pattern: "^[a-z][a-z0-9-]*$"),
           let a = string(o["architecture"], "os.architecture", pattern: "^(amd64)$") {
            os = .init(suite: s, architecture: a)
        }
        var profile: Recipe.Profile?
        if let p = string(f["profile"], "profile") {
            profile = Recipe.Profile(rawValue: p)
            if profile == nil { fail(f["profile"], "profile '\(p)' unknown (allowed: micro, debian)") }
        }
        var packages: [String] = []
        for p in list(f["packages"], "packages") {
            if let s = string(p, "package name", pattern: "^[a-z0-9][a-z0-9+.-]+$") { packages.append(s) }
        }
        let files = list(f["files"], "files").compactMap { fileEntry($0) }
        var post: [Recipe.PostScript] = []
        for p in list(f["post"], "post") {
            if let m = fields(p, "post script", allowed: ["name", "script"], required: ["name", "script"]),
               let n = string(m["name"], "post.name"), let s = string(m["script"], "post.script") {
                post.append(.init(name: n, script: s))
            }
        }
        var formats: [Recipe.Format] = []
        for fm in list(f["formats"], "formats") {
            guard let s = string(fm, "format") else { continue }
            if let x = Recipe.Format(rawValue: s) { formats.append(x) } else {
                fail(fm, "format '\(s)' unknown (allowed: \(Recipe.Format.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
        }
        if f["formats"] != nil && formats.isEmpty && issues.isEmpty { fail(f["formats"], "formats must name at least one format") }
        let tests = f["tests"].flatMap { testsSection($0) } ?? Recipe.Tests()
        if !tests.vm.isEmpty {
            for needed in [Recipe.Format.squashfs, .kernel, .initramfs] where !formats.contains(needed) {
                fail(f["tests"], "tests.vm needs format '\(needed.rawValue)' to boot the image")
            }
        }
        let context = f["context"].flatMap { contextSection($0) } ?? Recipe.Context()
        guard let name, let version, let os, let profile, issues.isEmpty else { return nil }
        return Recipe(name: name, version: version, os: os, profile: profile, packages: packages, files: files,
                      post: post, formats: formats.sorted(), tests: tests, context: context)
    }

    mutating func fileEntry(_ node: Node) -> Recipe.FileEntry? {
        guard let m = fields(node, "file", allowed: ["source", "destination", "mode", "owner"], required: ["source", "destination"]),
              let src = string(m["source"], "files.source"), let dst = string(m["destination"], "files.destination") else { return nil }
        var ok = true
        let srcParts = src.split(separator: "/")
        if src.hasPrefix("/") { fail(m["source"], "files.source '\(src)' must be relative to the recipe directory"); ok = false }
        else if srcParts.contains("..") { fail(m["source"], "files.source '\(src)' must not contain '..' (it would leave the recipe directory)"); ok = false }
        if !dst.hasPrefix("/") { fail(m["destination"], "files.destination '\(dst)' must be an absolute path inside the image"); ok = false }
        else if dst.split(separator: "/").contains("..") { fail(m["destination"], "files.destination '\(dst)' must not contain '..' (it would leave the image)"); ok = false }
        else if dst.split(separator: "/").isEmpty { fail(m["destination"], "files.destination must name a file, not '/'"); ok = false }
        var mode = 0o644
        if let mn = m["mode"] {
            if let s = mn.scalar?.string, let v = Int(s, radix: 8), (0...0o7777).contains(v) { mode = v }
            else { fail(mn, "files.mode must be an octal string like \"0644\""); ok = false }
        }
        var uid = 0, gid = 0
        if let on = m["owner"] {
            let parts = (on.scalar?.string ?? "").split(separator: ":").map { Int($0) }
            if parts.count == 2, let u = parts[0], let g = parts[1], u >= 0, g >= 0 { uid = u; gid = g }
            else { fail(on, "files.owner must be numeric \"uid:gid\""); ok = false }
        }
        return ok ? .init(source: src, destination: dst, mode: mode, uid: uid, gid: gid) : nil
    }

    mutating func testsSection(_ node: Node) -> Recipe.Tests? {
        guard let m = fields(node, "tests", allowed: ["container", "vm"], required: []) else { return nil }
        var t = Recipe.Tests()
        for c in list(m["container"], "tests.container") {
            if let x = fields(c, "container test", allowed: ["name", "script"], required: ["name", "script"]),
               let n = string(x["name"], "tests.container.name"), let s = string(x["script"], "tests.container.script") {
                t.container.append(.init(name: n, script: s))
            }
        }
        for c in list(m["vm"], "tests.vm") {
            if let x = fields(c, "vm check", allowed: ["name", "run"], required: ["name", "run"]),
               let n = string(x["name"], "tests.vm.name", pattern: "^[^=\\n#]+$"), let r = string(x["run"], "tests.vm.run") {
                if r.contains("\n") { fail(x["run"], "tests.vm.run must be one line (it is carried in an ini value)") }
                else { t.vm.append(.init(name: n, run: r)) }
            }
        }
        return t
    }

    mutating func contextSection(_ node: Node) -> Recipe.Context? {
        guard let m = fields(node, "context", allowed: ["method", "hostname", "max_lifetime", "args", "memory_mb"], required: []) else { return nil }
        var c = Recipe.Context()
        if let mn = m["method"], let s = string(mn, "context.method") {
            if let x = Recipe.ContextMethod(rawValue: s) { c.method = x }
            else { fail(mn, "context.method '\(s)' unknown (allowed: nocloud, glideinwms, ini)") }
        }
        if let h = m["hostname"] { c.hostname = string(h, "context.hostname", pattern: "^[a-z0-9][a-z0-9-]{0,62}$") }
        if let l = m["max_lifetime"], let v = int(l, "context.max_lifetime", range: Recipe.Context.maxLifetimeRange) { c.maxLifetime = v }
        if let a = m["args"] { c.args = string(a, "context.args") }
        if let mm = m["memory_mb"], let v = int(mm, "context.memory_mb", range: 64...65_536) { c.memoryMB = v }
        return c
    }
}
