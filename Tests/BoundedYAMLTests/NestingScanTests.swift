import Testing
@testable import BoundedYAML

/// The nesting bound checked before Yams composes a document (whose
/// recursion overflows the stack on a deep one): deep documents of every
/// YAML style are refused at the right line, and what quotes and comments
/// hold does not count.
@Suite struct NestingScanTests {
    func line(_ text: String, limit: Int = 8) -> Int? { NestingScan.firstLineDeeperThan(limit, in: text) }

    @Test func deepFlowBlockAndIndentationAreFound() {
        #expect(line("a: [[[[[[[[[x]]]]]]]]]") == 1)
        #expect(line("a: [[[[x]]]]") == nil)
        #expect(line("a: 1\nb:\n  - - - - - - - - - x") == 3)
        #expect(line("a:\n" + String(repeating: " ", count: 9) + "b: 1") == 2)
        // A flow collection spread over lines stays open across them.
        #expect(line("a: [\n[\n[\n[\n[\n[\n[\n[\n[ x ]]]]]]]]]") == 9)
    }

    @Test func quotedScalarsAndCommentsDoNotCount() {
        let brackets = String(repeating: "[", count: 50)
        #expect(line("a: '\(brackets)'\nb: \"\(brackets) \\\" \(brackets)\"\nc: 1 # \(brackets)") == nil)
        #expect(line("a: 'it''s \(brackets)'") == nil)
        // A colon inside a plain scalar (a URL, a time) is no indicator.
        #expect(line("a: http://x:1/y:z 12:30:00 " + String(repeating: "x:y", count: 50)) == nil)
        // A quote inside a plain scalar opens nothing: the brackets after it count.
        #expect(line("a: don't [[[[[[[[[x]]]]]]]]]") == 1)
    }

    @Test func composeRefusesADeepDocumentAndReadsAShallowOne() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: BoundedYAML.TooDeep.self) { try BoundedYAML.compose(yaml: deep) }
        let node = try BoundedYAML.compose(yaml: "a: [1, {b: [2, 3]}]\nc:\n  - d: 4")
        #expect(node?.mapping?["c"]?.sequence?.first?.mapping?["d"]?.scalar?.string == "4")
    }
}
