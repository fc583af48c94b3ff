import AgentKernel
import ApplianceEngine
import Foundation
import Yams

/// Where the lifecycle modules of one host keep their shared things. From the agent config:
///
/// ```yaml
/// module_settings:
///   lifecycle:
///     root: /var/lib/baton/shared        # default: <state_dir>/../shared
///     recipes: /etc/baton/recipes        # default: recipes
///     signing_key: /etc/baton/keys/release.ed25519   # default: <root>/keys/release.ed25519
///     signing_key_create: true           # generate the key if missing (default false: refuse)
///     retention: 5                       # release versions kept per channel
///     source_date_epoch: 1700000000      # default for reproducible builds
///     mirror: http://deb.debian.org/debian    # default: the host's Debian mirror in /etc/apt
///     security_mirror: http://deb.debian.org/debian-security   # default: the host's, if any
///     post_scripts_chroot: true          # without a container runtime, run post scripts as root in
///                                        # a chroot (default false: such builds fail)
/// ```
/// Artifacts live in `<root>/artifacts` (content-addressed), snapshots in `<root>/repo`, build
/// cache in `<root>/builds`, releases in `<root>/releases`.
struct LifecycleSettings: Sendable {
    var root: URL
    var recipes: URL
    var signingKey: URL
    var signingKeyCreate: Bool
    /// Post scripts may run as root in a chroot where no container runtime works.
    var postScriptsChroot: Bool
    var retention: Int
    var sourceDateEpoch: Int
    /// Where snapshots download from; nil: the host's apt sources say.
    var mirror: String?
    var securityMirror: String?

    var artifacts: URL { root.appendingPathComponent("artifacts") }
    var repo: URL { root.appendingPathComponent("repo") }
    var builds: URL { root.appendingPathComponent("builds") }
    var releases: URL { root.appendingPathComponent("releases") }
    var vmWork: URL { root.appendingPathComponent("vm") }

    init(_ agent: AgentSettings) throws {
        var section: [String: Any] = [:]
        if let yaml = agent.moduleSettings["lifecycle"] {
            guard let parsed = try Yams.load(yaml: yaml) as? [String: Any] else {
                throw ConfigError(file: "module_settings.lifecycle", "must be a mapping")
            }
            section = parsed
        }
        let known: Set<String> = ["root", "recipes", "signing_key", "signing_key_create", "retention", "source_date_epoch",
                                  "mirror", "security_mirror", "post_scripts_chroot"]
        for key in section.keys where !known.contains(key) {
            throw ConfigError(file: "module_settings.lifecycle", "unknown setting '\(key)' (known: \(known.sorted().joined(separator: ", ")))")
        }
        root = URL(fileURLWithPath: section["root"] as? String
                   ?? ((agent.stateDirectory as NSString).deletingLastPathComponent as NSString).appendingPathComponent("shared"))
        recipes = URL(fileURLWithPath: section["recipes"] as? String ?? "recipes")
        signingKey = URL(fileURLWithPath: section["signing_key"] as? String ?? root.appendingPathComponent("keys/release.ed25519").path)
        /// A true/false setting, false when absent.
        func flag(_ key: String) throws -> Bool {
            guard let value = section[key] else { return false }
            guard let flag = value as? Bool else { throw ConfigError(file: "module_settings.lifecycle", "\(key) must be true or false") }
            return flag
        }
        signingKeyCreate = try flag("signing_key_create")
        postScriptsChroot = try flag("post_scripts_chroot")
        retention = section["retention"] as? Int ?? 5
        sourceDateEpoch = section["source_date_epoch"] as? Int ?? 1_700_000_000
        for key in ["mirror", "security_mirror"] {
            guard let value = section[key] else { continue }
            guard let uri = value as? String, let scheme = URL(string: uri)?.scheme, ["http", "https", "file"].contains(scheme) else {
                throw ConfigError(file: "module_settings.lifecycle", "\(key) must be an http, https or file URL, like http://deb.debian.org/debian")
            }
        }
        mirror = section["mirror"] as? String
        securityMirror = section["security_mirror"] as? String
    }

    func store() throws -> ArtifactStore { try ArtifactStore(root: artifacts) }

    /// A recipe by name from the recipes directory, refusing names that would leave it.
    func recipe(named name: String) throws -> (Recipe, URL) {
        guard name.range(of: #"^[A-Za-z0-9][A-Za-z0-9._-]*$"#, options: .regularExpression) != nil else {
            throw StepFailure("recipe name '\(name)' may use letters, digits, '.', '_' and '-' only")
        }
        for candidate in [name + ".yaml", name + ".yml", name] {
            let url = recipes.appendingPathComponent(candidate)
            if FileManager.default.fileExists(atPath: url.path) { return (try Recipe.load(file: url), url) }
        }
        throw StepFailure("no recipe '\(name)' in \(recipes.path)")
    }

    /// A recipe path handed over in a workflow document, refused unless it is inside the recipes
    /// directory: the document travels between agents and a crafted one could name any file.
    func recipeFile(_ path: String) throws -> URL {
        let file = URL(fileURLWithPath: path).standardizedFileURL
        let dir = recipes.standardizedFileURL.path
        guard file.path.hasPrefix(dir.hasSuffix("/") ? dir : dir + "/") else {
            throw StepFailure("recipe_path '\(path)' is not inside the recipes directory \(dir); "
                              + "only recipes that config.resolve found there can be used")
        }
        return file
    }
}

/// Artifact references as they travel in workflow documents: `{uri, sha256, size}`.
enum ArtifactJSON {
    static func value(_ ref: ArtifactRef) -> JSONValue {
        .object(["uri": .string(ref.uri), "sha256": .string(ref.sha256), "size": .number(Double(ref.size))])
    }

    static func ref(_ value: JSONValue?, _ what: String) throws -> ArtifactRef {
        guard let sha = value?["sha256"]?.string, let size = value?["size"]?.number else {
            throw StepFailure("\(what): no artifact reference {uri, sha256, size} from an earlier step")
        }
        return ArtifactRef(sha256: sha, size: Int64(try NumberArgument.checked(size, "\(what) size", in: 0...1e18, unit: "bytes")))
    }

    /// The file for `ref`, its digest checked: a mismatch fails the step with a clear error.
    static func verifiedPath(_ value: JSONValue?, _ what: String, in store: ArtifactStore) throws -> URL {
        let ref = try ref(value, what)
        do { return try store.path(for: ref) } catch { throw StepFailure("\(what): \(error)") }
    }
}

extension StepInvocation {
    func required(_ name: String, from step: String) throws -> JSONValue {
        guard let value = earlierOutput(name) else {
            throw StepFailure("\(self.step.action) needs '\(name)' from a \(step) step earlier in the workflow")
        }
        return value
    }

    /// The recipe an earlier config.resolve step resolved, re-read (only from the recipes
    /// directory of `settings`) and checked against its digest.
    func resolvedRecipe(_ settings: LifecycleSettings) throws -> Recipe {
        guard let path = try required("recipe_path", from: "config.resolve").string,
              let digest = try required("recipe_digest", from: "config.resolve").string else {
            throw StepFailure("config.resolve outputs are malformed")
        }
        let recipe = try Recipe.load(file: try settings.recipeFile(path))
        let now = try recipe.digest()
        guard now == digest else {
            throw StepFailure("recipe \(path) changed since config.resolve (digest \(digest.prefix(12)) → \(now.prefix(12)))")
        }
        return recipe
    }
}
