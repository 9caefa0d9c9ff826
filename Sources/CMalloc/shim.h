// glibc's heap tuning, which the Glibc module does not show (malloc.h):
// the daemon keeps checkpoint-sized buffers on its heap and gives the heap's
// free pages back to the kernel now and then (docs/architecture.md
// "The daemon's heap"). A header only: nothing to link. Elsewhere than
// glibc both are no-ops that answer 0.
#ifndef QOS_MALLOC_SHIM_H
#define QOS_MALLOC_SHIM_H

#if defined(__linux__) && __has_include(<malloc.h>)
#include <malloc.h>
#endif

/// Buffers below `mmap_threshold` bytes come from the heap, not from fresh
/// mappings; up to `trim_threshold` free bytes at a heap's top are kept.
/// 1 when glibc took both.
static inline int qos_heap_tune(int mmap_threshold, int trim_threshold) {
#ifdef __GLIBC__
    return mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 && mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1;
#else
    (void)mmap_threshold; (void)trim_threshold;
    return 0;
#endif
}

/// Gives every whole free page of every arena back to the kernel.
/// 1 when some memory was released.
static inline int qos_heap_trim(void) {
#ifdef __GLIBC__
    return malloc_trim(0);
#else
    return 0;
#endif
}

#endif
