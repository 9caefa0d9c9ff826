import QoSCore

/// How bad a logged event is. The code that logs says so; nothing guesses
/// it from the message text.
public enum LogLevel: String, Sendable, CaseIterable {
    /// Progress: start, assignment, checkpoints, stop.
    case info
    /// Something an operator may want to look at, handled: a broker outage
    /// being retried, librdkafka's own errors, state loss accepted by flag.
    case warn
    /// Data was lost (e.g. Kafka no longer retains a checkpointed offset).
    case error
}

/// One logfmt line: `ts=<UTC ISO time> level=<level> msg="<message>"` with
/// `\` and `"` escaped, ending in a newline (README "The daemon", Logs).
public func logfmt(level: LogLevel, message: String, nowMs: Int64 = wallClockMs()) -> String {
    let escaped = message.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    return "ts=\(CivilTime(epochMs: nowMs).iso) level=\(level.rawValue) msg=\"\(escaped)\"\n"
}

/// An informational logfmt line (the level of every message that does not say otherwise).
public func logfmt(_ message: String) -> String { logfmt(level: .info, message: message) }

/// Where the daemon's log events go: `log("…")` is info, `log.warn("…")` and
/// `log.error("…")` say their level.
public struct Logger {
    public let write: (LogLevel, String) -> Void

    public init(_ write: @escaping (LogLevel, String) -> Void) { self.write = write }

    public func callAsFunction(_ message: String) { write(.info, message) }
    public func info(_ message: String) { write(.info, message) }
    public func warn(_ message: String) { write(.warn, message) }
    public func error(_ message: String) { write(.error, message) }

    /// logfmt lines on stderr (the default of `qos run`).
    public static var stderr: Logger { Logger { writeStderr(logfmt(level: $0, message: $1)) } }
    /// Drops everything (`qos demo` draws its own view).
    public static var silent: Logger { Logger { _, _ in } }
}
