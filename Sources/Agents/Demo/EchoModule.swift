import AgentKernel

/// A small demo module: a two-stage ad-hoc command, a chat command and a step action.
/// It shows the whole module surface in a few lines; real modules follow the same shape.
public struct EchoModule: AgentModule {
    public let name = "echo"
    public var actions: [String] { ["demo.echo"] }

    public init() {}

    public var commands: [AdHocCommand] {
        [AdHocCommand(node: "echo", name: "Echo text back", stages: [
            { _ in DataForm(.form, title: "Echo (1/2)", instructions: "What should I say?", fields: [
                .init("text", label: "Text", required: true),
            ]) },
            { values in DataForm(.form, title: "Echo (2/2)", instructions: "Saying '\(values["text"]?.first ?? "")'", fields: [
                .init("times", type: .listSingle, label: "How many times", values: ["1"], options: ["1", "2", "3"]),
                .init("shout", type: .boolean, label: "Upper case", values: ["false"]),
            ]) },
        ]) { invocation in
            var text = invocation.value("text") ?? ""
            if ["1", "true"].contains(invocation.value("shout") ?? "") { text = text.uppercased() }
            let times = Int(invocation.value("times") ?? "1") ?? 1
            return .fields("Echo", [("text", Array(repeating: text, count: times).joined(separator: " "))])
        }]
    }

    public var chatCommands: [ChatCommand] {
        [ChatCommand("echo", usage: "echo TEXT", summary: "repeat TEXT") { arguments, _ in arguments.joined(separator: " ") }]
    }
}
