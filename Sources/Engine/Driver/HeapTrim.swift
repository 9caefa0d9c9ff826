import CMalloc

/// How `qos run` uses glibc's heap (docs/architecture.md "The daemon's heap").
///
/// Each epoch builds buffers of several MiB (Parquet files, partition
/// snapshots, the manifest). `keepCheckpointBuffers` has glibc serve them
/// from the heap and keep them there when freed, so the next epoch reuses
/// the same pages instead of faulting fresh ones in (≈ 4 % of a catch-up's
/// CPU). Freed that way, though, the pages stay with the process: arenas
/// fill with free chunks between live ones, and a real-time daemon's RSS
/// climbed for as long as it ran (a 10-minute soak: 176 → 766 MiB; 5
/// minutes into another, 510 MiB held, 219 MiB in use). So after an epoch, at most once per
/// `intervalSeconds`, every whole free page goes back to the kernel: a
/// catch-up shorter than the interval never pays for it, a long-running
/// daemon's RSS stays near what it uses.
struct HeapTrim {
    /// Buffers below this come from the heap, not fresh mappings.
    static let mmapThresholdBytes: Int32 = 32 << 20
    /// Free bytes at a heap's top kept without a trim.
    static let trimThresholdBytes: Int32 = 256 << 20
    /// The least time between two trims.
    static let defaultIntervalSeconds = 30.0

    let intervalSeconds: Double
    /// Monotonic time of the last trim (or of the start).
    private(set) var lastSeconds: Double
    /// Trims done so far.
    private(set) var trims = 0
    /// Gives the free pages back (`qos_heap_trim`; a counter in tests).
    let release: () -> Void

    /// Every whole free page of every arena back to the kernel.
    static func releaseFreePages() { _ = qos_heap_trim() }

    init(intervalSeconds: Double = defaultIntervalSeconds, nowSeconds: Double,
         release: @escaping () -> Void = releaseFreePages) {
        precondition(intervalSeconds > 0, "the trim interval must be positive")
        self.intervalSeconds = intervalSeconds
        lastSeconds = nowSeconds
        self.release = release
    }

    /// Sets glibc's thresholds for the whole process (`qos run`, once at its start).
    static func keepCheckpointBuffers() {
        _ = qos_heap_tune(mmapThresholdBytes, trimThresholdBytes)
    }

    /// Called after each epoch, once its buffers are freed; true when it trimmed.
    @discardableResult
    mutating func afterEpoch(nowSeconds: Double) -> Bool {
        guard nowSeconds - lastSeconds >= intervalSeconds else { return false }
        release()
        lastSeconds = nowSeconds
        trims += 1
        return true
    }
}
