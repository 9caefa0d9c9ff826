#if canImport(Glibc)
import Glibc
#endif

/// One running process per instance id on a local sink (README "The
/// daemon"). Two processes with one id write manifests of the same names
/// (the same epoch numbers) and overwrite each other's: a restart then
/// resumes some partitions from an older checkpoint and counts again what
/// was already published. `<sink>/_qos/instances/<instance>.lock` is held
/// with `flock` for the life of the process; the kernel drops it when the
/// process ends, by SIGKILL too. An `s3://` sink has no such lock.
///
/// A process that stops normally removes the file while it still holds the
/// lock (with the default id, host-pid, every start would otherwise leave
/// one behind). A process that opened the file just before it was removed
/// may then lock a file no longer in the directory, so whoever takes the
/// lock checks that the path still names the file it locked, and tries
/// again if not.
final class InstanceLock {
    private let fd: Int32
    private let path: String

    init(sinkRoot: String, instance: String) throws {
        precondition(RunOptions.isValidInstance(instance), "instance id checked by the settings")
        path = try lockFilePath([sinkRoot, "_qos", "instances"], instance + ".lock")
        var attempts = 0
        while true {
            let fd = try openLockFile(path)
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                let e = errno
                close(fd)
                if e == EWOULDBLOCK {
                    throw UserError("instance '\(instance)' is already running on sink '\(sinkRoot)' (another process holds \(path)) "
                                    + "— give each process its own --instance, or stop the other one first")
                }
                throw UserError("cannot lock '\(path)': \(String(cString: strerror(e)))")
            }
            if Self.isStillNamed(path, fd) {
                self.fd = fd
                return
            }
            // Removed by its last holder between our open and our lock: take the new file.
            close(fd)
            attempts += 1
            guard attempts < 100 else { throw UserError("cannot lock '\(path)': it keeps being removed") }
        }
    }

    /// The directory entry `path` still names the file open as `fd`.
    static func isStillNamed(_ path: String, _ fd: Int32) -> Bool {
        var held = stat(), named = stat()
        guard fstat(fd, &held) == 0, stat(path, &named) == 0 else { return false }
        return held.st_dev == named.st_dev && held.st_ino == named.st_ino
    }

    deinit {
        unlink(path)  // while still locked: whoever opened it before and locks it next sees it gone
        close(fd)
    }
}

/// `name` in the directory `parts` joined by `/`, each created if missing
/// (the lock files of `InstanceLock` and `SinkLock`).
func lockFilePath(_ parts: [String], _ name: String) throws -> String {
    var dir = ""
    for part in parts {
        dir = dir.isEmpty ? part : dir + "/" + part
        if mkdir(dir, 0o755) != 0 && errno != EEXIST {
            throw UserError("cannot create '\(dir)': \(String(cString: strerror(errno))) — check the sink's path, permissions and free space")
        }
    }
    return dir + "/" + name
}

/// Opens (creating) a lock file.
func openLockFile(_ path: String) throws -> Int32 {
    let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
        throw UserError("cannot open '\(path)': \(String(cString: strerror(errno))) — check the sink's path and permissions")
    }
    return fd
}
