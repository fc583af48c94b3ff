import Foundation
import Testing
@testable import LauncherEngine

/// Parsing and validation only; no containers.
struct ConfigTests {
    static let issueJSON = """
    { "name": "web", "major": "1", "minor": "01", "base_image": "basefs.tar.gz",
      "mounts": ["webserver.tar /webserver/ READ", "homedir.tar /webserver/home READWRITE"],
      "startup_script": "/webserver/start.sh", "startup_owner": "root",
      "startup_env": "PORT=8080;LD_LIBRARY_PATH=${LD_LIBRARY_PATH}:/var/lib64" }
    """

    @Test func issueExampleParsesInJSONAndYAML() throws {
        let j = try LauncherConfig.parse(Data(Self.issueJSON.utf8), format: .json)
        #expect(j.key == "web 1.01")
        #expect(j.mounts == [MountSpec(source: "webserver.tar", destination: "/webserver", mode: .read),
                             MountSpec(source: "homedir.tar", destination: "/webserver/home", mode: .readWrite)])
        #expect(j.network == .none && j.limits.isEmpty)
        let yaml = """
        name: web
        major: 1
        minor: 01
        base_image: basefs.tar.gz
        mounts:
          - webserver.tar /webserver/ READ
          - homedir.tar /webserver/home READWRITE
        startup_script: /webserver/start.sh
        startup_owner: root
        startup_env: PORT=8080;LD_LIBRARY_PATH=${LD_LIBRARY_PATH}:/var/lib64
        """
        #expect(try LauncherConfig.parse(Data(yaml.utf8), format: .yaml) == j)
    }

    @Test func envExpansion() throws {
        let env = try EnvExpander.expand("PORT=8080;LD_LIBRARY_PATH=${LD_LIBRARY_PATH}:/var/lib64;URL=http://x:${PORT}/;P=${PATH}:/opt",
                                         defaults: [("PATH", "/bin"), ("HOME", "/")])
        #expect(env == ["PATH=/bin", "HOME=/", "PORT=8080", "LD_LIBRARY_PATH=:/var/lib64", "URL=http://x:8080/", "P=/bin:/opt"])
        #expect(throws: LauncherError.invalidField("startup_env", reason: "entry 'JUSTTEXT' is not NAME=value")) {
            try EnvExpander.parse("A=1;JUSTTEXT")
        }
    }

    func parseError(_ json: String, _ format: LauncherConfig.Format = .json) -> LauncherError? {
        do { _ = try LauncherConfig.parse(Data(json.utf8), format: format); return nil } catch { return error as? LauncherError }
    }

    @Test func missingAndMistypedFields() {
        #expect(parseError(#"{"major":"1","minor":"0","base_image":"b","startup_script":"/s"}"#) == .missingField("name"))
        #expect(parseError(#"{"name":"w","major":"1","minor":"0","startup_script":"/s"}"#) == .missingField("base_image"))
        #expect(parseError(#"{"name":"w","major":"1","minor":"0","base_image":"b"}"#) == .missingField("startup_script"))
        #expect(parseError(#"{"name":5,"major":"1","minor":"0","base_image":"b","startup_script":"/s"}"#)
                == .mistypedField("name", expected: "a string, got a number"))
        #expect(parseError(#"{"name":"w","major":"1","minor":"0","base_image":"b","startup_script":"/s","mounts":"x"}"#)
                == .mistypedField("mounts", expected: "a list of strings, got a string"))
        #expect(parseError(#"{"name":"w","major":"1","minor":"0","base_image":"b","startup_script":"/s","network":"bridge"}"#)
                == .invalidField("network", reason: "'bridge' is not 'none' or 'host'"))
        #expect(parseError(#"{"name":"w/x","major":"1","minor":"0","base_image":"b","startup_script":"/s"}"#)
                == .invalidField("name", reason: "'w/x' must be 1-64 characters of [A-Za-z0-9_-]"))
        if case .malformedConfig(let f, _)? = parseError("{not json") { #expect(f == "JSON") } else { Issue.record("expected malformedConfig") }
        if case .malformedConfig(let f, _)? = parseError("- a\n- b", .yaml) { #expect(f == "YAML") } else { Issue.record("expected malformedConfig") }
    }

    @Test func badMountSpecs() throws {
        #expect(throws: LauncherError.invalidMountSpec("a.tar /x WRITE", reason: "mode 'WRITE' is not READ or READWRITE")) {
            try MountSpec.parse("a.tar /x WRITE")
        }
        #expect(throws: LauncherError.invalidMountSpec("a.tar /x", reason: "expected '<source> <destination> READ|READWRITE', got 2 part(s)")) {
            try MountSpec.parse("a.tar /x")
        }
        #expect(throws: LauncherError.invalidMountSpec("a.tar /x/../../etc READ", reason: "destination '/x/../../etc' contains '..'")) {
            try MountSpec.parse("a.tar /x/../../etc READ")
        }
        #expect(throws: LauncherError.invalidMountSpec("a.tar x READ", reason: "destination 'x' is not an absolute path")) {
            try MountSpec.parse("a.tar x READ")
        }
        #expect(throws: LauncherError.invalidMountSpec("a.tar / READ", reason: "destination '/' would hide the whole root filesystem")) {
            try MountSpec.parse("a.tar / READ")
        }
        #expect(throws: LauncherError.invalidMountSpec("../a.tar /x READ", reason: "source '../a.tar' escapes the image directory")) {
            try MountSpec.parse("../a.tar /x READ")
        }
        #expect(try MountSpec.parse("/abs/a.tar //x/./y/ READWRITE").destination == "/x/y")
    }

    @Test func limitsParse() throws {
        let c = try LauncherConfig.parse(Data(#"{"name":"w","major":"1","minor":"0","base_image":"b","startup_script":"/s","limits":{"memory":"256M","pids":100,"cpu":"0.5"}}"#.utf8), format: .json)
        #expect(c.limits == ResourceLimits(memoryBytes: 256 << 20, pids: 100, cpus: 0.5))
        #expect(parseError(#"{"name":"w","major":"1","minor":"0","base_image":"b","startup_script":"/s","limits":{"memory":"lots"}}"#)
                == .invalidField("limits.memory", reason: "'lots' is not a size like 268435456 or 256M"))
        let (_, warnings) = CgroupSupport.resources(for: c.limits, root: "/nonexistent")
        #expect(warnings.count == 3)
    }

    /// Sizes, CPU counts and timeouts become integers; out-of-range values must be refused with
    /// the field and the range named, not trap.
    @Test func outOfRangeNumbersAreRefused() async throws {
        func limits(_ l: String) -> LauncherError? {
            parseError(#"{"name":"w","major":"1","minor":"0","base_image":"b","startup_script":"/s","limits":"# + l + "}")
        }
        #expect(limits(#"{"memory":"9000000000G"}"#) == .invalidField("limits.memory",
            reason: "'9000000000G' is more than 1 PiB (1125899906842624 bytes), the largest size allowed"))
        #expect(limits(#"{"memory":"2000000G"}"#) != nil)  // no overflow, but above 1 PiB
        #expect(try LauncherConfig.parseBytes("1048576G", field: "m") == 1 << 50)
        #expect(limits(#"{"cpu":1e15}"#) == .invalidField("limits.cpu", reason: "must be from 0.01 to 1024 CPUs, not 1000000000000000"))
        #expect(limits(#"{"cpu":"inf"}"#) == .invalidField("limits.cpu", reason: "must be from 0.01 to 1024 CPUs, not inf"))
        let (resources, warnings) = CgroupSupport.resources(for: ResourceLimits(cpus: .infinity))
        #expect(resources == nil && warnings == ["limits.cpu not applied: inf is outside 0.01...1024 CPUs"])

        for bad in [-1, 1e20, .infinity, .nan] {
            await #expect(throws: LauncherError.invalidField("timeout", reason: "must be from 0 to 604800 seconds, not \(NumberLimits.text(bad))")) {
                _ = try await Subprocess.run(["/bin/true"], timeout: bad)
            }
        }
        #expect(try await Subprocess.run(["/bin/true"], timeout: 5).status == 0)
    }

    @Test func errorDescriptionsNameTheCulprit() {
        #expect(LauncherError.missingField("base_image").description.contains("'base_image'"))
        #expect(LauncherError.imageNotFound("/img/x.tar").description.contains("/img/x.tar"))
        #expect(LauncherError.unknownInstance("web-1").localizedDescription.contains("web-1"))
    }
}
