import ArgumentParser

@main
struct BatonBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "baton-bench", abstract: "Benchmarks (work in progress).")
    func run() async throws { print("not yet") }
}
