import Enrichment
import QoSCore

/// The default of every setting of `qos run`, `qos replay` and `qos demo`,
/// one home each (README "The daemon", Settings). The engine's event-time
/// knobs (window, lateness, max lateness, session timeout and maximum, group
/// cap, slow request) have theirs in `EngineConfig` (QoSCore), which the
/// core uses without this module; `Defaults.engine` names them here.
public enum Defaults {
    public static let brokers = "localhost:9092"
    /// Who fetches Kafka records (docs/kafka-fetch.md).
    public static let fetchPath = "native"
    public static let topic = "beacons"
    public static let group = "videoqos"
    public static let sink = "output"
    /// Window, lateness, max lateness, session timeout/max, group cap, slow request ms.
    public static let engine = EngineConfig()
    /// A partition idle this long (wall clock) does not hold the watermark back.
    public static let idleTimeoutMs: Int64 = 30_000
    /// Checkpoint at least this often even when no window is due.
    public static let checkpointIntervalMs: Int64 = 10_000
    /// A window due sooner than this after the last checkpoint waits for it.
    public static let checkpointMinIntervalMs: Int64 = 2_000
    /// Late contributions are written at most this often per table and hour
    /// directory, as one file (README "Late data and compaction").
    public static let lateFlushIntervalMs: Int64 = 300_000
    /// Files a table's hour directory may hold before the daemon compacts it.
    public static let compactFiles = 12
    /// An hour closed this long (event time) is compacted to one file.
    public static let compactAfterMs: Int64 = 3_600_000
    /// The most engine threads `qos replay` shards its sessions over (`workers`).
    public static let replayWorkersMax = 64
    /// ZSTD level of Parquet pages (0 = uncompressed). Level 1: most pages
    /// are a few hundred bytes, where level 3 takes up to twice the time
    /// and wrote the benchmark's files 1.4 % larger (bench/results/speed.md
    /// section 63).
    public static let zstdLevel = 1
    /// The highest ZSTD level libzstd accepts.
    public static let zstdLevelMax = 22
    /// Port of /metrics and /healthz (nil = off).
    public static let metricsPort: Int? = 9309
    /// Address /metrics and /healthz listen on: loopback only.
    public static let metricsHost = "127.0.0.1"
    /// uap-core's rules as Debian installs them.
    public static let uaRegexes = UserAgentClassifier.defaultRegexesPath
}
