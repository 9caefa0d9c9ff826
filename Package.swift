// swift-tools-version: 6.1
//
// VideoQoS: video-player beacons -> windowed QoE metrics -> Parquet.
// Data flows one way: QoSCore (decode, sessions, windows, metrics) and
// Sketches are pure; Parquet and Enrichment are leaf libraries; Engine wires
// them to files and Kafka; `qos` is the CLI. Benchmarks and their fixtures
// live in QoSBench, so Engine does not link the traffic generator.
import PackageDescription

/// The hot path is generic code in QoSCore (and Sketches) instantiated in
/// Engine: let release builds specialize and inline across module borders.
/// The per-beacon state lives in classes; release builds of the hot-path
/// modules skip the dynamic exclusivity checks (they cost a quarter of
/// replay's CPU time; debug builds and tests keep them).
let crossModule: [SwiftSetting] = [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]
let hotPath: [SwiftSetting] = crossModule
    + [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "VideoQoS",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "qos", targets: ["qos"]),
        .executable(name: "qos-fuzz", targets: ["QoSFuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        // System libraries (Debian: libzstd-dev, libmaxminddb-dev, librdkafka-dev, zlib1g-dev, libmimalloc-dev).
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CMaxMindDB", pkgConfig: "libmaxminddb",
                       providers: [.apt(["libmaxminddb-dev"])]),
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka",
                       providers: [.apt(["librdkafka-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),

        // The CPU's prefetch hint (a header; nothing to link).
        .systemLibrary(name: "CPrefetch"),
        // The process's allocator, mimalloc (Debian: libmimalloc-dev, which has
        // no pkg-config file: the module map links it by name), and its trim.
        .systemLibrary(name: "CMalloc", providers: [.apt(["libmimalloc-dev"])]),
        // CRC-32C with the CPU's crc32 instruction (a header; nothing to link).
        .systemLibrary(name: "CCRC32C"),

        // Pure logic: no I/O, no C libraries (a compiler hint and a CPU instruction aside).
        .target(name: "Sketches", swiftSettings: hotPath),
        .target(name: "QoSCore", dependencies: ["CPrefetch", "CCRC32C", "SecretHash"], swiftSettings: hotPath),
        .target(name: "SecretHash", swiftSettings: hotPath),
        .target(name: "SplitMix"),
        .target(name: "Generator", dependencies: ["QoSCore", "SplitMix"]),

        // Leaf libraries.
        .target(name: "Parquet", dependencies: ["CZstd", "SecretHash"], swiftSettings: hotPath),
        // YAML from operators' files, composed with a bound on its nesting.
        .target(name: "BoundedYAML", dependencies: [.product(name: "Yams", package: "Yams")]),
        .target(name: "Enrichment", dependencies: [
            "CMaxMindDB", "SecretHash", "BoundedYAML", .product(name: "Yams", package: "Yams"),
        ]),

        // The flag exports the Kafka module's ZSTD_getFrameContentSize, which
        // librdkafka must find before libzstd's (Sources/Kafka/ZstdFrameSizeHint.swift).
        .target(name: "Kafka", dependencies: ["CRdKafka", "CZstd", "QoSCore"],
                linkerSettings: [.unsafeFlags(["-Xlinker", "--export-dynamic-symbol=ZSTD_getFrameContentSize"],
                                              .when(platforms: [.linux]))]),
        // S3-compatible object storage: SigV4 signing and the requests the sink needs.
        .target(name: "ObjectStore", dependencies: [
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),

        // The pipeline and the CLI.
        .target(name: "Engine", dependencies: ["QoSCore", "Sketches", "Parquet", "Enrichment", "Kafka", "CZstd", "CZlib", "CMalloc", "ObjectStore", "BoundedYAML",
                                               .product(name: "NIOCore", package: "swift-nio"),
                                               .product(name: "NIOPosix", package: "swift-nio"),
                                               .product(name: "NIOHTTP1", package: "swift-nio"),
                                               .product(name: "Yams", package: "Yams")],
                swiftSettings: hotPath),
        // Benchmarks and their fixtures (`qos bench`): not linked by Engine.
        .target(name: "QoSBench", dependencies: ["Engine", "QoSCore", "Generator", "Sketches", "Enrichment", "SplitMix", "CMalloc"]),
        .executableTarget(name: "qos", dependencies: [
            "Engine", "QoSCore", "Generator", "Kafka", "QoSBench",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // libFuzzer target (`make fuzz`); a stub without -DQOS_FUZZ.
        .executableTarget(name: "QoSFuzz", dependencies: ["Engine"]),

        .testTarget(name: "SketchesTests", dependencies: [
            "Sketches", "SplitMix", "QoSBench", .product(name: "PropertyBased", package: "swift-property-based"),
        ]),
        .testTarget(name: "QoSCoreTests", dependencies: [
            "QoSCore", "SecretHash", "Generator", "SplitMix", .product(name: "PropertyBased", package: "swift-property-based"),
        ]),
        .testTarget(name: "ParquetTests", dependencies: [
            "Parquet", "SplitMix", .product(name: "PropertyBased", package: "swift-property-based"),
        ]),
        .testTarget(name: "EnrichmentTests", dependencies: ["Enrichment", "QoSBench", "SplitMix", "SecretHash"], exclude: ["known-failures.txt"]),
        .testTarget(name: "BoundedYAMLTests", dependencies: ["BoundedYAML"]),
        .testTarget(name: "KafkaTests", dependencies: ["Kafka", "CZstd", "QoSCore"]),
        // Test helpers shared by test targets (moto on loopback).
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "ObjectStoreTests", dependencies: ["ObjectStore", "Engine", "TestSupport"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "Kafka", "QoSCore", "Parquet", "Generator", "SplitMix", "ObjectStore", "TestSupport", "QoSBench", "Sketches"]),
        // The CLI's --help and flags against the typed configuration.
        .testTarget(name: "QoSCLITests", dependencies: ["qos", "Engine"]),
    ]
)
