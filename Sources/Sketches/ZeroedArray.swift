// Arrays of zeros for sketch storage, allocated where the element type is
// known at compile time.
//
// `Array(repeating:count:)` allocates in the standard library's generic
// code, which finds the array's storage class at run time: a lookup in the
// runtime's metadata cache, about 550 instructions per array before
// malloc. A sketch allocates whenever it starts (HLL coupons) or widens
// (DDSketch bins): 240 000 times in a catch-up of 1 M beacons
// (bench/results/speed.md section 59). `reserveCapacity` on an empty array
// takes the growth path the compiler specializes for the element type, so
// the storage class comes from a cache in this module.

extension Array where Element: FixedWidthInteger {
    /// `count` zeros, as `Array(repeating: 0, count: count)`.
    @inline(__always) static func zeros(_ count: Int) -> [Element] {
        var a: [Element] = []
        a.reserveCapacity(count)
        a.append(contentsOf: repeatElement(0, count: count))
        return a
    }
}

extension ContiguousArray where Element == Double {
    /// `count` zeros, as `ContiguousArray(repeating: 0, count: count)`.
    @inline(__always) static func zeros(_ count: Int) -> ContiguousArray<Double> {
        var a = ContiguousArray<Double>()
        a.reserveCapacity(count)
        a.append(contentsOf: repeatElement(0, count: count))
        return a
    }
}
