import AgentKernel
import ApplianceEngine
import ChildProcess
import Foundation
import LauncherEngine

/// Post scripts of an image build, run by the container launcher on the OCI runtime with the
/// image's root directory as the container's writable root.
struct LauncherPostScripts: PostScriptRunner {
    let launcher: Launcher

    func run(script: String, name: String, root: URL, environment: [String: String], timeout: Double) throws -> (status: Int32, output: String) {
        // Builds run on a thread of their own (see `offloaded`), so waiting here blocks no task.
        let done = DispatchSemaphore(value: 0)
        let outcome = Locked<Result<RunOnceResult, Error>?>(nil)
        let task = Task {
            let result = await Result { try await launcher.runInPlace(root: root.path, command: ["/bin/sh", "-e", "-c", script],
                                                                      env: environment, timeout: timeout) }
            outcome.withLock { $0 = result }
            done.signal()
        }
        // The step's cancel reaches the container (Subprocess stops runc on a cancel); the
        // container's teardown is still waited for.
        if done.waitUnlessCancelled() == .cancelled {
            task.cancel()
            done.wait()
        }
        if ThreadCancel.current?.isCancelled == true {
            throw CancellationError()
        }
        let result = try outcome.value!.get()
        if result.timedOut { return (124, result.output + "\n(timed out after \(Int(timeout)) s)") }
        return (result.exitStatus, result.output)
    }
}

extension Result where Failure == Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
