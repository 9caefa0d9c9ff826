/// Merging the flushes of engines that each saw a share of the sessions (a
/// sharded replay, docs/architecture.md "Sharding"). Each engine's group
/// keys are ids of its own interner, so the windows are first renamed into
/// one interner, then merged like partitions' shares (`mergedByWindow`).
extension WindowState {
    /// One flush from several engines' flushes at the same watermark, each
    /// with its interner's strings as they were on return of its flush:
    /// the merged windows (in time order, base before delta) and the
    /// strings their group keys refer to. The states given are changed.
    public static func merged(_ parts: [(windows: [WindowState<K>], names: [String])],
                              cap: Int) -> (windows: [WindowState<K>], names: [String]) {
        let interner = StringInterner()
        var all: [WindowState<K>] = []
        for part in parts {
            var map = [UInt32](repeating: .max, count: part.names.count)
            map[Int(StringInterner.unknownID)] = StringInterner.unknownID
            map[Int(StringInterner.otherID)] = StringInterner.otherID
            for w in part.windows {
                for t in w.tables.indices {
                    for k in w.tables[t].keys {
                        for id in [k.a, k.b, k.c, k.d] where map[Int(id)] == .max {
                            map[Int(id)] = interner.intern(part.names[Int(id)])
                        }
                    }
                    w.tables[t].remapIDs(map)
                }
                all.append(w)
            }
        }
        return (mergedByWindow(all, cap: cap), interner.strings)
    }
}
