/* Private declarations shared by the files of lib/. Names are mps__ and are
 * not exported from the library. */
#ifndef MPSHARE_INTERNAL_H
#define MPSHARE_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <mpshare.h>

#include "deadline.h"
#include "mutex.h"

#define MPS__ALIGN_UP(n, a) (((n) + (a)-1) / (a) * (a))

/* ---- spawn.c: forking and watching children ---------------------------- */

/* Forks. The child (0 returned) dies by SIGKILL with the forking thread when
 * die_with_parent, even if the parent died during the fork. The parent gets
 * the pid, or -EAGAIN / -ENOMEM. */
pid_t mps__fork(bool die_with_parent);
/* A pidfd for the caller's unreaped child, or a negative errno (-ENOSYS
 * without kernel support; seccomp profiles and valgrind refuse it too). */
int mps__pidfd_open(pid_t pid);
/* Whether the caller's unreaped child pid has exited; never reaps it. */
bool mps__child_exited(pid_t pid);
/* Sleeps until the unreaped child has exited or d passes, without reaping
 * it: on its pidfd when there is one (pidfd >= 0), else with waitid. 0 or
 * -ETIMEDOUT (also for timeout 0 while it runs). */
int mps__child_wait_exit(pid_t pid, int pidfd, const mps__deadline *d);

/* ---- proc.c: what /proc says about processes ---------------------------- */

/* This process's pid, cached (getpid is a system call); fork forgets it. */
extern pid_t mps__self_pid_cache;
pid_t mps__self_pid_slow(void);
static inline pid_t mps__self_pid(void)
{
  pid_t p = mps__self_pid_cache;
  return p != 0 ? p : mps__self_pid_slow();
}

/* The calling thread's id, cached per thread (gettid is a system call);
 * fork forgets it. Initial-exec TLS: a plain load, no call. */
extern __thread pid_t mps__self_tid_cache __attribute__((tls_model("initial-exec")));
pid_t mps__self_tid_slow(void);
static inline pid_t mps__self_tid(void)
{
  pid_t t = mps__self_tid_cache;
  return t != 0 ? t : mps__self_tid_slow();
}

/* Field 22 of /proc/<pid>/stat, the process's start time in clock ticks
 * after boot; 0 if there is no such process or it cannot be read. */
uint64_t mps__proc_start(pid_t pid);

/* Whether pid runs and is the process that started at `start` (so a
 * reused pid is not taken for the one recorded). start 0: pid runs. */
bool mps__proc_alive(pid_t pid, uint64_t start);

/* ---- segment.c: every shared object's memory ---------------------------- */

#define MPS__MAGIC UINT64_C(0x4d50534841524531) /* "MPSHARE1" */

/* Layout words are derived, never remembered (LMDB's MDB_LOCK_FORMAT does
 * the same): the sizes and key offsets of each shared struct are folded
 * into a 32-bit word by the compiler, so changing a shared struct changes
 * the word by itself, and builds that disagree refuse each other's
 * segments with EPROTO. MPS__FOLD is one FNV-1a step. */
#define MPS__FOLD(h, v)                 ((((uint32_t)(h)) ^ (uint32_t)(v)) * 16777619u)
#define MPS__FOLD2(h, a, b)             MPS__FOLD(MPS__FOLD(h, a), b)
#define MPS__FOLD3(h, a, b, c)          MPS__FOLD(MPS__FOLD2(h, a, b), c)
#define MPS__FOLD4(h, a, b, c, d)       MPS__FOLD2(MPS__FOLD2(h, a, b), c, d)
#define MPS__FOLD6(h, a, b, c, d, e, f) MPS__FOLD2(MPS__FOLD4(h, a, b, c, d), e, f)
/* Only for a change of meaning that no size or offset shows. */
#define MPS__LAYOUT_REV 2u

enum mps__kind {
  MPS__KIND_LOCK = 1,
  MPS__KIND_RLOCK,
  MPS__KIND_VALUE,
  MPS__KIND_ARRAY,
  MPS__KIND_SHM,
  MPS__KIND_SEMAPHORE,
  MPS__KIND_EVENT,
  MPS__KIND_COND,
  MPS__KIND_BARRIER,
  MPS__KIND_QUEUE,
  MPS__KIND_POOL,
  MPS__KIND_END_
};

/* ---- the counters block of every header (stats.h has its calls) -------- */

/* Every object's counters: MPS__STAT_N 64-bit counters whose meaning the
 * kind gives (stats.h), in MPS__STAT_SHARDS cache lines. A thread adds to
 * the line of its shard only (its thread id picks it), so that counting
 * never moves a line between two processes that take turns on a lock. */
#define MPS__STAT_N        8
#define MPS__STAT_SHARDS   8
#define MPS__RECOVERY_RING 16

/* 128 bytes apart: the adjacent-line prefetcher moves lines in pairs, so
 * two processes' shards in one pair would still pass it back and forth. */
/* Shared: its size and key offsets are folded into MPS__LAYOUT. */
struct mps__stat_shard {
  alignas(2 * MPS__CACHELINE) _Atomic uint64_t c[MPS__STAT_N];
};

/* The calling thread's shard, as a byte offset from the first: its id
 * modulo MPS__STAT_SHARDS, set whenever mps__self_tid_slow() looks the id
 * up, which it does at once in a process's first thread and in a forked
 * child (proc.c); shard 0 in a further thread until it needs its id.
 * Initial-exec TLS, as the id's cache. */
extern __thread uint32_t mps__stat_line __attribute__((tls_model("initial-exec")));

/* Shared: its size and key offsets are folded into MPS__LAYOUT. */
struct mps__recovery {
  int32_t pid;     /* the process that recovered */
  uint32_t what;   /* enum mps__repair */
  int64_t time_ns; /* CLOCK_REALTIME */
};

/* Shared layout: the shards, then the ring and the count of recoveries
 * ever recorded (entry n % 16 is the n-th). */
/* Shared: its size and key offsets are folded into MPS__LAYOUT. */
struct mps__stats {
  struct mps__stat_shard shard[MPS__STAT_SHARDS];
  alignas(2 * MPS__CACHELINE) _Atomic uint64_t recoveries;
  struct mps__recovery ring[MPS__RECOVERY_RING];
};

/* First bytes of every segment: what it is, who made it, its counters.
 * `magic` is written last by the creator (release), so an opener that sees
 * it also sees an initialised object. The first cache line is written once,
 * by the creator; the counters have lines of their own. */
/* Shared: its size and key offsets are folded into MPS__LAYOUT. */
struct mps__hdr {
  _Atomic uint64_t magic;
  uint32_t layout; /* MPS__LAYOUT: this header's own format */
  uint32_t kind;
  uint64_t size;       /* bytes of the whole segment, header included */
  uint32_t obj_layout; /* the kind's layout word (mps__seg_spec.layout) */
  int32_t creator_pid;
  uint64_t creator_start; /* field 22 of /proc/<pid>/stat: clock ticks after boot */
  uint32_t creator_uid;
  uint32_t version;   /* MPS_VERSION_NUMBER of the library that made it */
  int64_t created_ns; /* CLOCK_REALTIME */
  uint8_t pad_[8];
  struct mps__stats stats;
};

/* Layout word of the header, the counters and the primitives every object
 * embeds. */
#define MPS__LAYOUT                                                                                \
  MPS__FOLD6(MPS__FOLD6(MPS__LAYOUT_REV, sizeof(void *), sizeof(pthread_mutex_t),                  \
                        sizeof(struct mps__hdr), offsetof(struct mps__hdr, obj_layout),            \
                        offsetof(struct mps__hdr, created_ns), offsetof(struct mps__hdr, stats)),  \
             sizeof(struct mps__stats), offsetof(struct mps__stats, recoveries),                   \
             sizeof(struct mps__recovery), MPS__STAT_N, MPS__STAT_SHARDS,                          \
             sizeof(mps__mutex) + sizeof(mps__waitq))

/* One process's mapping of a segment. */
typedef struct mps__seg {
  struct mps__hdr *hdr; /* base of the mapping */
  size_t size;
  uint32_t magic; /* MPS__LIVE while the handle is open (after the words free() reuses) */
  int fd;         /* while being created: holds the creator's OFD lock; else -1 */
  char name[MPS_NAME_MAX + 2]; /* "/name" while being created, else "" */
} mps__seg;

/* Checks `name` against the shm_open rules of DESIGN.md and writes it with
 * one leading '/' to out. 0 or -EINVAL. */
int mps__name_check(const char *name, char out[MPS_NAME_MAX + 2]);

/* Maps a zeroed anonymous segment (inherited by fork) of `size` bytes, with
 * its header filled and published. 0, -EINVAL (size), -ENOMEM. Only the
 * same build reaches it, through fork, so its kind's layout word (0 when
 * called directly, as the pool does) is never compared. */
int mps__seg_anon(mps__seg *s, enum mps__kind kind, size_t size);

/* Creates the named segment (O_EXCL, mode 0600) zeroed, with its header
 * filled but not published: initialise the object, then mps__seg_publish(),
 * or mps__seg_abort() to unlink it on failure. 0, -EINVAL, -EEXIST, -ENOMEM,
 * -EACCES. */
int mps__seg_create(mps__seg *s, const char *name, enum mps__kind kind, size_t size);
void mps__seg_publish(mps__seg *s);
void mps__seg_abort(mps__seg *s);

/* Maps the named segment and checks its header: magic, layout, kind, and a
 * size equal to the file's and at least min_size. 0, -EINVAL, -ENOENT,
 * -EACCES, -EAGAIN (a live process is still creating it: retry),
 * -EPROTO (foreign, truncated, other kind or layout, or its creator died
 * before it was finished). */
int mps__seg_open(mps__seg *s, const char *name, enum mps__kind kind, size_t min_size);

void mps__seg_close(mps__seg *s);

/* Removes the local name `name` (mps_unlink, in queue.c, sends a redis://
 * one to the Redis backend first). 0, -EINVAL, -ENOENT, -EACCES. */
int mps__seg_unlink(const char *name);

/* How one kind of object makes or checks its segment. init fills a new,
 * zeroed object before it is published (NULL: nothing to fill); check
 * refuses a named one that an opener must not trust, with -EPROTO (NULL:
 * the header check is enough). layout is the kind's layout word, derived
 * from its shared struct (MPS__FOLD), stored by the creator and compared by
 * every opener. */
typedef struct mps__seg_spec {
  enum mps__kind kind;
  size_t size; /* create: the segment's bytes; open: the least a valid one has */
  int (*init)(void *shm, const void *arg);
  int (*check)(const void *shm, size_t size);
  const void *arg; /* init's */
  uint32_t layout;
} mps__seg_spec;

/* How mps__seg_object gets the segment. */
enum mps__seg_mode { MPS__SEG_ANON, MPS__SEG_CREATE, MPS__SEG_OPEN };

/* Allocates a zeroed handle of handle_size bytes, which starts with its
 * mps__seg (see MPS__SEG_HANDLE), and gives it its segment: a new anonymous
 * one (name unused), a new named one, or the named one opened. A NULL name
 * is a bad name (EINVAL) for CREATE and OPEN. Returns the handle, or NULL
 * with errno as mps__seg_anon, _create, _open, init or check said; then
 * nothing is left allocated or mapped, and a name this call created is
 * unlinked. */
void *mps__seg_object(size_t handle_size, enum mps__seg_mode mode, const char *name,
                      const mps__seg_spec *spec);

/* Closes the segment of a handle made by mps__seg_object, poisons its
 * magic and frees it. NULL is a no-op. Returns 0, or -EINVAL for a handle
 * that is not open (closed already). */
int mps__seg_free_handle(void *handle);

/* A live handle's magic word. Closing a handle overwrites it before the
 * handle is freed, so a second close, or a call after close, finds
 * something else there and fails with -EINVAL instead of using freed
 * memory's contents as pointers (as long as that memory was not handed out
 * again: AddressSanitizer catches every case). Every handle type has one:
 * the segment handles in their mps__seg, the others in a field of their
 * own, checked with MPS__OPEN(). */
#define MPS__LIVE UINT32_C(0x6d707331) /* "mps1" */
#define MPS__DEAD UINT32_C(0x6d707330) /* "mps0" */

/* Whether h, a handle with a `magic` field of its own (NULL allowed), is
 * open. */
#define MPS__OPEN(h) ((h) != NULL && (h)->magic == MPS__LIVE)

/* Whether h, a handle made by mps__seg_object (NULL allowed), is open. */
static inline bool mps__seg_live(const void *h)
{
  return h != NULL && ((const mps__seg *)h)->magic == MPS__LIVE;
}

/* For each handle type made by mps__seg_object. */
#define MPS__SEG_HANDLE(type)                                                                      \
  _Static_assert(offsetof(type, seg) == 0, #type " must start with its mps__seg")

/* Whether the reserved tail of an options struct is all zero: a non-zero
 * word is a field of a later version that this library does not know, so
 * the call fails with -EINVAL rather than ignore what the caller asked. */
static inline bool mps__reserved_zero(const unsigned long long r[MPS_OPTS_RESERVED])
{
  for (int i = 0; i < MPS_OPTS_RESERVED; i++)
    if (r[i] != 0)
      return false;
  return true;
}

/* The options structs keep their size for ever (common.h): a new field is
 * carved out of `reserved`, shrinking it so that these still hold. */
#if SIZE_MAX == UINT64_MAX
_Static_assert(sizeof(mps_queue_opts) == 88, "carve new fields out of mps_queue_opts.reserved");
_Static_assert(sizeof(mps_process_opts) == 80, "carve new fields out of mps_process_opts.reserved");
_Static_assert(sizeof(mps_pool_opts) == 120, "carve new fields out of mps_pool_opts.reserved");
#endif

/* Negative errno to errno + NULL for constructors. */
static inline void *mps__fail(int err)
{
  errno = -err;
  return NULL;
}

/* ---- lock.c: Lock and RLock ------------------------------------------- */

/* A handle on a mutex: its own segment, or borrowed from the segment of a
 * value or array (seg.hdr == NULL then; the owner closes it). */
struct mps_lock {
  mps__seg seg;
  mps__mutex *mu;
  struct mps__hdr *stats; /* the header holding the lock's counters */
};

/* Shared: its size and key offsets are folded into LOCK_LAYOUT (lock.c). */
struct mps__lock_shm {
  struct mps__hdr hdr;
  mps__mutex mu;
};

/* The shared struct of a value, array or shared memory (value.c), here so
 * that white-box tests can name its offsets. */
/* Shared: its size and key offsets are folded into BLOCK_LAYOUT (value.c). */
struct mps__block_shm {
  struct mps__hdr hdr;
  uint32_t type; /* an mps_type, or 0 for sized values and shared memory */
  uint32_t has_lock;
  uint64_t count; /* elements */
  uint64_t data_size;
  uint64_t data_off;
  mps__mutex mu;
};

/* A lock handle over a mutex that lives in another object's segment,
 * whose header h holds the lock's counters. */
void mps__lock_borrow(mps_lock *l, mps__mutex *mu, struct mps__hdr *h);

/* ---- wait.c: the one waiting mechanism --------------------------------- */

/* A sequence word that sleepers wait on with a futex, and a count of
 * sleepers so that waking costs no syscall when nobody sleeps. A sleeper
 * killed while asleep leaves `sleepers` one too high; that costs a spurious
 * wake syscall later, never a lost wake-up. */
/* Shared: its size and key offsets are folded into MPS__LAYOUT. */
typedef struct mps__waitq {
  _Atomic uint32_t seq;
  _Atomic uint32_t sleepers;
} mps__waitq;

/* Raw futex calls on a word in shared memory (not FUTEX_PRIVATE).
 * wait: 0 when woken, changed or interrupted (recheck), -ETIMEDOUT. */
int mps__futex_wait(_Atomic uint32_t *word, uint32_t expected, const mps__deadline *d);
void mps__futex_wake(_Atomic uint32_t *word, int n);

/* Waits like a condition variable over m, which the caller holds: releases
 * m, sleeps until mps__waitq_wake() or the deadline, and retakes m before
 * the same deadline. Spurious returns happen: the caller rechecks its
 * predicate in a loop. Returns with m held (*held true): 0, -EAGAIN
 * (timeout 0: does not sleep), -ETIMEDOUT, or MPS_OWNER_DIED when retaking
 * m found its owner dead (m is consistent; every sleeper has been woken;
 * the caller repairs what m protects). Returns without m (*held false) the
 * error of retaking it (the deadline passed while a stopped process held
 * it, or m is damaged): the caller must not unlock, and gives up. A
 * recovery is recorded in the ring of the object whose header is h (NULL:
 * the caller records its own). */
int mps__waitq_wait(mps__waitq *w, mps__mutex *m, const mps__deadline *d, struct mps__hdr *h,
                    bool *held);

/* Wakes up to n sleepers (INT32_MAX for all). Callable with or without the
 * mutex held; costs no syscall when nobody sleeps. */
void mps__waitq_wake(mps__waitq *w, int n);

/* Takes an object's internal mutex m, whose sleepers wait on w, before d.
 * If the previous holder died inside the object, wake every sleeper so
 * that all recheck: a dead holder's change is then never left unannounced,
 * whatever it had done. Objects whose every change is one store need no
 * other repair. Records such a recovery in the ring of the object whose
 * header is h (NULL: the caller records its own). 0 with m held, or
 * mps__mutex_lock's error without it (-EDEADLK: this thread is inside a
 * call on the same object, as from a signal handler; the outer call's
 * lock is left alone). */
int mps__waitq_enter(mps__waitq *w, mps__mutex *m, struct mps__hdr *h, const mps__deadline *d);

/* The same release-sleep-reacquire step on a word of the caller's: releases
 * m (held), sleeps while *word == expected, reacquires m without a
 * deadline (a Condition's lock is the caller's, and wait returns holding
 * it, as Python's does). For objects that wake one particular sleeper (a
 * word per sleeper, as Condition does). Returns 0, -EAGAIN, -ETIMEDOUT or
 * MPS_OWNER_DIED with m held, or -EPROTO (m damaged) without it. The waker
 * wakes the word's futex before it stores the new word, holding m, for the
 * reason given in wait.c. */
int mps__word_wait(_Atomic uint32_t *word, uint32_t expected, mps__mutex *m,
                   const mps__deadline *d);

/* Like mps__waitq_wake, for a caller that holds the mutex the sleepers wait
 * with: then a sleepers count of 0 is exact enough to skip even the bump of
 * the sequence word, so a wake costs one load when nobody sleeps. */
void mps__waitq_wake_held(mps__waitq *w, int n);

/* A bounded, adaptive busy wait before sleeping: spins while *word == old
 * for at most a few microseconds (less after spins that did not pay off,
 * none on a single CPU). True if the word changed. Never blocks. */
bool mps__spin_while_eq(const _Atomic uint64_t *word, uint64_t old);
/* The same while both *a == olda and *b == oldb. */
bool mps__spin_while_eq2(const _Atomic uint64_t *a, uint64_t olda, const _Atomic uint64_t *b,
                         uint64_t oldb);

/* ---- future.c: futures, a leaf that knows nothing of pools ------------- */

/* A hub: the lock and condition variable of one runner's futures (a pool
 * has its own, so that pools never wait for each other). Made with one
 * reference, the runner's; each future keeps one too, so a hub outlives
 * its runner as long as a future of it does. NULL when out of memory.
 * Release it without holding any future's lock. */
struct mps__future_hub;
struct mps__future_hub *mps__future_hub_new(void);
void mps__future_hub_release(struct mps__future_hub *h);

/* A pending future in hub h (mps__future_new: a hub of its own for
 * runners without one), with two references: the caller's and the
 * runner's (dropped with mps__future_release, or by
 * mps__future_complete_release). cancel(arg, f) is the step that cancels
 * its task: it returns 0 if the task will not run (f then completes with
 * -ECANCELED and the runner's reference passes to future.c), or -EBUSY. It
 * is called with the hub's lock held: it may take the runner's own lock,
 * never complete a future. NULL when out of memory. mps__future_new() has
 * no cancel step until mps__future_set_cancel(). */
mps_future *mps__future_new(void);
mps_future *mps__future_new_in(struct mps__future_hub *h, int (*cancel)(void *arg, mps_future *f),
                               void *arg);
void mps__future_set_cancel(mps_future *f, int (*cancel)(void *arg, mps_future *f), void *arg);
/* Completes f once (later calls are ignored): status 0 with the task's
 * value (and value bytes of data when value > 0), or a library error, and
 * runs f's done callback. mps__future_complete_release also drops the
 * runner's reference, under the same lock. Never call them holding a lock
 * the cancel step takes. */
void mps__future_complete(mps_future *f, int status, int64_t value, const void *data, size_t len);
void mps__future_complete_release(mps_future *f, int status, int64_t value, const void *data,
                                  size_t len);
void mps__future_release(mps_future *f);
/* mps_future_result() with a deadline, for a caller that checked f. */
int mps__future_wait(mps_future *f, ssize_t *value, void *out, size_t cap, const mps__deadline *d);

/* ---- queue_heap.c: the priority queue's heap --------------------------- */

/* One heap entry: a message's priority, its put sequence number (FIFO among
 * equal priorities) and the slot holding its payload. */
/* Shared: its size and key offsets are folded into QUEUE_LAYOUT (queue.c). */
struct mps__qent {
  int32_t prio;
  uint32_t slot;
  uint64_t seq;
};

/* A redo record: every store of one heap mutation, computed before the
 * first is made. Applying it twice gives the same heap, so a process that
 * finds it valid after an owner died simply applies it again. */
#define MPS__QLOG_MAX 40
/* Shared: its size and key offsets are folded into QUEUE_LAYOUT (queue.c). */
struct mps__qlog {
  _Atomic uint32_t valid;
  uint32_t n;
  uint64_t head, tail; /* the queue's counters after the mutation */
  struct {
    uint64_t pos;
    struct mps__qent e;
  } w[MPS__QLOG_MAX];
};

/* Plans inserting e into the heap of `count` entries (heap[count] is free).
 * Plans removing the root of the heap of `count` > 0 entries; the root's
 * slot becomes the free slot at heap[count - 1]. */
void mps__heap_plan_push(const struct mps__qent *heap, uint64_t count, struct mps__qent e,
                         struct mps__qlog *log);
void mps__heap_plan_pop(const struct mps__qent *heap, uint64_t count, struct mps__qlog *log);

#endif
