@testable import Engine
import Generator

/// Writes `qos generate`'s traffic for `options` to `path` as NDJSON, the
/// input the replay tests read.
func writeGeneratedInput(_ options: GeneratorOptions, to path: String) throws {
    let sink = try LineSink(path: path)
    for m in TrafficGenerator(options) { try sink.writeLine(m.payload) }
    try sink.close()
}
