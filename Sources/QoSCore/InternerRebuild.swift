/// Keeps the interners to the strings still in use (README, "Interned
/// strings"): without this, every distinct `video_id`, player version or
/// error code ever seen would stay in memory for the daemon's life.

/// When `QoSEngine` rebuilds its interners.
public struct InternerRebuildPolicy: Sendable {
    /// An interner is rebuilt once it holds more than `max(floor, 2 × n)`
    /// strings, `n` being what it held after its previous rebuild.
    public var floor = 65_536
    /// Rebuild at every flush (tests: output must not change).
    public var always = false
    public init() {}
}

extension QoSEngine {
    /// At the end of a flush: when an interner has grown past its bound,
    /// builds new interners holding only the strings that open state refers
    /// to (open sessions; unwritten windows and deltas; `flushed`, the
    /// windows this flush returns) and renames every id in that state.
    /// Output does not change: ids never reach a file, strings do, and
    /// every group keeps its slot. Sessions' cached slots are dropped anyway.
    /// Cost: one pass over open sessions and groups, at most once per
    /// `max(floor, n)` new strings.
    func rebuildInternersIfDue(flushed: [WindowState<K>]) {
        let policy = internerRebuild
        let due = policy.always
            || interner.count > max(policy.floor, 2 * internedAfterRebuild.dimensions)
            || values.count > max(policy.floor, 2 * internedAfterRebuild.values)
        guard due else { return }
        var states: [WindowState<K>] = []
        var seen = Set<ObjectIdentifier>()
        for w in flushed + partitions.values.flatMap({ $0.aggregator.allStates })
        where seen.insert(ObjectIdentifier(w)).inserted { states.append(w) }
        let sessions = partitions.values.flatMap { $0.sessions.values }

        var liveDims = [Bool](repeating: false, count: interner.count)
        var liveValues = [Bool](repeating: false, count: values.count)
        for w in states {
            for t in w.tables {
                for k in t.keys {
                    liveDims[Int(k.a)] = true; liveDims[Int(k.b)] = true
                    liveDims[Int(k.c)] = true; liveDims[Int(k.d)] = true
                }
            }
        }
        for p in partitions.values { p.closedSessions.markLive(&liveDims) }
        for s in sessions {
            s.dims.markLive(&liveDims)
            liveValues[Int(s.playerVersion)] = true; liveValues[Int(s.city)] = true
            liveValues[Int(s.asOrg)] = true; liveValues[Int(s.fatalErrorCode)] = true
        }

        let (newDims, dimMap) = interner.keeping(liveDims)
        let (newValues, valueMap) = values.keeping(liveValues)
        for w in states { for t in w.tables.indices { w.tables[t].remapIDs(dimMap) } }
        for p in partitions.values { p.closedSessions.remapDims(dimMap) }
        for s in sessions {
            s.dims.remap(dimMap)
            s.playerVersion = valueMap[Int(s.playerVersion)]
            s.city = valueMap[Int(s.city)]
            s.asOrg = valueMap[Int(s.asOrg)]
            if s.fatalErrorCode != 0 { s.fatalErrorCode = valueMap[Int(s.fatalErrorCode)] }
            assert(!s.hasPendingPlay, "a rebuild after a flush finds no played time held back")
            s.cacheSerial = 0
        }
        interner = newDims
        values = newValues
        internedAfterRebuild = (newDims.count, newValues.count)
    }
}

extension SessionDims {
    mutating func remap(_ map: [UInt32]) {
        video = map[Int(video)]; country = map[Int(country)]; region = map[Int(region)]
        deviceType = map[Int(deviceType)]; os = map[Int(os)]; browser = map[Int(browser)]
        playerName = map[Int(playerName)]; cdn = map[Int(cdn)]; pop = map[Int(pop)]
    }
}
