import Crypto
import Foundation

/// The ed25519 release key: a file outside any repository, readable by its owner only. It is
/// generated only when the configuration allows it (`signing_key_create`): a mistyped path must
/// fail, not sign releases with a new key no one verifies against.
enum ReleaseSigningKey {
    static func load(_ path: URL, forbiddenRoot: URL, create: Bool, log: (@Sendable (String) -> Void)?) throws -> Curve25519.Signing.PrivateKey {
        try refuseInsideRepository(path, forbiddenRoot: forbiddenRoot)
        var info = stat()
        if stat(path.path, &info) == 0 {
            guard info.st_mode & 0o170000 == 0o100000 else { throw ReleaseError.badKeyFile(path.path) }
            // As ssh does for its keys: a secret others can read (or replace) is refused.
            let mode = info.st_mode & 0o7777
            guard mode & 0o077 == 0 else { throw ReleaseError.keyFileTooOpen(path.path, mode: String(mode, radix: 8)) }
            let text = try String(contentsOf: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            guard let raw = Data(base64Encoded: text) else { throw ReleaseError.badKeyFile(path.path) }
            return try Curve25519.Signing.PrivateKey(rawRepresentation: raw)
        }
        guard errno == ENOENT else { throw ReleaseError.badKeyFile(path.path) }
        guard create else { throw ReleaseError.noKeyFile(path.path) }
        let key = Curve25519.Signing.PrivateKey()
        let fm = FileManager.default
        try fm.createDirectory(at: path.deletingLastPathComponent(), withIntermediateDirectories: true)
        // Created 0600 before the secret is written, so it is never world-readable.
        guard fm.createFile(atPath: path.path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
            throw ReleaseError.badKeyFile(path.path)
        }
        try Data((key.rawRepresentation.base64EncodedString() + "\n").utf8).write(to: path)
        let pub = key.publicKey.rawRepresentation.base64EncodedString()
        try Data((pub + "\n").utf8).write(to: path.appendingPathExtension("pub"))
        log?("baton release: no signing key at \(path.path) and signing_key_create is set: generated a new ed25519 key there (public key \(pub), also in \(path.path).pub). Keep it safe: every release is verified against it.")
        return key
    }

    /// A private key inside the release tree or a git work tree would eventually be published.
    static func refuseInsideRepository(_ path: URL, forbiddenRoot: URL) throws {
        let p = path.standardizedFileURL.path
        let root = forbiddenRoot.standardizedFileURL.path
        if p.hasPrefix(root + "/") { throw ReleaseError.keyInsideRepository(p, root) }
        var dir = path.standardizedFileURL.deletingLastPathComponent()
        while dir.path != "/" {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent(".git").path) {
                throw ReleaseError.keyInsideRepository(p, dir.path)
            }
            dir = dir.deletingLastPathComponent()
        }
    }
}
