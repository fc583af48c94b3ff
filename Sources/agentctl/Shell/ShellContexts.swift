import AgentKernel
import Foundation

/// The shell's contexts, as in CERN's iAgent: agents and commands over XMPP, workflows, and
/// container-launcher commands.
enum ShellContexts {
    static let all: [ShellContext] = [xmpp, workflows, containers]

    static func named(_ name: String) -> ShellContext? {
        let bare = name.hasSuffix("/") ? String(name.dropLast()) : name
        return all.first { $0.name == bare }
    }

    static let xmpp = ShellContext(name: "xmpp", summary: "agents and their ad-hoc commands", commands: [
        ShellCommand("agents", "agents", "list the agents on baton/agents with liveness, load and actions") { state, args in
            try ShellCommand.check(args, "agents", 0)
            let rows = try await state.session.client.agents()
            print(Render.table(["JID", "NAME", "ONLINE", "LOAD", "ACTIONS"], rows.map {
                [$0.description.jid, $0.description.name, $0.online ? "yes" : "no",
                 "\($0.description.load)/\($0.description.concurrency)", $0.description.actions.joined(separator: " ")]
            }))
        },
        ShellCommand("ping", "ping JID", "XEP-0199 ping; prints the round trip") { state, args in
            try ShellCommand.check(args, "ping JID", 1)
            print("\(args[0]): \(String(format: "%.2f", try await state.session.client.ping(args[0]))) ms")
        },
        ShellCommand("commands", "commands JID", "list an agent's ad-hoc commands") { state, args in
            try ShellCommand.check(args, "commands JID", 1)
            let commands = try await state.session.client.commands(of: args[0])
            print(Render.table(["NODE", "NAME"], commands.map { [$0.node, $0.name] }))
        },
        ShellCommand("run", "run JID NODE [field=value ...]", "execute an ad-hoc command with form values") { state, args in
            guard args.count >= 2 else { throw CLIError("usage: run JID NODE [field=value ...]", status: 2) }
            try await CommandRunner(client: state.session.client).run(args[0], node: args[1], values: try CommandRunner.values(Array(args.dropFirst(2))))
        },
    ])

    static let workflows = ShellContext(name: "wf", summary: "submit, follow, list, locate and cancel workflows", commands: [
        ShellCommand("submit", "submit FILE [watch] [to=JID] [KEY=VALUE…]",
                     "check FILE and hand it to an agent, KEY=VALUE setting its params; with watch, follow it to the end") { state, args in
            let usage = "usage: submit FILE [watch] [to=JID] [KEY=VALUE…]"
            guard let file = args.first else { throw CLIError(usage, status: 2) }
            var watch = false, to: String?, params: [String] = []
            for option in args.dropFirst() {
                if option == "watch" || option == "--watch" {
                    watch = true
                } else if option.hasPrefix("to=") {
                    to = String(option.dropFirst(3))
                } else if let equals = option.firstIndex(of: "="), equals != option.startIndex {
                    params.append(option)
                } else {
                    throw CLIError(usage, status: 2)
                }
            }
            let status = try await state.operations.submit(file: file, params: params, to: to, watch: watch)
            if status != 0 && status != 130 { throw AlreadyReported() }
        },
        ShellCommand("list", "list", "workflows the online agents hold, latest change first: id, name, step, state, updated, holder") { state, args in
            try ShellCommand.check(args, "list", 0)
            try await state.operations.list()
        },
        ShellCommand("status", "status ID", "who holds a workflow now, and its state (ID may be a prefix)") { state, args in
            try ShellCommand.check(args, "status ID", 1)
            try await state.operations.status(args[0])
        },
        ShellCommand("trail", "trail ID", "each step: agent, start, end, status, duration, error, log tail") { state, args in
            try ShellCommand.check(args, "trail ID", 1)
            try await state.operations.trail(args[0])
        },
        ShellCommand("cancel", "cancel ID", "cancel a workflow on the agent holding it") { state, args in
            try ShellCommand.check(args, "cancel ID", 1)
            try await state.operations.cancel(args[0])
        },
    ])

    /// The container launcher's commands, as the launcher module defines them (`ctr-…` nodes):
    /// verb, usage, the form fields positional arguments fill (the last one takes the rest).
    static let containerVerbs: [(verb: String, usage: String, summary: String, fields: [String])] = [
        ("upload", "upload FILE", "register a container config from a local JSON or YAML file", ["config"]),
        ("cfginfo", "cfginfo", "the registered configs, one per line", []),
        ("launch", "launch NAME MAJOR MINOR", "launch an instance; prints its name", ["name", "major", "minor"]),
        ("list", "list", "running instances with config, pid, uptime", []),
        ("destroy", "destroy INSTANCE", "kill an instance and remove its layers and mounts", ["instance"]),
        ("destroyall", "destroyall", "destroy every instance (prints Success)", []),
        ("logs", "logs INSTANCE", "an instance's console output", ["instance"]),
        ("exec", "exec INSTANCE CMD...", "run a command inside an instance", ["instance", "command"]),
        ("status", "status", "the launcher's runtime (runc/crun) and directories", []),
    ]

    static let containers = ShellContext(name: "ctr", summary: "container-launcher commands (ctr-… ad-hoc commands on the agent chosen by use)",
        commands: [
            ShellCommand("use", "use [JID]", "choose the container launcher (no JID: show the current one)") { state, args in
                try ShellCommand.check(args, "use [JID]", 0, 1)
                if let jid = args.first { state.containerLauncher.withLock { $0 = jid } }
                print("container launcher: \(state.containerLauncher.value ?? "none (use JID)")")
            },
        ] + containerVerbs.map { entry in
            ShellCommand(entry.verb, entry.usage, "\(entry.summary) (runs ctr-\(entry.verb))") { state, args in
                guard let launcher = state.containerLauncher.value else { throw CLIError("no container launcher chosen: use JID first") }
                var values = try fields(args, entry.fields, usage: entry.usage)
                if entry.verb == "upload", let file = values["config"]?.first {
                    guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw CLIError("cannot read \(file)") }
                    values["config"] = [text]
                    values["format"] = [file.hasSuffix(".yaml") || file.hasSuffix(".yml") ? "yaml" : "json"]
                }
                try await CommandRunner(client: state.session.client).run(launcher, node: "ctr-\(entry.verb)", values: values)
            }
        })

    /// Positional arguments onto `names` in order (the last name takes the rest); `k=v` as given.
    static func fields(_ args: [String], _ names: [String], usage: String) throws -> [String: [String]] {
        var values: [String: [String]] = [:]
        var positional: [String] = []
        for arg in args {
            if let eq = arg.firstIndex(of: "="), eq != arg.startIndex, names.contains(String(arg[..<eq])) {
                values[String(arg[..<eq]), default: []].append(String(arg[arg.index(after: eq)...]))
            } else {
                positional.append(arg)
            }
        }
        guard positional.count <= names.count || (!names.isEmpty && names.last == "command") else {
            throw CLIError("usage: \(usage)", status: 2)
        }
        for (index, name) in names.enumerated() where index < positional.count {
            values[name] = [index == names.count - 1 ? positional[index...].joined(separator: " ") : positional[index]]
        }
        if names.count > positional.count, values.count < names.count { throw CLIError("usage: \(usage)", status: 2) }
        return values
    }
}

extension ShellCommand {
    static func check(_ args: [String], _ usage: String, _ min: Int, _ max: Int? = nil) throws {
        if args.count < min || args.count > (max ?? min) { throw CLIError("usage: \(usage)", status: 2) }
    }
}
