import CMalloc

/// How `qos run` uses the process's heap, mimalloc's (docs/architecture.md
/// "The daemon's heap").
///
/// Each epoch builds buffers of several MiB (Parquet files, partition
/// snapshots, the manifest) and frees them. mimalloc gives an emptied page
/// back to the kernel once it has been free for its decommit delay (25 ms
/// by default; none cost 10 % more CPU in a catch-up, 1 s kept 20 % more
/// resident and saved none), but only when the thread that owns it
/// allocates or frees again. So after an epoch, at most once per
/// `intervalSeconds`, the driver has it give back at once what is free
/// past the delay (`mi_collect(true)`), threads that ended included.
struct HeapTrim {
    /// The least time between two trims.
    static let defaultIntervalSeconds = 30.0

    let intervalSeconds: Double
    /// Monotonic time of the last trim (or of the start).
    private(set) var lastSeconds: Double
    /// Trims done so far.
    private(set) var trims = 0
    /// Gives the free pages back (`qos_heap_trim`; a counter in tests).
    let release: () -> Void

    /// What mimalloc can release, back to the kernel now.
    static func releaseFreePages() { _ = qos_heap_trim() }

    init(intervalSeconds: Double = defaultIntervalSeconds, nowSeconds: Double,
         release: @escaping () -> Void = releaseFreePages) {
        precondition(intervalSeconds > 0, "the trim interval must be positive")
        self.intervalSeconds = intervalSeconds
        lastSeconds = nowSeconds
        self.release = release
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
