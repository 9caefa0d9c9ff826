// CRC-32C with the CPU's own instruction, which Swift has no spelling for:
// SSE 4.2's crc32 on x86-64 computes exactly the checksum that seals every
// checkpoint manifest, partition snapshot and ledger (the Castagnoli
// polynomial, bit-reflected), 8 bytes per instruction instead of a table
// lookup per byte. Sources/QoSCore/CRC32C.swift uses it when the CPU has it
// and keeps its tables for every other CPU. A header only: nothing to link.
#ifndef QOS_CRC32C_SHIM_H
#define QOS_CRC32C_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>

/// 1 when the CPU executes SSE 4.2's crc32 (CPUID leaf 1, ECX bit 20).
static inline int qos_crc32c_hardware(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c & bit_SSE4_2) != 0;
}

/// Folds `n` bytes at `data` into the CRC register `reg` (the running value
/// before the final inversion) and returns the new register. Call only when
/// qos_crc32c_hardware() is 1.
__attribute__((target("sse4.2")))
static inline uint32_t qos_crc32c_fold(uint32_t reg, const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    uint64_t r = reg;
    while (n >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        r = __builtin_ia32_crc32di(r, word);
        p += 8;
        n -= 8;
    }
    uint32_t r32 = (uint32_t)r;
    while (n > 0) {
        r32 = __builtin_ia32_crc32qi(r32, *p);
        p++;
        n--;
    }
    return r32;
}
#else
static inline int qos_crc32c_hardware(void) { return 0; }
static inline uint32_t qos_crc32c_fold(uint32_t reg, const void *data, size_t n) {
    (void)data; (void)n;
    return reg;  /* never called: qos_crc32c_hardware() is 0 */
}
#endif

#endif
