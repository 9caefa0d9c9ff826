import ArgumentParser
import Engine

@main
struct QoS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qos",
        abstract: "VideoQoS: video-player beacons → windowed quality-of-experience metrics → Parquet.",
        discussion: "Beacon format: schemas/beacon.schema.json. Output tables: schemas/tables/.",
        // Every subcommand names itself (`commandName:`): left out, the name
        // is derived from the type with `String(describing:)`, a runtime
        // type lookup that cost ≈ 20 M instructions at every start
        // (bench/results/speed.md section 57).
        subcommands: [Run.self, Replay.self, Collect.self, Reaggregate.self, Report.self, Generate.self, Broker.self, Demo.self, Inspect.self, Schemas.self, Bench.self])

    /// Runs a command body, turning `UserError`s into one line on stderr and exit code 1.
    static func guarded(_ body: () throws -> Void) throws {
        do { try body() } catch let e as UserError {
            writeStderr("qos: error: \(e.message)\n")
            throw ExitCode(1)
        } catch let e as any OperatorError {
            writeStderr("qos: error: \(e.description)\n")
            throw ExitCode(1)
        }
    }
}
