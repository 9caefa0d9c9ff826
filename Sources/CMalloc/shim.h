// The process's allocator: mimalloc (Debian's libmimalloc, linked in by this
// module's map ahead of the C library, so every malloc and free of the
// process — the Swift runtime's, libzstd's, librdkafka's — is mimalloc's).
// mimalloc gives a page back to the kernel some time after it empties; the
// daemon also has it do so now and then (docs/architecture.md
// "The daemon's heap").
// Debian ships no pkg-config file for it: the map links `mimalloc` by name.
#ifndef QOS_MALLOC_SHIM_H
#define QOS_MALLOC_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <mimalloc.h>

/// Gives back to the kernel now what is free past mimalloc's decommit delay
/// (the calling thread's, and that of threads that ended), which otherwise
/// waits for the owner's next allocation. Always 1: mimalloc does not say
/// how much it released.
static inline int qos_heap_trim(void) {
    mi_collect(true);
    return 1;
}

/// Whether `malloc` is mimalloc's: a block from the C `malloc` lies in
/// mimalloc's heap. False when the C library's allocator won the link.
static inline bool qos_heap_is_mimalloc(void) {
    void *p = malloc(48);
    bool mine = p != NULL && mi_is_in_heap_region(p);
    free(p);
    return mine;
}

/// mimalloc's version (major * 100 + minor * 10 + patch, e.g. 209).
static inline int qos_heap_version(void) { return mi_version(); }

#endif
