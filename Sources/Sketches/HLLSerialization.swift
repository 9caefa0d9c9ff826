// DataSketches HLL serialization (apache/datasketches-cpp HllUtil.hpp constants,
// CouponList / CouponHashSet / HllArray serialize and deserialize). Little-endian.
//
//  byte 0 preInts (LIST 2, SET 3, HLL 10) | 1 serVer 1 | 2 family 7 | 3 lgK
//  byte 4 lgArr (LIST 3, SET log2 table, HLL_8 0) | 5 flags | 6 LIST count / HLL curMin
//  byte 7 mode = tgtType << 2 | curMode
//  LIST: coupons from 8. SET: u32 count at 8, coupons from 12.
//  HLL: f64 hip @8, f64 kxq0 @16, f64 kxq1 @24, u32 numAtCurMin @32, u32 auxCount @36,
//       registers from 40 (HLL_8 one byte each; HLL_6 packed 6 bits; HLL_4 nibbles + aux map).

extension HLLSketch {
    static let serVer: UInt8 = 1
    static let familyID: UInt8 = 7
    static let flagEmpty: UInt8 = 0x04
    static let flagCompact: UInt8 = 0x08
    static let flagOutOfOrder: UInt8 = 0x10
    /// Target type HLL_8 in bits 2-3 of the mode byte.
    static let tgtHLL8: UInt8 = 2

    /// Compact serialization, byte-identical to DataSketches `serialize_compact()` of an
    /// HLL_8 sketch with the same state.
    public func compactBytes() -> [UInt8] { serialize(compact: true) }

    /// `compactBytes().count`, without building the bytes: the 8-byte
    /// header, then the nonzero coupons of LIST (after no count) and SET
    /// (after a 4-byte count), or HLL mode's 32-byte fields and registers.
    public var compactByteCount: Int {
        switch mode {
        case .list: return 8 + 4 * couponCount
        case .set: return 12 + 4 * couponCount
        case .hll: return 40 + registers.count
        }
    }

    /// Updatable serialization (`serialize_updatable()`): LIST/SET write all slots.
    public func updatableBytes() -> [UInt8] { serialize(compact: false) }

    func flagsByte(compact: Bool) -> UInt8 {
        var f: UInt8 = 0
        if isEmpty { f |= Self.flagEmpty }
        if compact { f |= Self.flagCompact }
        if outOfOrder { f |= Self.flagOutOfOrder }
        return f
    }

    func serialize(compact: Bool) -> [UInt8] {
        let length = byteCount(compact: compact)
        return [UInt8](unsafeUninitializedCapacity: length) { buffer, written in
            write(compact: compact, length: length, into: UnsafeMutableBufferPointer(rebasing: buffer[..<length]))
            written = length
        }
    }

    /// `updatableBytes().count`, without building the bytes.
    public var updatableByteCount: Int { byteCount(compact: false) }

    /// Writes `updatableBytes()` into `buffer`, which must hold exactly
    /// `updatableByteCount` bytes (a checkpoint writes each sketch into its
    /// own buffer: bench/results/speed.md section 58).
    public func writeUpdatable(into buffer: UnsafeMutableBufferPointer<UInt8>) {
        write(compact: false, length: updatableByteCount, into: buffer)
    }

    /// The exact length of the compact or updatable image.
    func byteCount(compact: Bool) -> Int {
        compact ? compactByteCount
            : (mode == .hll ? 40 + registers.count : 8 + (mode == .set ? 4 : 0) + 4 * coupons.count)
    }

    /// Writes the image, of `length` = `byteCount(compact:)` bytes (SizedByteWriter).
    private func write(compact: Bool, length: Int, into buffer: UnsafeMutableBufferPointer<UInt8>) {
        precondition(!rebuildPending, "internal: kxq rebuild pending")
        precondition(buffer.count == length, "an HLL image needs exactly its computed length")
        let preInts: UInt8 = mode == .list ? 2 : (mode == .set ? 3 : 10)
        let lgArr: UInt8 = mode == .hll ? 0 : UInt8(coupons.count.trailingZeroBitCount)
        let byte6: UInt8 = mode == .list ? UInt8(couponCount) : (mode == .set ? 0 : curMin)
        var out = SizedByteWriter(buffer)
        out.byte(preInts); out.byte(Self.serVer); out.byte(Self.familyID); out.byte(UInt8(lgK))
        out.byte(lgArr); out.byte(flagsByte(compact: compact)); out.byte(byte6)
        out.byte(Self.tgtHLL8 << 2 | mode.rawValue)
        switch mode {
        case .list, .set:
            if mode == .set { out.littleEndian(UInt32(couponCount)) }
            for c in coupons where !compact || c != 0 { out.littleEndian(c) }
        case .hll:
            out.littleEndian(hipAccum.bitPattern)
            out.littleEndian(kxq0.bitPattern)
            out.littleEndian(kxq1.bitPattern)
            out.littleEndian(numAtCurMin)
            out.littleEndian(UInt32(0))  // auxCount: HLL_8 has no exceptions
            out.bytes(registers)
        }
        precondition(out.count == length, "the computed length disagrees with the bytes written")
    }

    /// Reads DataSketches compact or updatable images of LIST, SET and HLL mode sketches
    /// with target type HLL_4, HLL_6 or HLL_8. The result is always HLL_8.
    public init(bytes: [UInt8]) throws {
        let r = ByteReader(bytes)
        guard bytes.count >= 8 else { throw SketchError.truncated("HLL header") }
        guard bytes[1] == Self.serVer else { throw SketchError.invalidFormat("HLL serVer \(bytes[1])") }
        guard bytes[2] == Self.familyID else { throw SketchError.invalidFormat("not an HLL sketch (family \(bytes[2]))") }
        let lgK = Int(bytes[3])
        guard lgK >= Self.minLgK && lgK <= Self.maxLgK else { throw SketchError.invalidFormat("HLL lgK \(lgK)") }
        let flags = bytes[5]
        let compact = flags & Self.flagCompact != 0
        let ooo = flags & Self.flagOutOfOrder != 0
        let curMode = bytes[7] & 3, tgt = (bytes[7] >> 2) & 3
        guard tgt <= 2 else { throw SketchError.invalidFormat("HLL target type \(tgt)") }
        self.init(lgK: lgK)
        switch (bytes[0], curMode) {
        case (2, 0): try readList(r, compact: compact, empty: flags & Self.flagEmpty != 0)
        case (3, 1): try readSet(r, compact: compact)
        case (10, 2): try readHLL(r, tgt: tgt, compact: compact)
        default: throw SketchError.invalidFormat("HLL preInts \(bytes[0]) / mode \(curMode)")
        }
        outOfOrder = ooo
        if mode == .hll && ooo { hipAccum = 0 }  // readers ignore HIP of out-of-order sketches
    }

    mutating func readList(_ r: ByteReader, compact: Bool, empty: Bool) throws {
        let count = Int(r.bytes[6])
        guard count < 8 else { throw SketchError.invalidFormat("HLL LIST count \(count) >= 8") }
        let stored = compact ? count : 8
        guard r.bytes.count >= 8 + 4 * stored else { throw SketchError.truncated("HLL LIST coupons") }
        if empty { return }
        for i in 0 ..< count {
            let c = r.u32(8 + 4 * i)
            guard c != 0, !coupons[0 ..< i].contains(c) else { throw SketchError.invalidFormat("HLL LIST coupon") }
            coupons[i] = c
        }
        couponCount = count
    }

    mutating func readSet(_ r: ByteReader, compact: Bool) throws {
        guard lgK > 7 else { throw SketchError.invalidFormat("HLL SET with lgK \(lgK) <= 7") }
        guard r.bytes.count >= 12 else { throw SketchError.truncated("HLL SET count") }
        let count = Int(r.u32(8))
        var lgArr = Int(r.bytes[4])
        if lgArr < 5 { lgArr = Self.computeSetLgArr(count) }
        guard lgArr <= lgK - 3, count <= (3 << lgArr) / 4 + 1 else {
            throw SketchError.invalidFormat("HLL SET count \(count) / lgArr \(lgArr)")
        }
        let stored = compact ? count : 1 << lgArr
        guard r.bytes.count >= 12 + 4 * stored else { throw SketchError.truncated("HLL SET coupons") }
        mode = .set
        if compact {
            // CouponHashSet::newSet re-inserts compact coupons into a fresh table.
            coupons = [UInt32].zeros(32)
            for i in 0 ..< count {
                let c = r.u32(12 + 4 * i)
                guard c != 0 else { throw SketchError.invalidFormat("HLL SET coupon 0") }
                if mode == .hll { hllUpdate(c) } else { setUpdate(c) }
            }
        } else {
            coupons = (0 ..< stored).map { r.u32(12 + 4 * $0) }
            couponCount = count
            // the table must hold exactly `count` coupons and keep a free slot for probing
            guard coupons.lazy.filter({ $0 != 0 }).count == count, count < stored else {
                throw SketchError.invalidFormat("HLL SET table does not hold \(count) coupons")
            }
        }
    }

    /// HllUtil::computeLgArrInts for SET mode.
    static func computeSetLgArr(_ count: Int) -> Int {
        var p = 1
        while p < count { p <<= 1 }
        if 4 * count > 3 * p { p <<= 1 }
        return Swift.max(5, p.trailingZeroBitCount)
    }

    mutating func readHLL(_ r: ByteReader, tgt: UInt8, compact: Bool) throws {
        let k = 1 << lgK
        let arrBytes = tgt == 2 ? k : (tgt == 1 ? (k * 3) / 4 + 1 : k / 2)
        guard r.bytes.count >= 40 + arrBytes else { throw SketchError.truncated("HLL registers") }
        becomeEmptyHLL(lgK: lgK)
        let hip = Double(bitPattern: r.u64(8))
        if tgt == 2 {
            for i in 0 ..< k { registers[i] = r.bytes[40 + i] }
            curMin = r.bytes[6]
            kxq0 = Double(bitPattern: r.u64(16))
            kxq1 = Double(bitPattern: r.u64(24))
            numAtCurMin = r.u32(32)
        } else {
            registers = tgt == 1 ? Self.unpackHLL6(r, k: k) : try Self.unpackHLL4(r, lgK: lgK, compact: compact)
            // Conversion to HLL_8 (Hll8Array(const HllArray&)): kxq rebuilt from the registers.
            rebuildFromRegisters()
        }
        guard registers.allSatisfy({ $0 <= 63 }) else { throw SketchError.invalidFormat("HLL register > 63") }
        hipAccum = hip
    }

    static func unpackHLL6(_ r: ByteReader, k: Int) -> [UInt8] {
        (0 ..< k).map { i in
            let bit = i * 6, byte = 40 + (bit >> 3)
            let two = UInt16(r.bytes[byte + 1]) << 8 | UInt16(r.bytes[byte])
            return UInt8(truncatingIfNeeded: (two >> UInt16(bit & 7)) & 0x3F)
        }
    }

    /// HLL_4: nibble + curMin, nibble 15 = look the value up in the aux (exception) map.
    static func unpackHLL4(_ r: ByteReader, lgK: Int, compact: Bool) throws -> [UInt8] {
        let k = 1 << lgK, curMin = r.bytes[6]
        var regs = [UInt8].zeros(k)
        for i in 0 ..< k {
            let b = r.bytes[40 + (i >> 1)]
            let nib = i & 1 == 1 ? b >> 4 : b & 0x0F
            if nib != 15 { regs[i] = nib + curMin }  // 15 = AUX_TOKEN, filled below
        }
        let auxCount = Int(r.u32(36))
        let auxStart = 40 + k / 2
        let slots = compact ? auxCount : (auxCount > 0 ? 1 << Int(r.bytes[4]) : 0)
        guard r.bytes.count >= auxStart + 4 * slots else { throw SketchError.truncated("HLL_4 aux map") }
        var found = 0
        for j in 0 ..< slots {
            let pair = r.u32(auxStart + 4 * j)
            if pair == 0 { continue }
            regs[Int(pair & 0x3FF_FFFF) & (k - 1)] = UInt8(pair >> 26)
            found += 1
        }
        guard found == auxCount else { throw SketchError.invalidFormat("HLL_4 aux count mismatch") }
        return regs
    }

    /// Recomputes kxq0/kxq1/numAtCurMin from the registers in index order, the way
    /// Hll8Array's converting constructor does (what `get_result(HLL_8)` serializes
    /// when no estimate was taken first). curMin is 0 for HLL_8.
    mutating func rebuildFromRegisters() {
        var q0 = Double(1 << lgK), q1 = 0.0
        var zeros = UInt32(1 << lgK)
        for v in registers where v != 0 {
            q0 -= 1.0
            if v < 32 { q0 += Self.invPow2(v) } else { q1 += Self.invPow2(v) }
            zeros -= 1
        }
        kxq0 = q0
        kxq1 = q1
        numAtCurMin = zeros
        curMin = 0
        rebuildPending = false
    }
}

/// Little-endian reads from a byte array (bounds are checked by the callers).
struct ByteReader {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    func u32(_ at: Int) -> UInt32 {
        var v: UInt32 = 0
        for i in 0 ..< 4 { v |= UInt32(bytes[at + i]) << UInt32(8 * i) }
        return v
    }
    func u64(_ at: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0 ..< 8 { v |= UInt64(bytes[at + i]) << UInt64(8 * i) }
        return v
    }
}

