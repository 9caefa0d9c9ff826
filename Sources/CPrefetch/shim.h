// The CPU's prefetch hint, which Swift has no spelling for: the engine asks
// for the session-table bucket and the session of a beacon a few beacons
// ahead, so their cache misses overlap with the work on the beacons before
// (docs/architecture.md "Threads"). A header only: nothing to link.
#ifndef QOS_PREFETCH_SHIM_H
#define QOS_PREFETCH_SHIM_H

static inline void qos_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif
