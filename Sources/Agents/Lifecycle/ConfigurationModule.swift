import AgentKernel
import ApplianceEngine
import Foundation

/// `config.resolve` and the recipe commands: the configuration server of the lifecycle.
public struct ConfigurationModule: StepRunner {
    public let name = "configuration"
    public var actions: [String] { ["config.resolve"] }
    let settings: LifecycleSettings

    public init(settings: AgentSettings) throws { self.settings = try LifecycleSettings(settings) }

    public func run(_ invocation: StepInvocation) async throws -> StepOutcome {
        guard let name = invocation.argument("recipe")?.string else {
            throw StepFailure("config.resolve needs 'recipe' (a recipe name in \(settings.recipes.path))")
        }
        let (recipe, url) = try settings.recipe(named: name)
        let canonical = try recipe.canonical()
        let store = try settings.store()
        let canonicalFile = invocation.workspace.appendingPathComponent("recipe.json")
        try canonical.write(to: canonicalFile)
        let ref = try store.put(canonicalFile)
        invocation.progress("recipe \(recipe.name) \(recipe.version.string) (\(recipe.profile.rawValue)) valid")
        return StepOutcome(outputs: [
            "appliance": .string(recipe.name), "version": .string(recipe.version.string),
            "profile": .string(recipe.profile.rawValue), "recipe_path": .string(url.standardizedFileURL.path),
            "recipe_digest": .string(try recipe.digest()), "canonical": ArtifactJSON.value(ref),
        ])
    }

    func recipeNames() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: settings.recipes.path)) ?? [])
            .filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }.sorted()
    }

    public var commands: [AdHocCommand] {
        let pick = DataForm(.form, fields: [.init("recipe", type: .listSingle, label: "Recipe", required: true, options: recipeNames())])
        return [
            AdHocCommand(node: "recipes", name: "List recipes", requiresTrust: false) { _ in
                var rows: [[String: String]] = []
                for name in recipeNames() {
                    if let (recipe, _) = try? settings.recipe(named: name) {
                        rows.append(["name": name, "version": recipe.version.string, "profile": recipe.profile.rawValue,
                                     "formats": recipe.formats.map(\.rawValue).joined(separator: " ")])
                    } else {
                        rows.append(["name": name, "version": "?", "profile": "invalid", "formats": ""])
                    }
                }
                return CommandResult(form: DataForm(.result, title: "Recipes in \(settings.recipes.path)",
                    reported: [.init("name"), .init("version"), .init("profile"), .init("formats")], items: rows))
            },
            AdHocCommand(node: "recipe-show", name: "Show a recipe (canonical form)", requiresTrust: false, form: pick) { invocation in
                let (recipe, _) = try lookup(invocation.required("recipe"))
                return .fields("Recipe \(recipe.name)", [("digest", try recipe.digest()),
                                                         ("canonical", String(decoding: try recipe.canonical(), as: UTF8.self))])
            },
            AdHocCommand(node: "recipe-validate", name: "Validate recipe YAML", form: DataForm(.form, fields: [
                .init("yaml", type: .textMulti, label: "Recipe YAML", required: true)])) { invocation in
                let yaml = invocation.values["yaml"]?.joined(separator: "\n") ?? ""
                do {
                    let recipe = try Recipe.parse(yaml: yaml, file: "submitted")
                    return .fields("Valid", [("name", recipe.name), ("digest", try recipe.digest())])
                } catch let error as RecipeError {
                    return CommandResult(notes: error.issues.map { .init(.error, $0.description) })
                }
            },
            // What a machine asks its config server for: the canonical config of appliance/version.
            AdHocCommand(node: "config-get", name: "Get an appliance's configuration", requiresTrust: false, form: DataForm(.form, fields: [
                .init("appliance", label: "Appliance (recipe) name", required: true), .init("version", label: "major.minor")])) { invocation in
                let (recipe, _) = try lookup(invocation.required("appliance"))
                if let version = invocation.value("version"), version != recipe.version.string {
                    throw StanzaError(.itemNotFound, "\(recipe.name) is at version \(recipe.version.string), not \(version)")
                }
                return .fields("Configuration of \(recipe.name) \(recipe.version.string)",
                               [("digest", try recipe.digest()), ("config", String(decoding: try recipe.canonical(), as: UTF8.self))])
            },
        ]
    }

    private func lookup(_ name: String) throws -> (Recipe, URL) {
        do { return try settings.recipe(named: name) } catch let error as StepFailure {
            throw StanzaError(.itemNotFound, error.description)
        } catch {
            throw StanzaError(.badRequest, "\(error)")
        }
    }
}
