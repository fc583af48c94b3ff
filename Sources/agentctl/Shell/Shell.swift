import AgentKernel
import ArgumentParser
import Foundation

/// `agentctl` with no arguments, or `agentctl shell`: the interactive shell.
struct Shell: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Interactive shell with contexts xmpp/, wf/ and ctr/ (the default without arguments).",
        discussion: "Reads commands from stdin; fed a script (agentctl < script.txt) it prints no prompt and exits non-zero if any command failed.")
    @OptionGroup var options: ClientOptions

    func run() async throws {
        Interrupts.install()
        let input = LineInput()
        var failures = 0
        try await withSession(options) { session in
            failures = await ShellInterpreter(state: ShellState(session: session), input: input).run()
        }
        if failures > 0 { throw ExitCode(1) }
    }
}

/// Reads lines, keeps the current context, runs commands; one readable line per error.
final class ShellInterpreter {
    let state: ShellState
    let input: LineInput
    private var context: ShellContext?
    private var lineNumber = 0
    private var failures = 0

    init(state: ShellState, input: LineInput) {
        self.state = state
        self.input = input
    }

    var prompt: String { "baton:/\(context.map { $0.name + "/" } ?? "")> " }

    /// Runs until exit or end of input; returns how many commands failed.
    func run() async -> Int {
        if input.interactive {
            print("Baton shell, connected as \(state.session.boundJID). ? lists commands, exit leaves.")
        } else {
            Interrupts.alwaysEnds.withLock { $0 = true }
        }
        // At the prompt ctrl-C only reminds how to leave (a watch turns it into "stop watching").
        await Interrupts.during({ print("\n(exit or ctrl-D leaves the shell)") }) {
            while let line = await input.next(prompt: prompt, completer: completer) {
                lineNumber += 1
                input.remember(line)
                if await execute(line) == .exit { break }
            }
        }
        return failures
    }

    enum Flow { case next, exit }

    /// The words `execute` handles itself in every context (keep in step with its switch), with
    /// the usage that tells Tab what their argument is.
    static let builtins: [CommandCompleter.Command] = [
        .init(name: "exit", usage: "exit"), .init(name: "quit", usage: "quit"), .init(name: "?", usage: "?"),
        .init(name: "ls", usage: "ls"), .init(name: "help", usage: "help CMD"), .init(name: "cd", usage: "cd CONTEXT|..|/"),
        .init(name: "..", usage: ".."), .init(name: "/", usage: "/"), .init(name: "history", usage: "history"),
    ]

    /// Tab's candidates from the contexts' own command tables, as seen from the current context.
    var completer: LineEditor.Completer {
        let completer = CommandCompleter(
            contexts: ShellContexts.all.map { context in
                .init(name: context.name, commands: context.commands.map { .init(name: $0.name, usage: $0.usage) })
            },
            current: context?.name, builtins: Self.builtins)
        return { completer.candidates(before: $0) }
    }

    func execute(_ line: String) async -> Flow {
        let words: [String]
        do { words = try ShellWords.split(line) } catch {
            report("\(error)")
            return .next
        }
        guard let word = words.first, !word.hasPrefix("#") else { return .next }
        let args = Array(words.dropFirst())
        do {
            switch word {
            case "exit", "quit":
                return .exit
            case "?", "ls":
                listCommands()
            case "help":
                try help(args)
            case "cd":
                try ShellCommand.check(args, "cd CONTEXT|..|/", 0, 1)
                try change(to: args.first ?? "/")
            case "..", "/":
                try change(to: word)
            case "history":
                for (n, entry) in input.lines.enumerated() { print(String(format: "%5d  ", n + 1) + entry) }
            default:
                if let target = ShellContexts.named(word) {
                    // `wf` switches; `wf list` runs wf's list from anywhere.
                    if let name = args.first {
                        try await run(name, Array(args.dropFirst()), in: target)
                    } else {
                        context = target
                    }
                } else if let context {
                    try await run(word, args, in: context)
                } else {
                    throw CLIError("unknown command '\(word)' at / (contexts: \(ShellContexts.all.map { $0.name + "/" }.joined(separator: " ")); ? lists commands)")
                }
            }
        } catch is AlreadyReported {
            failures += 1
        } catch {
            report("\(error)")
        }
        return .next
    }

    private func run(_ name: String, _ args: [String], in context: ShellContext) async throws {
        guard let command = context.command(name) else {
            throw CLIError("unknown command '\(name)' in \(context.name)/ (? lists commands)")
        }
        try await command.run(state, args)
    }

    /// Contexts are one level deep and siblings, so a path is resolved word by word and any
    /// context name is reachable from anywhere: `/`, `..`, `wf`, `../wf`, `/ctr/`.
    private func change(to target: String) throws {
        var next = target.hasPrefix("/") ? nil : context
        for part in target.split(separator: "/") where part != "." {
            if part == ".." {
                next = nil
            } else if let named = ShellContexts.named(String(part)) {
                next = named
            } else {
                throw CLIError("no context '\(target)' (contexts: \(ShellContexts.all.map { $0.name + "/" }.joined(separator: " ")))")
            }
        }
        context = next
    }

    private func listCommands() {
        var rows: [[String]] = []
        if let context {
            rows = context.commands.map { [$0.usage, $0.summary] }
        } else {
            rows = ShellContexts.all.map { ["\($0.name)/", $0.summary] }
        }
        rows += [["cd CONTEXT|..|/", "change context (or type the context's name)"], ["help CMD", "usage of a command"],
                 ["history", "lines typed before"], ["exit, quit", "leave (so does ctrl-D)"]]
        let width = rows.map { $0[0].count }.max() ?? 0
        for row in rows { print("  \(row[0].padding(toLength: width, withPad: " ", startingAt: 0))  \(row[1])") }
    }

    private func help(_ args: [String]) throws {
        guard let name = args.first else { return listCommands() }
        let candidates = (context.map { [$0] } ?? []) + ShellContexts.all
        if let command = candidates.lazy.compactMap({ $0.command(name) }).first {
            print("usage: \(command.usage)\n  \(command.summary)")
        } else if let target = ShellContexts.named(name) {
            print("\(target.name)/: \(target.summary)")
            for command in target.commands { print("  \(command.usage)") }
        } else {
            throw CLIError("no command '\(name)' (? lists commands)")
        }
    }

    /// One line on stderr; a script's line number says which line failed.
    private func report(_ message: String) {
        failures += 1
        if input.interactive {
            Output.write("error: \(message)\n", to: STDERR_FILENO)
        } else {
            complain("line \(lineNumber): \(message)")
        }
    }
}
