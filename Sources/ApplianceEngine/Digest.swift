import Crypto
import Foundation

/// SHA-256 helpers; files are hashed in chunks so multi-GB images do not need to fit in memory.
public enum SHA256Hex {
    public static func of(data: Data) -> String { hex(SHA256.hash(data: data)) }
    public static func of(string: String) -> String { of(data: Data(string.utf8)) }

    public static func of(file: URL) throws -> (sha256: String, size: Int64) {
        let handle = try FileHandle(forReadingFrom: file)
        defer { try? handle.close() }
        var hasher = SHA256()
        var size: Int64 = 0
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
            size += Int64(chunk.count)
        }
        return (hex(hasher.finalize()), size)
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { String(format: "%02x", $0) }.joined()
    }
}
