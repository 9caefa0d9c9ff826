import ArgumentParser
import QoSBench

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run the micro-benchmarks (decoder, core engine, partition snapshots, sketches, checksums, enrichment) and print one line each.",
        discussion: "Build with -c release for meaningful numbers; `make bench` runs this plus the end-to-end and peer comparisons.")

    @Flag(help: "Run only the memory-per-session benchmark.") var memoryOnly = false
    @Flag(help: "Print tab-separated name, ops/s, note (for bench/run.py).") var tsv = false

    func run() throws {
        let results = memoryOnly ? MicroBench.bytesPerSession() : MicroBench.decoders() + [MicroBench.core(), MicroBench.snapshots()] + MicroBench.sketches() + MicroBench.checksums() + MicroBench.enrichment()
            + MicroBench.bytesPerSession()
        for r in results {
            if tsv { print("\(r.name)\t\(Int(r.opsPerSec))\t\(r.note)") } else if r.name.hasPrefix("bytes") {
                print("\(r.name): \(Int(r.opsPerSec)) (\(r.note))")
            } else {
                let rate = r.opsPerSec >= 10_000 ? "\(Int(r.opsPerSec / 1000)) k ops/s" : "\(Int(r.opsPerSec)) ops/s"
                print("\(r.name): \(rate) (\(r.note))")
            }
        }
    }
}
