import AgentKernel

/// The modules an agent config may name, by name.
public enum ModuleCatalog {
    public static let names = ["echo", "shell", "util", "configuration", "repository", "build", "test", "release", "launcher"]

    public static func make(_ name: String, settings: AgentSettings) throws -> any AgentModule {
        switch name {
        case "echo": return EchoModule()
        case "shell": return ShellModule()
        case "util": return NoopModule()
        case "configuration": return try ConfigurationModule(settings: settings)
        case "repository": return try RepositoryModule(settings: settings)
        case "build": return try BuildModule(settings: settings)
        case "test": return try TestModule(settings: settings)
        case "release": return try ReleaseModule(settings: settings)
        case "launcher": return try LauncherModule(settings: settings)
        case "kernel": throw ConfigError(file: "modules", "'kernel' is always loaded; do not list it")
        default:
            throw ConfigError(file: "modules", "unknown module '\(name)' (available: \(names.joined(separator: ", ")))")
        }
    }
}
