import Foundation
import Testing
@testable import LauncherEngine

/// Real runc + overlayfs; serialized because containers share the 2 cores
/// and the host's mount table.
@Suite(.serialized) struct LifecycleTests {
    let fx = Fixtures.shared

    @Test func launchListDestroy() async throws {
        try await withEngine { engine, state in
        #expect(engine.runtimeReport.contains("runc"))
        try await engine.upload(configJSON(name: "plain"), format: .json)
        let r = try await engine.launch(name: "plain", major: "1", minor: "01")
        #expect(r.instance.hasPrefix("plain-1.01-"))
        let list = await engine.list()
        #expect(list.count == 1)
        #expect(list.first?.status == .running)
        #expect((list.first?.pid ?? 0) > 0)
        #expect(await eventually { (try? await engine.logs(r.instance))?.contains("started as 0 on \(r.instance)") == true })
        #expect(!procMounts(under: state).isEmpty)
        try await engine.destroy(r.instance)
        #expect(await engine.list().isEmpty)
        #expect(procMounts(under: state).isEmpty)
        #expect(instanceDirs(state).isEmpty)
        // The shared layer stays for the next launch; nothing else remains.
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(state)/layers").filter { !$0.hasPrefix(".") }.count == 1)
        #expect(try await engine.destroyAll() == "Success")
        }
    }

    @Test func twentyConcurrentLaunches() async throws {
        try await withEngine { engine, state in
        try await engine.upload(configJSON(name: "many"), format: .json)
        let names = try await withThrowingTaskGroup(of: String.self) { g in
            for _ in 0..<20 { g.addTask { try await engine.launch(name: "many", major: "1", minor: "01").instance } }
            return try await g.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(Set(names).count == 20)
        let list = await engine.list()
        #expect(list.count == 20)
        #expect(list.allSatisfy { $0.status == .running && ($0.pid ?? 0) > 0 })
        #expect(Set(list.compactMap(\.pid)).count == 20)
        // One shared base layer for all twenty.
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(state)/layers").filter { !$0.hasPrefix(".") }.count == 1)
        #expect(try await engine.destroyAll() == "Success")
        #expect(await engine.list().isEmpty)
        #expect(procMounts(under: state).isEmpty)
        #expect(instanceDirs(state).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(state)/store/instances").isEmpty)
        // No container left in the runtime's state.
        let runcLeft = (try? FileManager.default.contentsOfDirectory(atPath: "\(state)/runc")) ?? []
        #expect(runcLeft.isEmpty)
        #expect(try await engine.destroyAll() == "Success") // also when there is nothing
        }
    }
}
