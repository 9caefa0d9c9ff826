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
final class InstanceLock {
    private let fd: Int32

    init(sinkRoot: String, instance: String) throws {
        precondition(RunOptions.isValidInstance(instance), "instance id checked by the settings")
        var dir = ""
        for part in [sinkRoot, "_qos", "instances"] {
            dir = dir.isEmpty ? part : dir + "/" + part
            if mkdir(dir, 0o755) != 0 && errno != EEXIST {
                throw UserError("cannot create '\(dir)': \(String(cString: strerror(errno))) — check the sink's path, permissions and free space")
            }
        }
        let path = dir + "/" + instance + ".lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw UserError("cannot open '\(path)': \(String(cString: strerror(errno))) — check the sink's path and permissions")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let e = errno
            close(fd)
            if e == EWOULDBLOCK {
                throw UserError("instance '\(instance)' is already running on sink '\(sinkRoot)' (another process holds \(path)) "
                                + "— give each process its own --instance, or stop the other one first")
            }
            throw UserError("cannot lock '\(path)': \(String(cString: strerror(e)))")
        }
    }

    deinit { close(fd) }
}
