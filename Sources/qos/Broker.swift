// `qos broker`: an embedded development Kafka broker (librdkafka's mock
// cluster). Self-contained: depends only on ArgumentParser and Kafka.

import ArgumentParser
import Kafka
import Engine
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct Broker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "Run an embedded development Kafka broker (in memory only; not for production).",
        discussion: """
        Built on librdkafka's mock cluster: consumer groups, offset commits and \
        produce/fetch work; data lives in memory and is lost on exit (at most 5 MiB of message \
        sets per partition are kept). SIGUSR1 / SIGUSR2 take the broker down / up (outage tests). The broker \
        listens on 127.0.0.1:--port for bootstrap and advertises its own \
        127.0.0.1 address, so clients must run on this host. Runs until SIGINT \
        or SIGTERM. For a production-like setup use docker-compose-process.yml.
        """)

    @Option(help: "Local bootstrap port (0 = any free port).") var port: Int = 9092
    @Option(help: "Partitions of each topic.") var partitions: Int = 6
    @Option(help: "Topic to create; repeatable (default beacons).") var topic: [String] = []

    var topics: [String] { topic.isEmpty ? ["beacons"] : topic }

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        // The mock keeps ≈ 240 bytes per partition even when empty; past what
        // `qos run` reads (per topic) it would only exhaust memory.
        guard (1...StreamPartition.partitionsMax).contains(partitions) else {
            throw ValidationError("--partitions must be between 1 and \(StreamPartition.partitionsMax) (what qos run reads per topic)")
        }
        for t in topics where !TopicSpec.isTopicName(t) {
            throw ValidationError("--topic '\(t)' is not a Kafka topic name (letters, digits, '.', '_', '-')")
        }
    }

    func run() throws {
        // Block SIGINT/SIGTERM before librdkafka starts its threads (they
        // inherit the mask), then wait for them synchronously.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGUSR1)
        sigaddset(&signals, SIGUSR2)
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        let broker: MockBroker
        do {
            broker = try MockBroker(brokers: 1, port: port,
                                    topics: Dictionary(topics.map { ($0, partitions) }, uniquingKeysWith: { a, _ in a }))
        } catch let e as KafkaError {
            brokerWrite(2, "qos: error: \(e.message)\n")
            throw ExitCode(1)
        }
        brokerWrite(1, """
            Kafka development broker listening on \(broker.bootstrapServers) \
            (\(topics.count == 1 ? "topic" : "topics") \(topics.map { "'\($0)'" }.joined(separator: ", ")), \(partitions) partitions\(topics.count == 1 ? "" : " each"); librdkafka \(librdkafkaVersion) mock cluster)
            Data is kept in memory only and lost on exit — not for production.
            Clients must run on this host (the broker advertises \(broker.clusterBootstrapServers)).
            Press Ctrl-C to stop. SIGUSR1 takes the broker down (an outage), SIGUSR2 brings it back.

            """)

        var sig: Int32 = 0
        while true {
            guard sigwait(&signals, &sig) == 0 else { continue }
            if sig == SIGUSR1 {
                try? broker.setBrokerDown(1)
                brokerWrite(2, "qos broker: down (SIGUSR1): connections refused until SIGUSR2\n")
            } else if sig == SIGUSR2 {
                try? broker.setBrokerUp(1)
                brokerWrite(2, "qos broker: up again (SIGUSR2)\n")
            } else {
                break
            }
        }
        broker.close()
        brokerWrite(2, "qos broker: stopped (\(sig == SIGINT ? "SIGINT" : "SIGTERM")); in-memory data discarded\n")
    }
}

private func brokerWrite(_ fd: Int32, _ s: String) {
    var s = s
    s.withUTF8 { b in _ = write(fd, b.baseAddress, b.count) }
}
