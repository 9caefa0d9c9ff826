// HyperLogLog sketch compatible with Apache DataSketches `hll_sketch`, target HLL_8.
//
// State machine (apache/datasketches-cpp CouponList / CouponHashSet / Hll8Array):
//   LIST: 8 coupon slots, linear scan. On the 8th distinct coupon: lgK < 8 -> HLL, else -> SET.
//   SET:  open addressing over 2^lgArr slots (lgArr starts at 5); grows when
//         4*count > 3*size; promotes to HLL instead of growing past lgArr = lgK - 3.
//   HLL:  one byte per register; HIP estimator while updates arrive in order.
// A coupon is `value << 26 | addr26`, value = min(clz64(h2), 62) + 1 (HllUtil.hpp).

public struct HLLSketch: Sendable, Equatable {
    public enum Mode: UInt8, Sendable { case list = 0, set = 1, hll = 2 }

    public static let minLgK = 4
    public static let maxLgK = 21

    /// log2 of the number of HLL registers. Can only decrease, through `merge` with a
    /// smaller-lgK sketch in HLL mode (DataSketches union semantics).
    public internal(set) var lgK: Int
    public internal(set) var mode: Mode
    /// LIST: 8 slots; SET: 2^lgArr slots; HLL: unused (empty). 0 = empty slot.
    @usableFromInline var coupons: [UInt32]
    @usableFromInline var couponCount: Int
    /// HLL mode: 2^lgK register bytes; empty otherwise.
    @usableFromInline var registers: [UInt8]
    @usableFromInline var hipAccum: Double
    @usableFromInline var kxq0: Double
    @usableFromInline var kxq1: Double
    @usableFromInline var curMin: UInt8
    @usableFromInline var numAtCurMin: UInt32
    /// Set after a union of two HLL-mode sketches: HIP is invalid, use the composite estimator.
    @usableFromInline var outOfOrder: Bool
    /// Registers were changed wholesale (union/downsample); kxq and numAtCurMin are stale
    /// until `rebuildFromRegisters()` (the reference's rebuild_kxq_curmin flag).
    @usableFromInline var rebuildPending: Bool

    public init(lgK: Int = 12) {
        precondition(lgK >= Self.minLgK && lgK <= Self.maxLgK, "lgK must be in 4...21")
        self.lgK = lgK
        mode = .list
        coupons = [UInt32].zeros(8)
        couponCount = 0
        registers = []
        hipAccum = 0
        kxq0 = Double(1 << lgK)
        kxq1 = 0
        curMin = 0
        numAtCurMin = UInt32(1 << lgK)
        outOfOrder = false
        rebuildPending = false
    }

    // MARK: - Queries

    public var isEmpty: Bool {
        switch mode {
        case .list, .set: return couponCount == 0
        case .hll: return curMin == 0 && numAtCurMin == UInt32(1 << lgK)
        }
    }

    /// HIP estimate for in-order sketches, composite estimate after a union, coupon
    /// estimate in LIST / SET mode.
    public var estimate: Double {
        switch mode {
        case .list, .set: return HLLEstimators.couponEstimate(couponCount)
        case .hll:
            if !outOfOrder { return hipAccum }
            return compositeEstimate
        }
    }

    /// The composite (non-HIP) estimator; what `estimate` returns after a union.
    public var compositeEstimate: Double {
        if mode != .hll { return HLLEstimators.couponEstimate(couponCount) }
        return HLLEstimators.compositeEstimate(lgK: lgK, kxq0: kxq0, kxq1: kxq1,
                                               curMin: curMin, numAtCurMin: numAtCurMin)
    }

    /// Whether the sketch went through a union of HLL-mode sketches (HIP not used).
    public var isOutOfOrder: Bool { outOfOrder }

    /// The HLL_8 register values (2^lgK bytes). In LIST/SET mode, the registers the
    /// coupons would set, so sketches can be compared whatever their mode.
    public var registerValues: [UInt8] {
        if mode == .hll { return registers }
        var regs = [UInt8].zeros(1 << lgK)
        let mask = UInt32((1 << lgK) - 1)
        for c in coupons where c != 0 {
            let slot = Int(c & mask), v = UInt8(truncatingIfNeeded: c >> 26)
            if v > regs[slot] { regs[slot] = v }
        }
        return regs
    }

    public static func == (lhs: HLLSketch, rhs: HLLSketch) -> Bool {
        lhs.compactBytes() == rhs.compactBytes()
    }

    // MARK: - Updates

    /// Updates with the UTF-8 bytes of `item`; the empty string is ignored.
    @inlinable
    public mutating func update(_ item: String) {
        var s = item
        s.withUTF8 { update(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// Updates with raw bytes; an empty buffer is ignored.
    @inlinable
    public mutating func update(bytes: UnsafeRawBufferPointer) {
        if bytes.isEmpty { return }
        let h = MurmurHash3.hash128(bytes)
        update(coupon: Self.coupon(h1: h.h1, h2: h.h2))
    }

    /// Updates with the 8 little-endian bytes of `int64` (DataSketches `update(int64_t)`).
    @inlinable
    public mutating func update(int64: Int64) {
        let h = MurmurHash3.hash128(int64: int64)
        update(coupon: Self.coupon(h1: h.h1, h2: h.h2))
    }

    /// Updates with a double as DataSketches does: -0.0 becomes 0.0, every NaN the canonical
    /// 0x7ff8000000000000, then the 8 little-endian bytes are hashed.
    @inlinable
    public mutating func update(double: Double) {
        let bits: UInt64 = double.isNaN ? 0x7ff8_0000_0000_0000 : (double == 0 ? 0 : double.bitPattern)
        update(int64: Int64(bitPattern: bits))
    }

    /// Pre-hashed input: one 64-bit hash is used as both Murmur halves (addr26 from the
    /// low bits, the register value from the leading zeros). For benchmarks and tests with
    /// synthetic uniformly random streams; not interchangeable with the byte/string updates.
    @inlinable
    public mutating func update(hash: UInt64) {
        update(coupon: Self.coupon(h1: hash, h2: hash))
    }

    /// Coupon of a 128-bit Murmur hash (HllUtil::coupon).
    @inlinable @inline(__always)
    public static func coupon(h1: UInt64, h2: UInt64) -> UInt32 {
        let addr26 = UInt32(truncatingIfNeeded: h1) & 0x3FF_FFFF
        let value = UInt32(Swift.min(h2.leadingZeroBitCount, 62) + 1)
        return value << 26 | addr26
    }

    @inlinable
    public mutating func update(coupon: UInt32) {
        if mode == .hll {
            hllUpdate(coupon)
        } else {
            couponModeUpdate(coupon)
        }
    }

    /// 2^-v, exactly (INVERSE_POWERS_OF_2 in inv_pow2_table.hpp), for 0 <= v <= 63.
    @inlinable @inline(__always)
    static func invPow2(_ v: UInt8) -> Double {
        Double(bitPattern: UInt64(1023 &- UInt64(v)) << 52)
    }

    /// Hll8Array::internalCouponUpdate + hipAndKxQIncrementalUpdate.
    @inlinable @inline(__always)
    mutating func hllUpdate(_ coupon: UInt32) {
        let slot = Int(coupon & UInt32(truncatingIfNeeded: registers.count &- 1))
        let newVal = UInt8(truncatingIfNeeded: coupon >> 26)
        let oldVal = registers[slot]
        if newVal > oldVal {
            registers[slot] = newVal
            kxqUpdate(oldVal, newVal)
            if oldVal == 0 { numAtCurMin &-= 1 }
        }
    }

    @inlinable @inline(__always)
    mutating func kxqUpdate(_ oldVal: UInt8, _ newVal: UInt8) {
        // HIP increment uses the kxq values *before* this change.
        if !outOfOrder { hipAccum += Double(registers.count) / (kxq0 + kxq1) }
        if oldVal < 32 { kxq0 -= Self.invPow2(oldVal) } else { kxq1 -= Self.invPow2(oldVal) }
        if newVal < 32 { kxq0 += Self.invPow2(newVal) } else { kxq1 += Self.invPow2(newVal) }
    }

    /// LIST / SET update (the cold path).
    @usableFromInline
    mutating func couponModeUpdate(_ coupon: UInt32) {
        if mode == .list { listUpdate(coupon) } else { setUpdate(coupon) }
    }

    mutating func listUpdate(_ coupon: UInt32) {
        for i in 0 ..< coupons.count {
            let c = coupons[i]
            if c == coupon { return }
            if c == 0 {
                coupons[i] = coupon
                couponCount += 1
                if couponCount == coupons.count {
                    if lgK < 8 { promoteToHLL() } else { promoteListToSet() }
                }
                return
            }
        }
        preconditionFailure("HLL coupon list full without promotion")
    }

    mutating func setUpdate(_ coupon: UInt32) {
        let lgArr = coupons.count.trailingZeroBitCount
        let idx = Self.find(coupons, lgArr: lgArr, coupon: coupon)
        if idx >= 0 { return }
        coupons[~idx] = coupon
        couponCount += 1
        if 4 * couponCount > 3 * coupons.count {
            if lgArr == lgK - 3 { promoteToHLL() } else { growSet(lgArr + 1) }
        }
    }

    /// CouponHashSet find: >= 0 is the index of `coupon`, < 0 is ~index of an empty slot.
    static func find(_ table: [UInt32], lgArr: Int, coupon: UInt32) -> Int {
        let mask = UInt32((1 << lgArr) - 1)
        var probe = coupon & mask
        let start = probe
        repeat {
            let c = table[Int(probe)]
            if c == 0 { return ~Int(probe) }
            if c == coupon { return Int(probe) }
            let stride = ((coupon & 0x3FF_FFFF) >> UInt32(lgArr)) | 1
            probe = (probe &+ stride) & mask
        } while probe != start
        preconditionFailure("HLL coupon set full")
    }

    mutating func growSet(_ lgArr: Int) {
        var table = [UInt32].zeros(1 << lgArr)
        for c in coupons where c != 0 {
            table[~Self.find(table, lgArr: lgArr, coupon: c)] = c
        }
        coupons = table
    }

    mutating func promoteListToSet() {
        let old = coupons
        mode = .set
        coupons = [UInt32].zeros(32)
        couponCount = 0
        for c in old where c != 0 { setUpdate(c) }
    }

    /// promoteListOrSetToHll: replay the coupons in array order, then overwrite HIP with
    /// the coupon estimate.
    mutating func promoteToHLL() {
        let src = coupons
        let est = HLLEstimators.couponEstimate(couponCount)
        becomeEmptyHLL(lgK: lgK)
        for c in src where c != 0 { hllUpdate(c) }
        hipAccum = est
        outOfOrder = false
    }

    /// A fresh HLL_8 array (HllArray constructor): zero registers, kxq0 = k.
    mutating func becomeEmptyHLL(lgK newLgK: Int) {
        lgK = newLgK
        mode = .hll
        coupons = []
        couponCount = 0
        registers = [UInt8].zeros(1 << newLgK)
        hipAccum = 0
        kxq0 = Double(1 << newLgK)
        kxq1 = 0
        curMin = 0
        numAtCurMin = UInt32(1 << newLgK)
        outOfOrder = false
        rebuildPending = false
    }

    /// The valid coupons in array order (coupon_iterator with all = false).
    var validCoupons: [UInt32] { coupons.filter { $0 != 0 } }
}
