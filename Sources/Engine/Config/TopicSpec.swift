/// One topic `qos run` consumes and the input format of its messages:
/// `NAME` or `NAME:FORMAT` (README "The daemon", Settings). A Kafka topic
/// name is letters, digits, `.`, `_` and `-`, so the colon is unambiguous.
public struct TopicSpec: Equatable, Sendable, CustomStringConvertible {
    public var name: String
    /// nil: the configuration's `format`.
    public var format: String?

    public init(name: String, format: String? = nil) {
        precondition(TopicSpec.isTopicName(name), "not a Kafka topic name: \(name)")
        self.name = name
        self.format = format
    }

    /// Parses `NAME[:FORMAT]`; nil when the name is not a Kafka topic name or
    /// the format is not a registered one.
    public init?(parsing text: String) {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard TopicSpec.isTopicName(parts[0]) else { return nil }
        if parts.count == 2 {
            guard RecordFormats.all.contains(where: { $0.name == parts[1] }) else { return nil }
            self.init(name: parts[0], format: parts[1])
        } else {
            self.init(name: parts[0])
        }
    }

    /// Kafka's rule: 1–249 characters of `[A-Za-z0-9._-]`, not `.` or `..`.
    public static func isTopicName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 249 && s != "." && s != ".."
            && s.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0)) }
    }

    public var description: String { format.map { "\(name):\($0)" } ?? name }
}
