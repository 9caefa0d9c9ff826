import Foundation

/// A new, empty directory `<system temporary directory>/<prefix>-<UUID>`;
/// the test removes it when done.
public func makeTemporaryDirectory(_ prefix: String) -> String {
    let d = NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}
