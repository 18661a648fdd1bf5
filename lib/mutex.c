/* The robust process-shared mutex under every lock, queue and primitive:
 * the lock with a deadline, its spin, its owner-died recovery and the
 * check of a mutex that a segment brought, all of it.
 *
 * It is a pthread mutex with PTHREAD_PROCESS_SHARED and PTHREAD_MUTEX_ROBUST
 * (error-checking, or recursive for RLock). When its owner dies holding it,
 * the kernel walks the owner's robust list, marks the mutex owner-died and
 * wakes one waiter, so a process already blocked in lock() gets it too. The
 * new owner receives EOWNERDEAD; we mark the mutex consistent at once and
 * report MPS_OWNER_DIED, so the lock never becomes ENOTRECOVERABLE. If the
 * new owner itself dies before pthread_mutex_consistent(), the kernel marks
 * it owner-died again and the next locker repeats the recovery.
 *
 * Shared layout: glibc's pthread_mutex_t, alone on a cache line. The
 * library reads three of glibc's fields: the lock word (the owner's thread
 * id and the futex flags: the kernel's robust futex ABI), the kind word and
 * the owner field; configure checks that they are where this file expects.
 *
 * A blocked locker never sleeps in the kernel for more than a slice of
 * 50 ms at a time. glibc's robust mutex can strand a sleeper on a free
 * lock: an unlock clears the waiters bit and wakes one sleeper; if that
 * sleeper is killed before it takes the lock while a third process takes
 * it in passing, the wake-up dies with it, the third process unlocks
 * without a waiters bit, and the other sleepers are never woken (the
 * kernel's robust-list cleanup only helps when the lock word is 0 or the
 * dead process's own). The torture tests hit this within minutes. A
 * sleeper whose slice ends simply tries the lock again and finds it free.
 * Between slices it also checks that the owner can be a holder at all: an
 * owner word naming a thread that is gone, without the owner-died mark the
 * kernel sets when a holder exits, or a live thread whose process does not
 * map the segment, can only be damage or forgery (-EPROTO). Thread ids are
 * read in this process's pid namespace: processes that share a segment
 * must share one (glibc's robust mutexes need that too).
 *
 * The try and the unlock of an uncontended lock are inline in mutex.h and
 * check only what keeps glibc from aborting or writing through pointers
 * read from a segment: the kind word against the two kinds learnt here,
 * and, on unlock, that the mutex is the first entry of this thread's
 * robust list (where glibc put it when this thread locked it last).
 * Everything else comes here: waits, errors, a thread's first unlock, a
 * mutex released out of the order it was taken (a walk of the list).
 *
 * Every lock takes the caller's deadline, so a holder that is stopped
 * (SIGSTOP, a debugger, a frozen cgroup) while it holds the lock delays a
 * call with a timeout until that timeout and no longer. Timeout 0 tries
 * for a grace of a few microseconds, so that a holder in the middle of a
 * short copy on another CPU does not make it fail.
 */
#include "config.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

/* How long a timed-out or timeout-0 lock keeps trying a busy mutex. */
#define MPS__LOCK_GRACE_NS 5000
/* A mutex is held for a short copy; longer than this, its holder is
 * probably not running, and we sleep in the kernel instead. */
#define MPS__MUTEX_SPIN_NS 3000
#define MPS__SPIN_CHECK    32 /* spins between clock reads */
#ifndef MPS__LOCK_SLICE_NS    /* the fuzzers build with a shorter slice */
#define MPS__LOCK_SLICE_NS (50 * 1000 * 1000L)
#endif
/* The largest thread id Linux hands out (PID_MAX_LIMIT). */
#define MPS__TID_MAX (4 * 1024 * 1024)

/* This thread's robust list head, which the kernel walks when the thread
 * dies: glibc links every robust mutex the thread holds into it. Fixed for
 * the life of a thread (and the same in a forked child). Until
 * linked_by_me() asks the kernel for it, an empty list that no mutex is
 * the first entry of, so that the inline unlock needs no NULL test. */
static struct robust_list_head no_list;
__thread struct robust_list_head *mps__robust_head __attribute__((tls_model("initial-exec"))) =
    &no_list;

/* Learnt at first use, not in a constructor (one could run after another
 * one that opens a segment): mps__mutex_init records what glibc wrote. */
int64_t mps__mutex_kinds[2] = {INT64_MIN, INT64_MIN};

/* Makes a mutex of each type once, so that mps__mutex_init records glibc's
 * kind words; an int64 store of an int is never torn, and every thread
 * that learns them writes the same values. */
static void learn_kinds(void)
{
  if (__atomic_load_n(&mps__mutex_kinds[0], __ATOMIC_RELAXED) != INT64_MIN &&
      __atomic_load_n(&mps__mutex_kinds[1], __ATOMIC_RELAXED) != INT64_MIN)
    return;
  for (int r = 0; r < 2; r++) {
    mps__mutex t;
    if (mps__mutex_init(&t, r != 0) == 0)
      pthread_mutex_destroy(&t.m);
  }
}

static int64_t kind_of(bool recursive)
{
  learn_kinds();
  return __atomic_load_n(&mps__mutex_kinds[recursive], __ATOMIC_RELAXED);
}

/* The inline check, after learning the kinds if this process has neither
 * made nor checked a mutex yet. */
static bool kind_ok(const mps__mutex *m)
{
  if (mps__mutex_kind_ok(m))
    return true;
  learn_kinds();
  return mps__mutex_kind_ok(m);
}

/* The futex word of a robust mutex holds its owner's thread id (0: free):
 * that is the kernel's robust futex ABI, so reading it is safe on Linux;
 * where the word sits in pthread_mutex_t is glibc's, and only this file
 * knows it. */
static unsigned owner_word(const mps__mutex *m)
{
  return (unsigned)__atomic_load_n(&m->m.__data.__lock, __ATOMIC_RELAXED);
}

/* Whether m's list links are those of a mutex this thread holds: the pair
 * stored in m equals the pair of some entry on this thread's robust list
 * (the entry is m itself, or m seen through another mapping of the same
 * segment). Entries point at a mutex's __list.__next, __prev just before
 * it; the low bit marks priority-inheritance mutexes. The walk is as long
 * as the number of robust mutexes this thread holds, one or two. */
static bool linked_by_me(const mps__mutex *m)
{
  if (mps__robust_head == &no_list) {
    struct robust_list_head *h = NULL;
    size_t len;
    if (syscall(SYS_get_robust_list, 0, &h, &len) < 0 || h == NULL)
      return true; /* no robust list: glibc will not unlink through m either */
    mps__robust_head = h;
  }
  void *next = m->m.__data.__list.__next, *prev = m->m.__data.__list.__prev;
  struct robust_list *head = &mps__robust_head->list;
  struct robust_list *e = (struct robust_list *)((uintptr_t)head->next & ~(uintptr_t)1);
  for (int n = 0; e != head && e != NULL && n < 4096; n++) {
    void **node = (void **)e;
    if (node[0] == next && node[-1] == prev)
      return true;
    e = (struct robust_list *)((uintptr_t)e->next & ~(uintptr_t)1);
  }
  return false;
}

/* A trylock cannot tell ownership without side effects (it would take, and
 * so hide, a dead owner's lock): read the word instead. A word naming this
 * thread on a mutex it never took (not on its robust list) is forged, and
 * does not make it the holder. */
bool mps__mutex_held(const mps__mutex *m)
{
  return (owner_word(m) & FUTEX_TID_MASK) == (unsigned)mps__self_tid() && linked_by_me(m);
}

/* glibc believes an owner word that names the caller: an error-checking
 * lock says EDEADLK and a recursive one counts a level of a lock nobody
 * took. Only a mutex this thread really holds may be re-entered. */
static bool forged_self(const mps__mutex *m)
{
  return (owner_word(m) & FUTEX_TID_MASK) == (unsigned)mps__self_tid() && !linked_by_me(m);
}

int mps__mutex_owner(const mps__mutex *m, bool *died)
{
  unsigned w = owner_word(m);
  *died = (w & FUTEX_OWNER_DIED) != 0;
  return (int)(w & FUTEX_TID_MASK);
}

/* glibc counts a recursive mutex's levels in __count (0 or 1 for one
 * level, by mutex type); like owner_word(), only this file knows where. */
unsigned mps__mutex_depth(const mps__mutex *m)
{
  unsigned n = m->m.__data.__count;
  return n > 1 ? n : 1;
}

/* The kernel, when an owner dies, clears its id from the word and sets
 * FUTEX_OWNER_DIED (and glibc clears that bit for the next owner), so
 * this is exact: no timeout, no pid that could have been reused. */
bool mps__mutex_owner_alive(const mps__mutex *m)
{
  unsigned w = owner_word(m);
  return (w & FUTEX_TID_MASK) != 0 && !(w & FUTEX_OWNER_DIED);
}

bool mps__mutex_looks_free(const mps__mutex *m) { return owner_word(m) == 0; }

/* The CPUs this process may run on (its affinity mask, which may be
 * narrower than the machine), read once. */
static _Atomic int ncpu;

bool mps__single_cpu(void)
{
  int n = atomic_load_explicit(&ncpu, memory_order_relaxed);
  if (n == 0) {
    cpu_set_t set;
    long r = sysconf(_SC_NPROCESSORS_ONLN);
    n = r > 0 && r < INT_MAX ? (int)r : 1;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) < n)
      n = CPU_COUNT(&set);
    n = n > 0 ? n : 1;
    atomic_store_explicit(&ncpu, n, memory_order_relaxed);
  }
  return n == 1;
}

/* Every check, for the unlocks the inline fast path did not take: the
 * first unlock of a thread, a recursive level, mutexes released out of
 * the order they were taken, and every error. */
int mps__mutex_unlock_slow(mps__mutex *m)
{
  /* glibc unlinks m from the robust list it names: only a mutex on ours. */
  if (!mps__mutex_held(m))
    return -EPERM;
  if (kind_ok(m))
    return -pthread_mutex_unlock(&m->m);
  /* Its kind was damaged while this thread held it. glibc aborts on some
   * kinds and releases others without unlinking them from this thread's
   * list, which then points into memory that may be unmapped: the next
   * lock of any robust mutex writes there. m is ours and on our list, so
   * it is released as the error-checking mutex glibc can unlink; the
   * caller learns that the segment is damaged. */
  __atomic_store_n(&m->m.__data.__kind, (int)kind_of(false), __ATOMIC_RELAXED);
  pthread_mutex_unlock(&m->m);
  return -EPROTO;
}

/* How often the machine's count of runnable threads is read. */
#define MPS__LOAD_SAMPLE_NS (50 * 1000 * 1000)

/* From the kernel's count of runnable threads (/proc/loadavg, 4th field),
 * read at most every 50 ms by one thread of the process. */
bool mps__oversubscribed(int64_t now)
{
  static _Atomic int64_t next_sample;
  static _Atomic bool over;
  int64_t next = atomic_load_explicit(&next_sample, memory_order_relaxed);
  if (now < next || !atomic_compare_exchange_strong(&next_sample, &next, now + MPS__LOAD_SAMPLE_NS))
    return atomic_load_explicit(&over, memory_order_relaxed);
  int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
  char buf[128];
  ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
  if (fd >= 0)
    close(fd);
  int running = 0;
  if (n > 0) {
    buf[n] = '\0';
    const char *p = buf;
    for (int field = 0; field < 3 && p != NULL; field++)
      p = strchr(p + 1, ' ');
    running = p != NULL ? atoi(p + 1) : 0;
  }
  mps__single_cpu(); /* counts the CPUs */
  bool o = running > atomic_load_explicit(&ncpu, memory_order_relaxed);
  atomic_store_explicit(&over, o, memory_order_relaxed);
  return o;
}

int mps__mutex_init(mps__mutex *m, bool recursive)
{
  pthread_mutexattr_t a;
  int err = pthread_mutexattr_init(&a);
  if (err != 0)
    return -err;
  if ((err = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) != 0 ||
      (err = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) != 0 ||
      (err = pthread_mutexattr_settype(&a, recursive ? PTHREAD_MUTEX_RECURSIVE
                                                     : PTHREAD_MUTEX_ERRORCHECK)) != 0)
    goto out;
  err = pthread_mutex_init(&m->m, &a);
  if (err == 0) /* what the inline checks compare with */
    __atomic_store_n(&mps__mutex_kinds[recursive], (int64_t)m->m.__data.__kind, __ATOMIC_RELAXED);
out:
  pthread_mutexattr_destroy(&a);
  return -err;
}

int mps__mutex_check(const mps__mutex *m, bool recursive)
{
  unsigned w = owner_word(m), tid = w & FUTEX_TID_MASK;
  int owner = m->m.__data.__owner;
  if (m->m.__data.__kind != kind_of(recursive) || tid > MPS__TID_MAX)
    return -EPROTO;
  /* The waiters bit alone: an unlock always clears the whole word, and the
   * kernel marks a dead owner's word owner-died, so this is damage. */
  if (w == FUTEX_WAITERS)
    return -EPROTO;
  /* The owner field is 0, a thread id, or glibc's "inconsistent" mark. */
  if (owner != INT_MAX && (owner < 0 || owner > MPS__TID_MAX))
    return -EPROTO;
  return 0;
}

/* What a pthread lock call's error means for mpshare; recovers a dead
 * owner's mutex, the one place that does. */
int mps__mutex_result(mps__mutex *m, int err)
{
  switch (err) {
  case 0:
    return 0;
  case EOWNERDEAD:
    pthread_mutex_consistent(&m->m);
    return MPS_OWNER_DIED;
  case EBUSY:
    return -EAGAIN;
  case EINVAL:
  case ENOTRECOVERABLE: /* we always make it consistent: damage */
    return -EPROTO;
  default:
    return -err; /* ETIMEDOUT, EDEADLK, EAGAIN (recursion depth) */
  }
}

/* The "device inode" of the mapping of process pid (0: this one) that
 * contains addr, or, with addr NULL, whether pid maps the segment whose
 * id is given: 1 yes, 0 no, -1 cannot tell (its maps are not readable). */
static int maps_find(pid_t pid, const void *addr, char id[64])
{
  char path[64], *line = NULL;
  size_t cap = 0;
  snprintf(path, sizeof(path), pid ? "/proc/%d/maps" : "/proc/self/maps", (int)pid);
  FILE *f = fopen(path, "re");
  if (f == NULL)
    return -1;
  int found = 0;
  while (!found && getline(&line, &cap, f) > 0) {
    unsigned long lo, hi;
    char dev[32];
    unsigned long ino;
    if (sscanf(line, "%lx-%lx %*s %*s %31s %lu", &lo, &hi, dev, &ino) != 4)
      continue;
    char this_id[64];
    snprintf(this_id, sizeof(this_id), "%s %lu", dev, ino);
    if (addr != NULL && (uintptr_t)addr >= lo && (uintptr_t)addr < hi) {
      snprintf(id, 64, "%s", this_id);
      found = 1;
    } else if (addr == NULL && strcmp(id, this_id) == 0) {
      found = 1;
    }
  }
  free(line);
  fclose(f);
  return found;
}

/* An owner word that cannot be a holder's: it names a thread that no
 * longer exists and is not marked owner-died (the kernel marks a robust
 * mutex at its holder's exit, before the thread id can be reused), or a
 * live thread whose process does not map this segment (a kernel thread,
 * an unrelated process: a forged word). Such a lock is never released.
 * Checked once per 50 ms slice of a blocked lock, so the cost of reading
 * two maps files does not matter. A process whose maps cannot be read is
 * given the benefit of the doubt. */
static bool owner_bogus(const mps__mutex *m)
{
  unsigned w = owner_word(m), tid = w & FUTEX_TID_MASK;
  if ((w & FUTEX_OWNER_DIED) != 0)
    return false;
  if (tid == 0) /* waiters and no owner: glibc waits for a 0 that never comes */
    return w != 0 && owner_word(m) == w;
  bool bogus;
  if (kill((pid_t)tid, 0) < 0 && errno == ESRCH) {
    bogus = true;
  } else {
    char id[64];
    bogus = maps_find(0, m, id) == 1 && maps_find((pid_t)tid, NULL, id) == 0;
  }
  return bogus && (owner_word(m) & FUTEX_TID_MASK) == tid;
}

/* Tries a busy mutex for the grace period, then gives up with d's error. */
static int lock_grace(mps__mutex *m, const mps__deadline *d)
{
  int64_t end = 0;
  for (;;) {
    int err = pthread_mutex_trylock(&m->m);
    if (err != EBUSY)
      return mps__mutex_result(m, err);
    if (mps__single_cpu())
      break;
    int64_t t = mps__now_ns();
    if (end == 0)
      end = t + MPS__LOCK_GRACE_NS;
    else if (t >= end)
      break;
    for (int i = 0; i < MPS__SPIN_CHECK; i++)
      mps__cpu_relax();
  }
  return mps__deadline_error(d);
}

#if defined(__SANITIZE_THREAD__) || defined(MPS_TSAN_TIMEDLOCK)
/* ThreadSanitizer (Debian 12's) does not intercept pthread_mutex_clocklock
 * and then reports every lock as a race: this build takes the same slices
 * through pthread_mutex_timedlock, on CLOCK_REALTIME. */
static int slice_lock(mps__mutex *m, const mps__deadline *slice)
{
  struct timespec rt;
  mps__monotonic_to_realtime(&slice->at, &rt);
  return pthread_mutex_timedlock(&m->m, &rt);
}
#else
static int slice_lock(mps__mutex *m, const mps__deadline *slice)
{
  return pthread_mutex_clocklock(&m->m, CLOCK_MONOTONIC, &slice->at);
}
#endif

/* Blocks for the lock until d, one slice at a time. */
static int lock_sliced(mps__mutex *m, const mps__deadline *d)
{
  for (;;) {
    mps__deadline slice;
    bool last = mps__deadline_slice(d, MPS__LOCK_SLICE_NS, &slice);
    int err = slice_lock(m, &slice);
    if (err != ETIMEDOUT)
      return mps__mutex_result(m, err);
    if (last)
      return lock_grace(m, d);
    if (owner_bogus(m))
      return -EPROTO;
  }
}

int mps__mutex_lock_wait(mps__mutex *m, const mps__deadline *d)
{
  if (!kind_ok(m) || forged_self(m))
    return -EPROTO;
  return d->kind == MPS__ONCE ? lock_grace(m, d) : lock_sliced(m, d);
}

int mps__mutex_lock(mps__mutex *m, const mps__deadline *d)
{
  /* glibc asserts on kinds it does not expect in a robust mutex's place
   * (priority protection, priority inheritance): never hand it one. */
  if (!kind_ok(m) || forged_self(m))
    return -EPROTO;
  int err = pthread_mutex_trylock(&m->m);
  if (err != EBUSY)
    return mps__mutex_result(m, err);
  return d->kind == MPS__ONCE ? lock_grace(m, d) : lock_sliced(m, d);
}

int mps__mutex_trylock_slow(mps__mutex *m)
{
  if (!kind_ok(m) || forged_self(m))
    return -EPROTO;
  /* Held by another thread, alive as far as the word says: glibc's try
   * would fail too, after taking the line from the holder for its
   * compare-and-swap. A dead owner's word goes to glibc, which hands the
   * lock over, and so does this thread's own (EDEADLK, a recursive level). */
  unsigned w = owner_word(m), tid = w & FUTEX_TID_MASK;
  if (tid != 0 && tid != (unsigned)mps__self_tid() && !(w & FUTEX_OWNER_DIED))
    return -EAGAIN;
  return mps__mutex_result(m, pthread_mutex_trylock(&m->m));
}

int mps__mutex_lock_spin(mps__mutex *m, const mps__deadline *d)
{
  if (d->kind != MPS__ONCE && !mps__single_cpu() && !mps__oversubscribed(mps__now_ns()) &&
      kind_ok(m)) {
    int64_t end = 0;
    for (unsigned i = 1;; i++) {
      if (mps__mutex_looks_free(m)) { /* test before test-and-set */
        int err = pthread_mutex_trylock(&m->m);
        if (err != EBUSY)
          return mps__mutex_result(m, err);
      }
      mps__cpu_relax();
      if (i % MPS__SPIN_CHECK == 0) {
        int64_t t = mps__now_ns();
        if (end == 0)
          end = t + MPS__MUTEX_SPIN_NS;
        else if (t >= end)
          break;
      }
    }
  }
  return mps__mutex_lock(m, d);
}
