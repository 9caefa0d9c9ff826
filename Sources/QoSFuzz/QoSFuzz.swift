// `qos-fuzz`: the libFuzzer target over decoder + engine + Parquet encoding
// (README "Numeric safety"). `make fuzz` builds it with
// `-sanitize=fuzzer -DQOS_FUZZ` into .build-fuzz and runs it on a corpus
// seeded from `qos generate` and tests/fuzz/hostile.ndjson. One input is
// an NDJSON text (one message per line) fed to a fresh engine; a trap, or
// a broken invariant of `EngineSelfCheck` (then abort), is a finding.
// A plain `swift build` compiles the stub below instead (libFuzzer is
// linked only under the sanitizer).
import Engine
#if canImport(Glibc)
import Glibc
#endif

#if QOS_FUZZ
/// The engine clock: a day after the generator's default start.
let fuzzNowMs: Int64 = 1_767_312_000_000

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let check = EngineSelfCheck(nowMs: fuzzNowMs)
    var start = 0, line: Int64 = 0
    for i in 0...size where i == size || input[i] == UInt8(ascii: "\n") {
        line += 1
        if i > start { check.ingest(UnsafeRawBufferPointer(rebasing: input[start..<i]), line: line) }
        start = i + 1
    }
    let problems = check.finish()
    if !problems.isEmpty {
        writeStderr("qos-fuzz: invariant broken:\n" + problems.prefix(10).joined(separator: "\n") + "\n")
        abort()
    }
    return 0
}

/// libFuzzer's entry with a caller-supplied `main` (SwiftPM links an
/// executable's `main` to this module's, so libFuzzer's own is not used).
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<CInt>,
                     _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@main
struct QoSFuzz {
    static func main() {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(runFuzzerDriver(&argc, &argv, { fuzzOneInput($0, $1) }))
    }
}
#else
@main
struct QoSFuzzStub {
    static func main() {
        writeStderr("qos-fuzz: built without the fuzzer — run `make fuzz` (FUZZ_MINUTES=N)\n")
        exit(2)
    }
}
#endif
