import ArgumentParser
import Engine
import Foundation

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a partition file's schema, row groups and first rows, or a KPI summary of a table directory.")

    @Argument(help: "A .parquet file, or a table directory such as output/overall (either may be an s3:// address).") var path: String
    @Option(help: "Rows to print for a file (0: the metadata only; an s3:// file is then read by ranged GETs of its footer).") var rows: Int = 10

    func run() throws {
        try QoS.guarded {
            let (path, cleanup) = try S3Reading.localCopy(of: self.path, scope: .init(footerOnly: rows == 0))
            defer { S3Reading.removeCopy(cleanup) }
            let text = Inspector.isDirectory(path) ? try Inspector.summarizeDirectory(path)
                : try Inspector.describeFile(path, rows: rows)
            // A copy of an s3:// address is named by the address.
            print(cleanup == nil ? text : text.replacingOccurrences(of: path, with: self.path), terminator: "")
        }
    }
}

struct Schemas: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schemas",
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
