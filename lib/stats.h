/* The live counters and the recovery ring of every object: the calls that
 * the objects make. The block itself sits in every segment header
 * (struct mps__stats in internal.h); stats.c reads it back for inspect.c.
 *
 * The plain calls are made with the object's mutex held, which orders all
 * updates of one object's counters: an increment is a relaxed load and
 * store, no locked instruction, on the cache line of the calling thread's
 * shard, which the object's hot path does not otherwise write. Lock-free
 * paths use the _lockfree calls, atomic read-modify-writes, for events
 * that are rare (a timeout, a new peak). Built with MPS_WITHOUT_STATS
 * (configure --disable-stats), the calls compile to nothing and the block
 * stays zero; its layout does not change.
 */
#ifndef MPSHARE_STATS_H
#define MPSHARE_STATS_H

#include "internal.h"

#if defined(MPS_WITHOUT_STATS)
#define MPS__STATS 0
#else
#define MPS__STATS 1
#endif

/* Counter ids. Lock-like objects (lock, rlock, a value's or array's lock): */
enum { MPS__ST_ACQUIRED, MPS__ST_CONTENDED, MPS__ST_OWNER_DIED };
/* Queues (PEAK is a maximum, not a sum; HOLES: slots of dead producers,
 * which gets skip): */
enum {
  MPS__ST_PUTS,
  MPS__ST_GETS,
  MPS__ST_PUT_TIMEOUTS,
  MPS__ST_GET_TIMEOUTS,
  MPS__ST_PEAK,
  MPS__ST_HOLES
};
/* Semaphores, events, conditions, barriers: calls that waited, waits that
 * gave up, and calls that woke waiters (release, set, notify, a round's end). */
enum { MPS__ST_WAITS, MPS__ST_TIMEOUTS, MPS__ST_WAKEUPS };

/* What a recovery repaired (the ring's `what`). */
enum mps__repair {
  MPS__REPAIR_LOCK = 1,    /* a lock's owner died: made consistent, MPS_OWNER_DIED returned */
  MPS__REPAIR_WAKE,        /* an internal mutex's owner died: every sleeper woken */
  MPS__REPAIR_QUEUE_LOG,   /* a queue's holder died: its redo record checked, sleepers woken */
  MPS__REPAIR_COND_SLOT,   /* a condition's waiter died: its slot freed */
  MPS__REPAIR_QUEUE_HOLES, /* a producer died mid-put: its unpublished slots made holes */
  MPS__REPAIR_END_
};

/* The calling thread's shard is mps__stat_line (internal.h, set by
 * proc.c with the thread's id): a counter update is one thread-local load
 * and the load and store of the counter, with no test. The shard only
 * spreads writers over lines; it never makes a count right or wrong. */
static inline _Atomic uint64_t *mps__stat_at(struct mps__hdr *h, unsigned id)
{
  char *line = (char *)h->stats.shard + mps__stat_line;
  return &((struct mps__stat_shard *)(void *)line)->c[id];
}

/* Adds n to counter id of the object whose header is h (mutex held). */
static inline void mps__stat_add(struct mps__hdr *h, unsigned id, uint64_t n)
{
#if MPS__STATS && defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
  /* One unlocked add to memory: a relaxed load and store are three
   * instructions, and the lock's whole acquire is under two hundred. The
   * mutex orders the writers; an aligned 8-byte store is atomic for the
   * readers on x86-64, as the relaxed store is. */
  __asm__("addq %1, %0" : "+m"(*(uint64_t *)mps__stat_at(h, id)) : "er"(n));
#elif MPS__STATS
  _Atomic uint64_t *c = mps__stat_at(h, id);
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
#else
  (void)h, (void)id, (void)n;
#endif
}

static inline void mps__stat_inc(struct mps__hdr *h, unsigned id) { mps__stat_add(h, id, 1); }

/* Raises counter id to v if it is lower (a peak; mutex held). */
static inline void mps__stat_max(struct mps__hdr *h, unsigned id, uint64_t v)
{
#if MPS__STATS
  _Atomic uint64_t *c = mps__stat_at(h, id);
  if (atomic_load_explicit(c, memory_order_relaxed) < v)
    atomic_store_explicit(c, v, memory_order_relaxed);
#else
  (void)h, (void)id, (void)v;
#endif
}

/* For a lock-free path (the FIFO queue's timeouts and peak), where no
 * mutex orders the updates: atomic read-modify-writes on the calling
 * thread's shard, exact however many threads share it. Their locked
 * instructions are paid only for rare events: a wait that gave up, a
 * claim that finds a new peak (queue_ring.c). */
static inline void mps__stat_add_lockfree(struct mps__hdr *h, unsigned id, uint64_t n)
{
#if MPS__STATS
  atomic_fetch_add_explicit(mps__stat_at(h, id), n, memory_order_relaxed);
#else
  (void)h, (void)id, (void)n;
#endif
}

static inline void mps__stat_max_lockfree(struct mps__hdr *h, unsigned id, uint64_t v)
{
#if MPS__STATS
  _Atomic uint64_t *c = mps__stat_at(h, id);
  uint64_t cur = atomic_load_explicit(c, memory_order_relaxed);
  while (cur < v && !atomic_compare_exchange_weak_explicit(c, &cur, v, memory_order_relaxed,
                                                           memory_order_relaxed))
    ;
#else
  (void)h, (void)id, (void)v;
#endif
}

/* Records a crash recovery in the object's ring: this process, now, what
 * (mutex held). Recorded even without counters: recoveries are rare. */
void mps__stat_recovered(struct mps__hdr *h, enum mps__repair what);

/* ---- reading, for inspect.c, from a copy of a header ------------------- */

/* Counter id summed over the shards (PEAK: their maximum). */
uint64_t mps__stat_read(const struct mps__hdr *h, unsigned id, bool is_max);

/* What a repair code means, in words; NULL for an unknown code. */
const char *mps__repair_name(uint32_t what);

#endif
