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
#include <time.h>

#include <mpshare.h>

#define MPS__CACHELINE      64
#define MPS__ALIGN_UP(n, a) (((n) + (a)-1) / (a) * (a))

/* ---- deadline.c: timeouts ---------------------------------------------- */

enum mps__deadline_kind { MPS__FOREVER, MPS__ONCE, MPS__TIMED };

/* A timeout turned into an absolute point on CLOCK_MONOTONIC, once, at the
 * start of a call, so that retries inside the call do not extend it. */
typedef struct mps__deadline {
  enum mps__deadline_kind kind;
  struct timespec at; /* MPS__TIMED only */
} mps__deadline;

/* 0, or -EINVAL for NaN. */
int mps__deadline_init(mps__deadline *d, double timeout);
/* The earlier of d and ns nanoseconds from now, as a timed deadline: one
 * bounded slice of a longer sleep. */
void mps__deadline_slice(const mps__deadline *d, long ns, mps__deadline *out);
bool mps__deadline_passed(const mps__deadline *d);
/* The error for "gave up waiting": -EAGAIN for timeout 0, else -ETIMEDOUT. */
int mps__deadline_error(const mps__deadline *d);
/* Seconds on CLOCK_MONOTONIC. */
double mps__now(void);
/* The time left before d (TIMED), for ppoll(): 0, or -ETIMEDOUT once it
 * has passed (ONCE: always passed; FOREVER: 0 with *left zero). */
int mps__deadline_left(const mps__deadline *d, struct timespec *left);
/* The time left before d in poll()'s milliseconds, rounded up: -1 for
 * FOREVER, 0 once passed. */
int mps__deadline_poll_ms(const mps__deadline *d);

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

/* ---- segment.c: every shared object's memory ---------------------------- */

#define MPS__MAGIC UINT64_C(0x4d50534841524531) /* "MPSHARE1" */
/* Layout version: bump MPS__LAYOUT_REV when any shared struct changes. The
 * sizes of the pthread types and of a pointer are part of it, so that builds
 * with different ABIs refuse each other's segments. */
#define MPS__LAYOUT_REV 2u
#define MPS__LAYOUT                                                                                \
  ((MPS__LAYOUT_REV << 24) | ((uint32_t)sizeof(pthread_mutex_t) << 8) | (uint32_t)sizeof(void *))

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
};

/* First bytes of every segment. `magic` is written last by the creator
 * (release), so an opener that sees it also sees an initialised object. */
struct mps__hdr {
  _Atomic uint64_t magic;
  uint32_t layout;
  uint32_t kind;
  uint64_t size; /* bytes of the whole segment, header included */
  uint8_t pad_[MPS__CACHELINE - 24];
};

/* One process's mapping of a segment. */
typedef struct mps__seg {
  struct mps__hdr *hdr; /* base of the mapping */
  size_t size;
  char name[MPS_NAME_MAX + 2]; /* "/name" while being created, else "" */
} mps__seg;

/* Checks `name` against the shm_open rules of DESIGN.md and writes it with
 * one leading '/' to out. 0 or -EINVAL. */
int mps__name_check(const char *name, char out[MPS_NAME_MAX + 2]);

/* Maps a zeroed anonymous segment (inherited by fork) of `size` bytes, with
 * its header filled and published. 0, -EINVAL (size), -ENOMEM. */
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
 * -EACCES, -EPROTO (foreign, truncated, other kind or layout). */
int mps__seg_open(mps__seg *s, const char *name, enum mps__kind kind, size_t min_size);

void mps__seg_close(mps__seg *s);

/* How one kind of object makes or checks its segment. init fills a new,
 * zeroed object before it is published (NULL: nothing to fill); check
 * refuses a named one that an opener must not trust, with -EPROTO (NULL:
 * the header check is enough). */
typedef struct mps__seg_spec {
  enum mps__kind kind;
  size_t size; /* create: the segment's bytes; open: the least a valid one has */
  int (*init)(void *shm, const void *arg);
  int (*check)(const void *shm, size_t size);
  const void *arg; /* init's */
} mps__seg_spec;

/* Allocates a zeroed handle of handle_size bytes, which starts with its
 * mps__seg (see MPS__SEG_HANDLE), and gives it its segment: anonymous when
 * create and name is NULL, created when create, else opened. Returns the
 * handle, or NULL with errno as mps__seg_anon, _create, _open, init or
 * check said; then nothing is left allocated or mapped, and a name this
 * call created is unlinked. */
void *mps__seg_object(size_t handle_size, const char *name, bool create, const mps__seg_spec *spec);

/* Closes the segment of a handle made by mps__seg_object and frees it.
 * NULL is a no-op. Returns 0. */
int mps__seg_free_handle(void *handle);

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

/* ---- mutex.c: robust process-shared mutex ------------------------------ */

typedef struct mps__mutex {
  alignas(MPS__CACHELINE) pthread_mutex_t m;
} mps__mutex;

/* recursive: PTHREAD_MUTEX_RECURSIVE, else PTHREAD_MUTEX_ERRORCHECK. */
int mps__mutex_init(mps__mutex *m, bool recursive);
/* 0, MPS_OWNER_DIED (made consistent), -EAGAIN, -ETIMEDOUT, -EDEADLK. */
int mps__mutex_lock(mps__mutex *m, const mps__deadline *d);
/* 0 or -EPERM. */
int mps__mutex_unlock(mps__mutex *m);
/* Whether the calling thread holds m; no side effect on a dead owner's m. */
bool mps__mutex_held(mps__mutex *m);
/* How many levels of m the calling thread holds, which holds it: above 1
 * only for a recursive mutex taken again by its owner. */
unsigned mps__mutex_depth(const mps__mutex *m);
/* A hint, read without taking the lock: whether m is free right now. A
 * spinner that only reads keeps the line shared instead of stealing it
 * from the holder on every try. */
bool mps__mutex_looks_free(mps__mutex *m);
/* Whether a thread holds m and is still alive (read without side effect:
 * the kernel marks a dead owner's word). A liveness token. */
bool mps__mutex_owner_alive(mps__mutex *m);
/* What a pthread lock call's error means for mpshare (recovers EOWNERDEAD). */
int mps__mutex_result(mps__mutex *m, int err);

/* The uncontended and blocking paths, inline: every cycle spent between
 * taking and releasing a contended lock is paid by every waiter, so the
 * wrapper adds no calls there. */
int mps__mutex_lock_contended(mps__mutex *m);
static inline int mps__mutex_lock_forever(mps__mutex *m)
{
  int err = pthread_mutex_trylock(&m->m);
  if (err == 0)
    return 0;
  return err == EBUSY ? mps__mutex_lock_contended(m) : mps__mutex_result(m, err);
}

static inline int mps__mutex_unlock_fast(mps__mutex *m) { return -pthread_mutex_unlock(&m->m); }

/* ---- lock.c: Lock and RLock ------------------------------------------- */

/* A handle on a mutex: its own segment, or borrowed from the segment of a
 * value or array (seg.hdr == NULL then; the owner closes it). */
struct mps_lock {
  mps__seg seg;
  mps__mutex *mu;
};

struct mps__lock_shm {
  struct mps__hdr hdr;
  mps__mutex mu;
};

/* A lock handle over a mutex that lives in another object's segment. */
void mps__lock_borrow(mps_lock *l, mps__mutex *mu);

/* ---- wait.c: the one waiting mechanism --------------------------------- */

/* A sequence word that sleepers wait on with a futex, and a count of
 * sleepers so that waking costs no syscall when nobody sleeps. A sleeper
 * killed while asleep leaves `sleepers` one too high; that costs a spurious
 * wake syscall later, never a lost wake-up. */
typedef struct mps__waitq {
  _Atomic uint32_t seq;
  _Atomic uint32_t sleepers;
} mps__waitq;

/* Raw futex calls on a word in shared memory (not FUTEX_PRIVATE).
 * wait: 0 when woken, changed or interrupted (recheck), -ETIMEDOUT. */
int mps__futex_wait(_Atomic uint32_t *word, uint32_t expected, const mps__deadline *d);
void mps__futex_wake(_Atomic uint32_t *word, int n);

/* Waits like a condition variable over m, which the caller holds: releases
 * m, sleeps until mps__waitq_wake() or the deadline, reacquires m (without
 * a deadline, as Python does). Spurious returns happen: the caller rechecks
 * its predicate in a loop. Returns 0, -EAGAIN (timeout 0: does not sleep),
 * -ETIMEDOUT, or MPS_OWNER_DIED when reacquiring m found its owner dead (m
 * is held and consistent; the caller repairs what m protects). */
int mps__waitq_wait(mps__waitq *w, mps__mutex *m, const mps__deadline *d);

/* Wakes up to n sleepers (INT32_MAX for all). Callable with or without the
 * mutex held; costs no syscall when nobody sleeps. */
void mps__waitq_wake(mps__waitq *w, int n);

/* Takes an object's internal mutex m, whose sleepers wait on w. If the
 * previous holder died inside the object, wake every sleeper so that all
 * recheck: a dead holder's change is then never left unannounced, whatever
 * it had done. Objects whose every change is one store need no other
 * repair. */
void mps__waitq_enter(mps__waitq *w, mps__mutex *m);

/* The same release-sleep-reacquire step on a word of the caller's: releases
 * m (held), sleeps while *word == expected, reacquires m. For objects that
 * wake one particular sleeper (a word per sleeper, as Condition does). Same
 * returns as mps__waitq_wait. The waker wakes the word's futex before it
 * stores the new word, holding m, for the reason given in wait.c. */
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

/* Takes m like mps__mutex_lock_forever, after a short bounded spin on
 * trylock (none on a single CPU): for locks held only for a short copy,
 * this saves the futex sleep and wake of a contended pthread mutex.
 * 0, MPS_OWNER_DIED, -EDEADLK. */
int mps__mutex_lock_spin(mps__mutex *m);

/* ---- future.c: futures, a leaf that knows nothing of pools ------------- */

/* A pending future with two references: the caller's and the runner's
 * (dropped by mps__future_complete, or mps__future_release if it never
 * completes it). cancel(arg, f) is the step that cancels its task: it
 * returns 0 if the task will not run (f then completes with -ECANCELED and
 * the runner's reference passes to future.c), or -EBUSY. It is called with
 * the futures' lock held: it may take the runner's own lock, never complete
 * a future. NULL when out of memory. */
mps_future *mps__future_new(int (*cancel)(void *arg, mps_future *f), void *arg);
/* Completes f once (later calls are ignored) and drops the runner's
 * reference: status 0 with the task's value (and value bytes of data when
 * value > 0), or a library error. Runs f's done callback. Never call it
 * holding a lock the cancel step takes. */
void mps__future_complete(mps_future *f, int status, int64_t value, const void *data, size_t len);
void mps__future_release(mps_future *f);

/* ---- queue_heap.c: the priority queue's heap --------------------------- */

/* One heap entry: a message's priority, its put sequence number (FIFO among
 * equal priorities) and the slot holding its payload. */
struct mps__qent {
  int32_t prio;
  uint32_t slot;
  uint64_t seq;
};

/* A redo record: every store of one heap mutation, computed before the
 * first is made. Applying it twice gives the same heap, so a process that
 * finds it valid after an owner died simply applies it again. */
#define MPS__QLOG_MAX 40
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
