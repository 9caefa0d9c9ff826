#if canImport(Glibc)
import Glibc
#endif

/// Who may change a local sink's hour directories at once (README
/// *Roll-ups and compaction*). Every running `qos run` holds
/// `<sink>/_qos/sink.lock` shared; `qos reaggregate --compact` holds it
/// exclusively. Both the daemon (`Compactor`, under a lease the daemons
/// share) and the command swap an hour directory for a copy holding the
/// merge, then adopt what was published into the old directory meanwhile:
/// two compactions of one hour at once would each adopt the other's merged
/// file and count the hour's windows twice. So the command never runs
/// beside a daemon on its sink, nor beside another compaction. The kernel drops the lock when its process ends,
/// by SIGKILL too; the file stays (one per sink).
final class SinkLock {
    enum Use {
        /// A daemon (`qos run`): any number at once.
        case daemon
        /// `qos reaggregate --compact`: alone.
        case compaction
    }

    private let fd: Int32

    init(sinkRoot: String, for use: Use) throws {
        let path = try lockFilePath([sinkRoot, "_qos"], "sink.lock")
        // Held in a local until locked: a class whose stored properties are
        // all set runs `deinit` when its init throws, and that would close
        // the descriptor a second time — by then perhaps another file's.
        let fd = try openLockFile(path)
        guard flock(fd, (use == .daemon ? LOCK_SH : LOCK_EX) | LOCK_NB) == 0 else {
            let e = errno
            close(fd)
            guard e == EWOULDBLOCK else { throw UserError("cannot lock '\(path)': \(String(cString: strerror(e)))") }
            switch use {
            case .daemon:
                throw UserError("qos reaggregate --compact is compacting sink '\(sinkRoot)' (it holds \(path)) "
                                + "— start qos run when it has finished")
            case .compaction:
                // Held alone: another compaction; shared: daemons (a shared
                // probe succeeds only beside shared holders).
                if Self.heldExclusively(path) {
                    throw UserError("another qos reaggregate --compact is compacting sink '\(sinkRoot)' (it holds \(path) alone) "
                                    + "— wait for it to finish; two compactions of one hour would count its windows twice")
                }
                throw UserError("qos run is running on sink '\(sinkRoot)' (it holds \(path)) and compacts the sink "
                                + "itself — two compactions of one hour would count its windows twice; stop it "
                                + "first, or leave compaction to it")
            }
        }
        self.fd = fd
    }

    /// Whether the lock at `path` is held exclusively (by a compaction).
    private static func heldExclusively(_ path: String) -> Bool {
        guard let probe = try? openLockFile(path) else { return false }
        defer { close(probe) }
        if flock(probe, LOCK_SH | LOCK_NB) == 0 { flock(probe, LOCK_UN); return false }
        return errno == EWOULDBLOCK
    }

    deinit { close(fd) }
}
