import AgentKernel
import ApplianceEngine
import Foundation

/// `test.vm`: boots the built image under qemu (KVM only if a probe boot succeeds, else TCG),
/// contextualised like a grid site does, and reads TAP from the serial console.
/// (`test.container` runs the recipe's container tests through the launcher.)
public struct TestModule: StepRunner {
    public let name = "test"
    public var actions: [String] { ["test.vm"] }
    let settings: LifecycleSettings
    /// One tester per agent: its KVM probe result is reused for every later boot.
    let tester: VMTester

    public init(settings: AgentSettings) throws {
        self.settings = try LifecycleSettings(settings)
        tester = VMTester(workDir: self.settings.vmWork)
    }

    public func run(_ invocation: StepInvocation) async throws -> StepOutcome {
        let recipe = try invocation.resolvedRecipe(settings)
        var context = recipe.context
        // Arguments first: a bad one fails the step before any artifact is looked at.
        if let field = ["max_lifetime", "timeout"].first(where: { invocation.argument($0)?.number != nil }) {
            context.maxLifetime = try NumberArgument.integer(invocation.argument(field)!.number!, field,
                                                             in: Recipe.Context.maxLifetimeRange, unit: "seconds")
        }
        let artifacts = try invocation.required("artifacts", from: "build.image")
        let store = try settings.store()
        let image = VMImage(kernel: try ArtifactJSON.verifiedPath(artifacts["kernel"], "kernel", in: store),
                            initramfs: try ArtifactJSON.verifiedPath(artifacts["initramfs"], "initramfs", in: store),
                            rootfs: try ArtifactJSON.verifiedPath(artifacts["squashfs"], "squashfs", in: store))
        if let method = invocation.argument("method")?.string {
            guard let m = Recipe.ContextMethod(rawValue: method) else { throw StepFailure("test.vm: unknown context method '\(method)' (nocloud, glideinwms, ini)") }
            context.method = m
        }
        guard !recipe.tests.vm.isEmpty else { throw StepFailure("recipe \(recipe.name) has no tests.vm checks") }
        invocation.progress("booting \(recipe.name) with \(recipe.tests.vm.count) checks (\(context.method.rawValue), max lifetime \(context.maxLifetime) s)")
        let tester = self.tester
        let report = try await offloaded { [context] in
            try tester.run(image: image, checks: recipe.tests.vm, context: context, name: "\(recipe.name)-\(invocation.workflowID)",
                           progress: invocation.progress)
        }
        let tap = invocation.workspace.appendingPathComponent("vm.tap"), junit = invocation.workspace.appendingPathComponent("vm-junit.xml")
        let serial = invocation.workspace.appendingPathComponent("serial.log")
        try report.tap.lines.map { "\($0.ok ? "ok" : "not ok") \($0.number) - \($0.description)" }.joined(separator: "\n")
            .appending("\n").write(to: tap, atomically: true, encoding: .utf8)
        try report.junitXML.write(to: junit, atomically: true, encoding: .utf8)
        try report.serialLog.write(to: serial, atomically: true, encoding: .utf8)
        let outputs: [String: JSONValue] = [
            "accelerator": .string(report.accelerator.rawValue), "accelerator_note": .string(report.acceleratorNote),
            "boot_seconds": report.bootSeconds.map { .number($0) } ?? .null, "seconds": .number(report.totalSeconds),
            "checks": .number(Double(report.tap.lines.count)), "failed": .number(Double(report.tap.lines.filter { !$0.ok }.count)),
            "reports": .object(["tap": ArtifactJSON.value(try store.put(tap)), "junit": ArtifactJSON.value(try store.put(junit)),
                                "serial": ArtifactJSON.value(try store.put(serial))]),
        ]
        let tail = String(report.serialLog.split(separator: "\n").suffix(25).joined(separator: "\n"))
        switch report.outcome {
        case .killedAtMaxLifetime(let seconds):
            throw StepFailure("VM killed at max_lifetime (\(seconds) s) on \(report.accelerator.rawValue.uppercased()); \(report.tap.lines.count) checks reported", logTail: tail)
        case .qemuFailed(let end, let stderr):
            throw StepFailure("qemu failed (\(end)): \(stderr.suffix(300))", logTail: tail)
        case .poweredOff:
            if let failure = report.checkFailure { throw StepFailure("VM checks failed: \(failure)", logTail: tail) }
        }
        return StepOutcome(outputs: outputs, logTail: tail)
    }
}
