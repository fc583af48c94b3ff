import Foundation

/// What the micro and debian builders share: a build cache, a post-script runner, and the
/// pipeline around the one thing that differs — how the root file system is first filled.
public protocol ImageBuilder: Sendable {
    static var builderVersion: String { get }
    var cacheRoot: URL { get }
    var postScripts: any PostScriptRunner { get }
    /// Fills the (empty, existing) root directory before files, post scripts and formats.
    func makeRootfs(_ root: URL, pipeline: BuildPipeline) throws
}

extension ImageBuilder {
    public func cacheKey(recipe: Recipe, snapshot: Snapshot, sourceDateEpoch: Int) throws -> String {
        try pipeline(recipe, snapshot, sourceDateEpoch, nil).cacheKey()
    }

    public func build(recipe: Recipe, snapshot: Snapshot, sourceDateEpoch: Int,
                      progress: BuildProgressHandler? = nil) throws -> BuildResult {
        let p = pipeline(recipe, snapshot, sourceDateEpoch, progress)
        return try p.run { root in try makeRootfs(root, pipeline: p) }
    }

    func pipeline(_ r: Recipe, _ s: Snapshot, _ sde: Int, _ progress: BuildProgressHandler?) -> BuildPipeline {
        BuildPipeline(cacheRoot: cacheRoot, builderVersion: Self.builderVersion, recipe: r, snapshot: s,
                      sourceDateEpoch: sde, progress: progress, postScripts: postScripts)
    }
}
