import ArgumentParser
import Engine

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a partition file's schema, row groups and first rows, or a KPI summary of a table directory.")

    @Argument(help: "A .parquet file, or a table directory such as output/overall.") var path: String
    @Option(help: "Rows to print for a file.") var rows: Int = 10

    func run() throws {
        try QoS.guarded {
            if Inspector.isDirectory(path) {
                print(try Inspector.summarizeDirectory(path), terminator: "")
            } else {
                print(try Inspector.describeFile(path, rows: rows), terminator: "")
            }
        }
    }
}

struct Schemas: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print (or write to a directory) the JSON schema of every output table.")

    @Option(help: "Write <table>.json files into this directory instead of printing.") var write: String?

    func run() throws {
        try QoS.guarded {
            for t in TableSchemas.schemaTables {
                let json = TableSchemas.schemaJSON(t)
                if let dir = write {
                    let sink = try LineSink(path: "\(dir)/\(t).json")
                    try sink.writeLine(Array(json.dropLast().utf8))
                    try sink.close()
                } else {
                    print(json, terminator: "")
                }
            }
        }
    }
}
