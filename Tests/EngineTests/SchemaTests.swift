import Foundation
import Testing
@testable import Engine
import Parquet

/// `schemas/tables/*.json` must be what the code writes.
@Suite struct SchemaTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    @Test(arguments: TableSchemas.schemaTables)
    func checkedInSchemaMatchesTheCode(table: String) throws {
        let url = SchemaTests.root.appendingPathComponent("schemas/tables/\(table).json")
        let text = try String(contentsOf: url, encoding: .utf8)
        #expect(text == TableSchemas.schemaJSON(table),
                "schemas/tables/\(table).json is stale: run `qos schemas --write schemas/tables`")
    }

    @Test func civilTimeFormatsUTC() {
        #expect(CivilTime(epochMs: 0).iso == "1970-01-01T00:00:00Z")
        #expect(CivilTime(epochMs: 1_767_225_720_000).compact == "20260101T0002Z")
        #expect(CivilTime(epochMs: 951_782_400_000).date == "2000-02-29")
        #expect(CivilTime(epochMs: -1).iso == "1969-12-31T23:59:59Z")
    }

    @Test func sinkDirectoryIsHiveStyle() {
        let s = FileSink(root: "out")
        #expect(s.directory(table: "video", windowStartMs: 1_767_229_200_000) == "out/video/dt=2026-01-01/hour=01")
    }
}
