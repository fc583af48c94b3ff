import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A directory tree the build writes into or reads from on the host, walked one component at a
/// time with `openat` and never through a symlink. An image tree comes from packages (Debian's
/// has `var/run -> /run`): on the host an absolute symlink there points at the host's own files,
/// so following one would let a recipe write host files as root.
struct ConfinedTree {
    /// Why a path was refused; `reason` is a sentence naming the component at fault.
    struct Refusal: Error { let reason: String }

    let root: String

    /// `path`'s components, `/`-separated, relative to the root; `..` is refused.
    static func components(_ path: String) throws(Refusal) -> [String] {
        let parts = path.split(separator: "/").map(String.init).filter { $0 != "." }
        if parts.contains("..") { throw Refusal(reason: "'..' is not allowed (it would leave the tree)") }
        if parts.isEmpty { throw Refusal(reason: "the path names no file") }
        return parts
    }

    /// An open descriptor of the directory holding `path`'s last component; the caller closes it.
    /// Missing directories are created with `createMode` when given.
    func openParent(of parts: [String], createMode: mode_t?) throws(Refusal) -> Int32 {
        var fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw Refusal(reason: "cannot open the tree root: \(Self.errorText())") }
        for (i, name) in parts.dropLast().enumerated() {
            let shown = "/" + parts[...i].joined(separator: "/")
            var created = false
            if let mode = createMode, mkdirat(fd, name, mode) == 0 { created = true }
            let next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 {
                let reason = Self.describeUnopenable(fd, name, shown)
                close(fd)
                throw Refusal(reason: reason)
            }
            close(fd)
            fd = next
            // mkdirat is subject to the umask; a directory we made gets exactly the mode asked for.
            if created, let mode = createMode { fchmod(fd, mode) }
        }
        return fd
    }

    /// Reads the regular file at `path`, refusing a symlink at any component.
    func read(_ path: String) throws(Refusal) -> Data {
        let parts = try Self.components(path)
        let dir = try openParent(of: parts, createMode: nil)
        defer { close(dir) }
        let fd = openat(dir, parts.last!, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw Refusal(reason: Self.describeUnopenable(dir, parts.last!, "/" + parts.joined(separator: "/"))) }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw Refusal(reason: "'/\(parts.joined(separator: "/"))' is not a regular file")
        }
        do { return try handle.readToEnd() ?? Data() } catch {
            throw Refusal(reason: "cannot read '/\(parts.joined(separator: "/"))': \(error)")
        }
    }

    /// Writes `data` as a new regular file at `path` with the given mode and owner, replacing a
    /// file or symlink there (the link itself, never its target) and creating missing directories.
    func write(_ data: Data, to path: String, mode: Int, uid: Int, gid: Int) throws(Refusal) {
        let parts = try Self.components(path)
        let shown = "/" + parts.joined(separator: "/")
        let dir = try openParent(of: parts, createMode: 0o755)
        defer { close(dir) }
        let name = parts.last!
        var st = stat()
        if fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 {
            if (st.st_mode & S_IFMT) == S_IFDIR { throw Refusal(reason: "'\(shown)' is a directory in the image") }
            guard unlinkat(dir, name, 0) == 0 else { throw Refusal(reason: "cannot replace '\(shown)': \(Self.errorText())") }
        }
        let fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Refusal(reason: "cannot create '\(shown)': \(Self.errorText())") }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        do { try handle.write(contentsOf: data) } catch { throw Refusal(reason: "cannot write '\(shown)': \(error)") }
        // Owner first: chown clears set-id bits, which the mode may ask for.
        guard fchown(fd, uid_t(truncatingIfNeeded: uid), gid_t(truncatingIfNeeded: gid)) == 0,
              fchmod(fd, mode_t(truncatingIfNeeded: mode)) == 0 else {
            throw Refusal(reason: "cannot set owner and mode of '\(shown)': \(Self.errorText())")
        }
    }

    /// Why `name` in `dir` could not be opened as asked, naming `shown` (its path in the tree).
    static func describeUnopenable(_ dir: Int32, _ name: String, _ shown: String) -> String {
        let code = errno
        var st = stat()
        guard fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else {
            return code == ENOENT ? "'\(shown)' does not exist" : "cannot open '\(shown)': \(String(cString: strerror(code)))"
        }
        switch st.st_mode & S_IFMT {
        case S_IFLNK:
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlinkat(dir, name, &buffer, buffer.count - 1)
            let target = n >= 0 ? String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
            return "'\(shown)' is a symlink (to '\(target)'), which is never followed; name the path without symlinks"
        case S_IFDIR: return "cannot open '\(shown)': \(String(cString: strerror(code)))"
        default: return "'\(shown)' is not a directory"
        }
    }

    static func errorText() -> String { String(cString: strerror(errno)) }
}
