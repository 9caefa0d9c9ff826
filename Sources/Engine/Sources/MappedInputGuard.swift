#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Keeps a mapped input file that shrinks under us from killing the process
/// (docs/architecture.md, "The path of one line of `qos replay`", step 1).
///
/// `ByteSource` maps a plain input file whole. If another process truncates
/// the file while it is mapped (a log rotated with `copytruncate`, an editor
/// saving over it), touching a page past the new end raises SIGBUS, whose
/// default action ends the process without a word. This guard installs one
/// SIGBUS handler for the process. A fault inside a registered mapping is
/// answered by mapping a zero-filled page over the missing one and marking
/// that mapping as shrunk; the access then completes and the line reader,
/// which checks the mark before it lends each line, stops with a typed error.
/// A fault anywhere else gets the default action back, as if no handler had
/// been installed.
///
/// The handler runs in signal context: it only loads and stores atomics in
/// storage allocated before it was installed, and calls `mmap` and `signal`.
enum MappedInputGuard {
    /// Mappings watched at once (one per input file being read: a replay
    /// reads its files one after another, tests may read several at once;
    /// and up to 4 GeoIP databases, `EngineEnricher`).
    static let slots = 32

    /// Per slot: the mapping's start and end addresses (start 0: a free
    /// slot, `.max`: being filled in) and whether a page of it went missing.
    /// (Atomics in memory that is never freed: safe to share, hence `unsafe`.)
    private nonisolated(unsafe) static let starts = allocate(), ends = allocate(), shrunk = allocate()

    private static func allocate() -> UnsafeMutablePointer<Atomic<UInt>> {
        let p = UnsafeMutablePointer<Atomic<UInt>>.allocate(capacity: slots)
        for i in 0..<slots { (p + i).initialize(to: Atomic(0)) }
        return p
    }

    /// Read once, before the handler is installed (it may not call `sysconf`).
    private static let pageSize = UInt(getpagesize())

    private static let installed: Bool = {
        _ = (starts, ends, shrunk, pageSize)  // set before any signal can need them
        var action = sigaction()
        action.__sigaction_handler.sa_sigaction = { _, info, _ in MappedInputGuard.handleFault(info) }
        action.sa_flags = SA_SIGINFO
        sigemptyset(&action.sa_mask)
        return sigaction(SIGBUS, &action, nil) == 0
    }()

    /// Watches `range` (a live mapping); nil when every slot is taken or the
    /// handler could not be installed (the file is then read with `read`).
    static func watch(_ range: UnsafeRawBufferPointer) -> Int? {
        guard installed, let base = range.baseAddress, range.count > 0 else { return nil }
        let start = UInt(bitPattern: base), end = start + UInt(range.count)
        // Claim a free slot with a start no address reaches, fill it in, then
        // publish the real start (the handler reads start, then end).
        for i in 0..<slots where starts[i].compareExchange(expected: 0, desired: .max, ordering: .acquiring).exchanged {
            shrunk[i].store(0, ordering: .relaxed)
            ends[i].store(end, ordering: .relaxed)
            starts[i].store(start, ordering: .releasing)
            return i
        }
        return nil
    }

    /// Stops watching a slot; call before the mapping is unmapped.
    static func release(_ slot: Int) {
        precondition(slot >= 0 && slot < slots, "MappedInputGuard.release: slot \(slot) out of range")
        starts[slot].store(0, ordering: .releasing)
    }

    /// The slot's flag, nonzero once a page of its mapping was missing (its
    /// file shrank). A reader that checks it per line keeps the pointer: the
    /// memory is never freed, and reaching it through the tables each time
    /// passes their one-time initialization check.
    static func shrunkFlag(_ slot: Int) -> UnsafeMutablePointer<Atomic<UInt>> {
        precondition(slot >= 0 && slot < slots, "MappedInputGuard.shrunkFlag: slot \(slot) out of range")
        return shrunk + slot
    }

    private static func handleFault(_ info: UnsafeMutablePointer<siginfo_t>?) {
        let address = info.map { UInt(bitPattern: $0.pointee._sifields._sigfault.si_addr) } ?? 0
        for i in 0..<slots {
            let start = starts[i].load(ordering: .acquiring)
            guard start != 0, address >= start, address < ends[i].load(ordering: .relaxed) else { continue }
            let page = UnsafeMutableRawPointer(bitPattern: address & ~(pageSize - 1))
            let zero = mmap(page, Int(pageSize), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
            if zero != MAP_FAILED {
                shrunk[i].store(1, ordering: .relaxed)
                return
            }
            break
        }
        // Not a watched mapping (or no page could be put in): the default
        // action, taken when the faulting access runs again.
        signal(SIGBUS, SIG_DFL)
    }
}
