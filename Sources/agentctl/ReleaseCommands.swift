import ApplianceEngine
import ArgumentParser
import Crypto
import Foundation

struct Release: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Work with published releases.", subcommands: [Verify.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a release directory: SHA256SUMS, its ed25519 signature, and that nothing was added or changed.")
        @Argument(help: "A release directory (releases/APPLIANCE/CHANNEL/VERSION).") var directory: String
        @Option(help: "The publisher's public key: base64, or a file holding it. Default: $BATON_RELEASE_PUBKEY, else the key named in manifest.json (then only integrity is proven, not who signed).")
        var publicKey: String?

        func run() async throws {
            let dir = URL(fileURLWithPath: directory)
            var source = "given"
            var text = publicKey ?? ProcessInfo.processInfo.environment["BATON_RELEASE_PUBKEY"]
            if let given = text, FileManager.default.fileExists(atPath: given) {
                text = try String(contentsOfFile: given, encoding: .utf8)
            }
            if text == nil {
                source = "from manifest.json (not pinned)"
                let manifest = try? JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("manifest.json"))) as? [String: Any]
                text = (manifest?["signing_key"] as? [String: Any])?["public"] as? String
            }
            guard let base64 = text?.trimmingCharacters(in: .whitespacesAndNewlines), let raw = Data(base64Encoded: base64),
                  let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else {
                fail("no usable ed25519 public key (--public-key BASE64|FILE)")
            }
            do {
                try ReleasePublisher.verify(dir, publicKey: key)
            } catch {
                fail("VERIFICATION FAILED for \(directory): \(error)")
            }
            let fingerprint = SHA256.hash(data: raw).prefix(8).map { String(format: "%02x", $0) }.joined()
            print("OK \(directory): every file matches SHA256SUMS, signature valid (ed25519 key \(fingerprint), \(source))")
        }

        func fail(_ message: String) -> Never {
            Output.write("agentctl: \(message)\n", to: STDERR_FILENO)
            Foundation.exit(1)
        }
    }
}
