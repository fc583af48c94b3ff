// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Baton",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "agentd", targets: ["agentd"]),
        .executable(name: "agentctl", targets: ["agentctl"]),
        .executable(name: "baton-bench", targets: ["baton-bench"]),
        .library(name: "AgentKernel", targets: ["AgentKernel"]),
        .library(name: "Agents", targets: ["Agents"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
    ],
    targets: [
        // The only place libstrophe's header enters the build.
        .systemLibrary(name: "CStrophe", pkgConfig: "libstrophe",
                       providers: [.apt(["libstrophe-dev"])]),
        .target(name: "AgentKernel", dependencies: [
            "CStrophe", "ChildProcess",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
            .product(name: "GRDB", package: "GRDB.swift"),
            // SQLite's C API, for the one file control GRDB has no Swift call for (persistent WAL).
            .product(name: "GRDBSQLite", package: "GRDB.swift"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // One helper for every target that starts child processes (Process+CleanSignals.swift).
        .target(name: "ChildProcess"),
        // The lifecycle's real work (snapshots, images, VM tests, releases), free of XMPP.
        .target(name: "ApplianceEngine", dependencies: [
            "ChildProcess",
            .product(name: "Yams", package: "Yams"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // Appliance containers on an OCI runtime (runc/crun): layers, overlays, bundles.
        .target(name: "LauncherEngine", dependencies: ["ChildProcess", .product(name: "Yams", package: "Yams")]),
        .executableTarget(name: "launcher-bench", dependencies: ["LauncherEngine", "ChildProcess"]),
        // A throwaway Prosody (scripts/prosody-sandbox) for the integration tests and baton-bench.
        .target(name: "ProsodySandbox", dependencies: ["ChildProcess"]),
        .target(name: "Agents", dependencies: [
            "AgentKernel", "ApplianceEngine", "LauncherEngine", "ChildProcess",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
        ]),
        .executableTarget(name: "agentd", dependencies: [
            "AgentKernel", "Agents", "ChildProcess",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .executableTarget(name: "agentctl", dependencies: [
            "AgentKernel", "Agents", "ApplianceEngine",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "baton-bench", dependencies: [
            "AgentKernel", "Agents", "ProsodySandbox", "ChildProcess",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .testTarget(name: "AgentKernelTests", dependencies: ["AgentKernel", "Agents"]),
        .testTarget(name: "ApplianceEngineTests", dependencies: ["ApplianceEngine"]),
        .testTarget(name: "LauncherEngineTests", dependencies: ["LauncherEngine"]),
        .testTarget(name: "IntegrationTests", dependencies: ["AgentKernel", "Agents", "ProsodySandbox"],
                    exclude: ["Support/xmpp_client.py"]),
    ]
)
