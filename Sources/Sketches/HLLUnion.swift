// Union with the semantics of the DataSketches union gadget
// (apache/datasketches-cpp HllUnion-internal.hpp `union_impl`, `copy_or_downsample`,
// Hll8Array::mergeHll / mergeList), with `self` as the gadget and lg_max_k = self.lgK.

extension HLLSketch {
    /// Union of `other` into `self`. The result is HLL_8 at self's lgK, except when
    /// `other` is in HLL mode with a smaller lgK: then, as in DataSketches, the result
    /// is downsampled to other's lgK (registers cannot be refined).
    public mutating func merge(_ other: HLLSketch) {
        if other.isEmpty { return }
        if other.mode != .hll {
            if isEmpty && other.lgK == lgK {
                self = other  // copyAs(HLL_8)
            } else {
                for c in other.validCoupons { update(coupon: c) }
            }
        } else if isEmpty {
            self = Self.copyOrDownsample(other, lgK: lgK)
        } else if mode != .hll {
            let listCoupons = validCoupons
            self = Self.copyOrDownsample(other, lgK: lgK)
            for c in listCoupons { hllUpdate(c) }  // mergeList
        } else {
            if other.lgK < lgK { self = Self.copyOrDownsample(self, lgK: other.lgK) }
            mergeRegisters(other.registers)
            outOfOrder = true
            hipAccum = 0
        }
        if rebuildPending { rebuildFromRegisters() }
    }

    /// Returns the union of two sketches (`a` acts as the gadget).
    public static func union(_ a: HLLSketch, _ b: HLLSketch) -> HLLSketch {
        var u = a
        u.merge(b)
        return u
    }

    /// copy_or_downsample: an HLL-mode sketch with lgK <= target is copied; a larger one is
    /// folded into a fresh HLL_8 array at the target lgK (kxq left stale until the rebuild).
    static func copyOrDownsample(_ src: HLLSketch, lgK target: Int) -> HLLSketch {
        if src.lgK <= target { return src }
        var dst = HLLSketch(lgK: target)
        dst.becomeEmptyHLL(lgK: target)
        dst.mergeRegisters(src.registers)
        dst.hipAccum = src.hipAccum
        dst.outOfOrder = src.outOfOrder
        return dst
    }

    /// Register-wise max; a larger source is folded with `slot & (k - 1)`.
    mutating func mergeRegisters(_ src: [UInt8]) {
        let mask = registers.count - 1
        registers.withUnsafeMutableBufferPointer { dst in
            for (i, v) in src.enumerated() where v > dst[i & mask] { dst[i & mask] = v }
        }
        rebuildPending = true
    }
}
