/// Gives request-body memory back after a burst (README "qos collect",
/// memory under abuse). Bodies are buffered in full, up to
/// `--max-body-total` at once; freed, the allocator keeps their pages (under
/// glibc: free chunks between live ones; under mimalloc: an event loop's
/// emptied pages until that loop allocates again), so after a burst of
/// stalled bodies the collector's RSS stayed at hundreds of MB while it held
/// none. Checked on the producer's poll thread: once no body is held and the
/// last burst held at least `burstBytes`, `release` has the poll thread and
/// every event loop give their free pages back (`HeapTrim.releaseFreePages`)
/// — at most once per `intervalSeconds`, never while bodies arrive.
struct BodyMemoryTrim {
    static let burstBytes = 64 << 20
    static let intervalSeconds = 10.0

    /// Most body bytes held at once since the last trim.
    private(set) var peakBytes = 0
    private var heap: HeapTrim
    var trims: Int { heap.trims }

    init(nowSeconds: Double, release: @escaping () -> Void = HeapTrim.releaseFreePages) {
        heap = HeapTrim(intervalSeconds: Self.intervalSeconds, nowSeconds: nowSeconds, release: release)
    }

    /// Records the bytes held now (the peak since the last trim).
    mutating func observe(heldBytes: Int) { if heldBytes > peakBytes { peakBytes = heldBytes } }

    /// True when it trimmed: nothing held, a burst since the last trim, and
    /// the interval passed.
    @discardableResult
    mutating func check(heldBytes: Int, nowSeconds: Double) -> Bool {
        observe(heldBytes: heldBytes)
        guard heldBytes == 0, peakBytes >= Self.burstBytes, heap.afterEpoch(nowSeconds: nowSeconds) else { return false }
        peakBytes = 0
        return true
    }
}
