/* Private declarations of the queue: its shared layout and the split
 * between queue.c (create/open/close, the mutex-based LIFO and priority
 * queues, dispatch), queue_ring.c (the lock-free FIFO core),
 * queue_repair.c (dead claimers made into holes, under the mutex) and
 * queue_token.c (per-thread liveness tokens and the handle's lifetime). */
#ifndef MPSHARE_QUEUE_INTERNAL_H
#define MPSHARE_QUEUE_INTERNAL_H

#include "internal.h"

/* ---- shared layout --------------------------------------------------- */

/* Liveness tokens of a FIFO queue: one robust mutex per producing thread,
 * held by that thread while it may put, and the range of tickets it is
 * claiming or publishing (its intent: ticket << 12 | count, 0 for none).
 * The kernel marks a token owner-died when its thread dies, which is how
 * a stalled consumer knows, exactly, that a claim will never be
 * published. */
#define MPS__QTOK       256
#define MPS__INTENT_MAX 4095u /* tickets per claim */

/* Shared: its size and key offsets are folded into QUEUE_LAYOUT (queue.c). */
struct mps__qtok {
  mps__mutex mu;
  alignas(MPS__CACHELINE) _Atomic uint64_t intent;
};

/* The FIFO repair's redo record: one ticket made a hole, and the value of
 * `skipped` once it is. Applying it twice is harmless. */
/* Shared: its size and key offsets are folded into QUEUE_LAYOUT (queue.c). */
struct mps__rlog {
  _Atomic uint32_t valid;
  uint32_t pad_;
  uint64_t ticket;
  uint64_t skipped;
};

/* The FIFO core's own counters, each in its own 128-byte block (the
 * adjacent-line prefetcher pulls pairs of lines). */
/* Shared: its size and key offsets are folded into QUEUE_LAYOUT (queue.c). */
struct mps__ring {
  alignas(128) _Atomic uint64_t done;    /* task_done calls; bit 63: joiners sleep */
  alignas(128) _Atomic uint64_t skipped; /* holes, written under the mutex */
  struct mps__rlog log;
  _Atomic uint32_t ntok; /* tokens ever taken: scans stop there */
  alignas(128) char end_[1];
};

/* Shared: its size and key offsets are folded into QUEUE_LAYOUT (queue.c). */
struct mps__queue_shm {
  struct mps__hdr hdr;
  uint64_t maxsize;
  uint64_t max_msg;
  uint64_t slot_size;
  uint64_t heap_off; /* 0 unless MPS_PRIORITY */
  uint64_t slots_off;
  uint32_t order;
  uint32_t pad_;
  uint64_t tok_off; /* 0 unless MPS_FIFO */
  mps__mutex mu;
  /* FIFO: tickets committed by gets (bit 63: producers sleep for room);
   * LIFO/priority: messages ever got. */
  alignas(MPS__CACHELINE) _Atomic uint64_t head;
  /* FIFO: tickets claimed by puts (bit 63: shut down); LIFO/priority:
   * messages ever put. */
  alignas(MPS__CACHELINE) _Atomic uint64_t tail;
  alignas(MPS__CACHELINE) _Atomic uint64_t done; /* LIFO/priority */
  _Atomic uint32_t shut;                         /* LIFO/priority */
  alignas(MPS__CACHELINE) mps__waitq not_empty;
  alignas(MPS__CACHELINE) mps__waitq not_full;
  alignas(MPS__CACHELINE) mps__waitq all_done;
  alignas(MPS__CACHELINE) struct mps__qlog log;
  struct mps__ring ring; /* FIFO */
};

/* A payload slot. `state` is the FIFO's per-slot word (unused otherwise):
 * seq << 3 | phase << 1 | W, where seq grows by maxsize with every ticket
 * published here (mps__q_pos), phase is FULL or SKIP, and W says that
 * consumers sleep on it. Its low 32 bits, the futex word, change on every
 * publish. */
/* Shared: its size and key offsets are folded into QUEUE_LAYOUT (queue.c). */
struct mps__slot {
  _Atomic uint64_t state;
  uint64_t len;
  unsigned char data[];
};

#define MPS__ST_W        1u
#define MPS__ST_FULL     (1u << 1)
#define MPS__ST_SKIP     (2u << 1)
#define MPS__HEAD_HW     (UINT64_C(1) << 63) /* producers sleep for room */
#define MPS__TAIL_CLOSED (UINT64_C(1) << 63) /* shut down */
#define MPS__DONE_W      (UINT64_C(1) << 63) /* joiners sleep */
#define MPS__TICKETS     (~(UINT64_C(1) << 63))

/* ---- the handle -------------------------------------------------------- */

/* A process's handle. The configuration is copied from the segment once,
 * after it was checked, so that later writes to it cannot mislead us. */
struct mps_queue {
  mps__seg seg;
  struct mps__queue_shm *s;
  struct mps__qent *heap;
  unsigned char *slots;
  struct mps__qtok *tok; /* FIFO only */
  uint64_t cap, max_msg, slot_size;
  bool cap_pow2;
  mps_order order;
  /* Process-local: a recent head, so that a put needs not read the
   * consumers' line every time; references (the open handle and each
   * thread that used it), the last of which unmaps; the list of handles,
   * for the atfork child. (The handle comes from calloc: no alignas.) */
  _Atomic uint64_t head_cache;
  /* Process-local: the deepest this handle has recorded for the peak
   * counter, and the cached head's depth at which a put reloads head for
   * it: that plus maxsize/16, at most maxsize (both 0 at first;
   * queue_ring.c). */
  _Atomic uint64_t peak_seen, reload_at;
  _Atomic unsigned refs;
  bool closed;
  struct mps_queue *next_open, **prev_open;
  struct mps__rq *remote; /* a redis:// queue (queue_redis.c); NULL: local */
};

static inline struct mps__slot *mps__q_slot(const mps_queue *q, uint64_t i)
{
  return (struct mps__slot *)(q->slots + i * q->slot_size);
}

/* Where ticket x lives: its slot, and the slot word's sequence before x
 * is published (base: x minus its slot index, the ticket that starts its
 * lap; 0 for the first lap, as the segment starts zeroed) and once it is
 * (base + maxsize). No division when maxsize is a power of two: a put and
 * a get each compute this once per message. */
#define MPS__SEQ_MASK ((UINT64_C(1) << 61) - 1)
struct mps__pos {
  struct mps__slot *sl;
  uint64_t base;
};
static inline struct mps__pos mps__q_pos(const mps_queue *q, uint64_t x)
{
  uint64_t i = q->cap_pow2 ? x & (q->cap - 1) : x % q->cap;
  return (struct mps__pos){mps__q_slot(q, i), x - i};
}
static inline uint64_t mps__st_pub(const mps_queue *q, struct mps__pos p, unsigned phase)
{
  return ((p.base + q->cap) & MPS__SEQ_MASK) << 3 | phase;
}
static inline bool mps__st_is_unpub(uint64_t st, struct mps__pos p)
{
  return st >> 3 == (p.base & MPS__SEQ_MASK);
}
static inline bool mps__st_is_pub(const mps_queue *q, uint64_t st, struct mps__pos p)
{
  return st >> 3 == ((p.base + q->cap) & MPS__SEQ_MASK);
}

/* The futex word inside a 64-bit counter: its low half. */
static inline _Atomic uint32_t *mps__lo32(_Atomic uint64_t *w)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return (_Atomic uint32_t *)(void *)w;
#else
  return (_Atomic uint32_t *)(void *)w + 1;
#endif
}

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free in shared memory");

/* ---- test-only crash points ------------------------------------------- */

/* A crash point names one window of a queue call. Builds with
 * -DMPS_CRASHPOINTS (the test suite's own copy of the library, never the
 * installed one) SIGKILL the process at an armed point on its n-th hit;
 * other builds compile them away. */
enum mps__crash {
  MPS__CP_NONE,
  MPS__CP_PUT_TOKEN,      /* token taken (after its recovery, if any) */
  MPS__CP_PUT_INTENT,     /* intent stored, tail not claimed */
  MPS__CP_PUT_CLAIMED,    /* tickets claimed, no payload written */
  MPS__CP_PUT_PAYLOAD,    /* half of a payload written */
  MPS__CP_PUT_PUBLISH,    /* some of a batch published, not its first */
  MPS__CP_PUT_WAKE,       /* all published, sleepers not woken */
  MPS__CP_PUT_CLEAR,      /* all published, intent not cleared */
  MPS__CP_PUT_SLEEP,      /* producer marked asleep for room, not asleep */
  MPS__CP_GET_COPIED,     /* messages copied, head not committed */
  MPS__CP_GET_COMMITTED,  /* head committed, producers not woken */
  MPS__CP_GET_SLEEP,      /* consumer marked asleep on a slot, not asleep */
  MPS__CP_DONE_BEFORE,    /* task_done before its commit */
  MPS__CP_DONE_AFTER,     /* task_done committed, joiners not woken */
  MPS__CP_SHUT_LOCKED,    /* shutdown holds the mutex, not closed */
  MPS__CP_SHUT_CLOSED,    /* closed, sleepers not woken */
  MPS__CP_REPAIR_TOKEN,   /* a dead token taken over, nothing logged */
  MPS__CP_REPAIR_LOGGED,  /* redo record valid, nothing applied */
  MPS__CP_REPAIR_SKIPPED, /* the slot is a hole, skipped not stored */
  MPS__CP_REPAIR_COUNTED, /* skipped stored, record still valid */
  MPS__CP_REPAIR_CLEAR,   /* holes made, the dead intent not cleared */
  MPS__CP_COUNT
};

#ifdef MPS_CRASHPOINTS
void mps__crashpoint(enum mps__crash id);
/* Arms point id to SIGKILL this process on its hit-th hit (0 disarms). */
void mps__crash_arm(enum mps__crash id, unsigned hit);
/* The same with another signal than SIGKILL (SIGSTOP, say). */
void mps__crash_arm_signal(enum mps__crash id, unsigned hit, int signo);
/* Holes made in q so far, and tickets ever claimed (white-box, for the
 * crash-point test). */
uint64_t mps__queue_skipped(mps_queue *q);
uint64_t mps__queue_tickets(mps_queue *q);
#define MPS__CRASHPOINT(id) mps__crashpoint(id)
#else
#define MPS__CRASHPOINT(id) ((void)0)
#endif

/* ---- queue_ring.c -------------------------------------------------------- */

ssize_t mps__ring_put(mps_queue *q, const void *const *msgs, const size_t *lens, size_t n,
                      const mps__deadline *d);
ssize_t mps__ring_get(mps_queue *q, void *buf, size_t cap, size_t *lens, size_t max,
                      const mps__deadline *d);
size_t mps__ring_qsize(const mps_queue *q);
/* Tickets ever committed by gets (head) and ever claimed by puts (tail)
 * of a FIFO queue. With one consumer per queue (a worker's inbox), a get
 * killed after copying ticket x committed it exactly when head > x: what
 * a pool needs to tell a task that will run elsewhere from one that died
 * with its worker. */
uint64_t mps__ring_head(const mps_queue *q);
uint64_t mps__ring_tail(const mps_queue *q);
int mps__ring_task_done(mps_queue *q);
int mps__ring_join(mps_queue *q, const mps__deadline *d);
int mps__ring_shutdown(mps_queue *q);

/* ---- queue_repair.c ------------------------------------------------------ */

/* Whether some token holds an intent and its thread is dead, or a dead
 * repairer left its redo record to apply. */
bool mps__ring_dead_claims(mps_queue *q);
/* Turns every ticket claimed by a dead thread and never published into a
 * hole, under the mutex, taken by the deadline d (NULL: no deadline): a
 * stopped repairer must not make a timed call overrun. 0, or the
 * deadline's error. */
int mps__ring_repair(mps_queue *q, const mps__deadline *d);
/* The calling thread took token k from a dead thread: make the dead
 * thread's unpublished tickets holes, clear the intent. 0 or the
 * deadline's error (the intent stays for the next repairer). */
int mps__ring_repair_token(mps_queue *q, unsigned k, const mps__deadline *d);
/* Takes the queue mutex for a repair or a shutdown, by d (NULL: none),
 * applying a pending redo record first. 0 or the deadline's error. */
int mps__ring_lock(mps_queue *q, const mps__deadline *d);
/* Wakes whoever sleeps on slot x's word. */
void mps__ring_wake_slot(mps_queue *q, uint64_t x);

/* ---- queue_token.c ------------------------------------------------------- */

/* The calling thread's token index for q, taken on first use (a put), or
 * the deadline's error; -EPROTO. */
int mps__qtok_get(mps_queue *q, const mps__deadline *d);
/* Registers a freshly made handle (refs = 1, in the list of handles). */
void mps__qtok_register(mps_queue *q);
/* close(): drops the caller's token and the open reference; the last
 * reference unmaps. */
void mps__qtok_close(mps_queue *q);
/* Makes the calling thread a user of q (until it exits or closes q), so
 * that a close by another thread never unmaps under one of its calls.
 * 0 or -ENOMEM. */
int mps__qtok_use(mps_queue *q);

#endif
