/* The one waiting mechanism: futex sleeps on a sequence word.
 *
 * Every blocking call in mpshare (conditions, events, barriers, semaphores,
 * queues) sleeps here. A waiter reads the sequence word while it holds the
 * object's mutex, releases the mutex, and sleeps only if the word still has
 * that value; a waker changes the object's state, bumps the word and wakes.
 * Nothing about a particular waiter is kept in shared memory except one
 * count of sleepers, used only to skip the wake syscall when it is zero, so
 * a waiter killed at any instruction cannot swallow a wake-up meant for the
 * others or block them (a process-shared pthread_cond_t keeps per-waiter
 * state and can). The kernel forgets a killed sleeper's futex wait by
 * itself. A sleeper that dies leaves `sleepers` too high, which only costs
 * later wakers a syscall; the count is not trusted for anything else.
 *
 * A waker wakes *before* it makes the change visible, while it holds the
 * object's mutex. The woken sleepers then wait for that mutex, so a waker
 * killed at any instruction after its wake dies holding the mutex, and the
 * kernel hands the robust mutex to one of the sleepers (owner died), which
 * wakes the rest (mps__waitq_wait, mps__waitq_enter): they all recheck and
 * find the change made or not made, never made and unannounced.
 *
 * Ordering: the sleeper increments `sleepers` before the futex compares the
 * sequence word; the waker bumps the word before it reads `sleepers`. Both
 * are sequentially consistent, so either the waker sees the sleeper or the
 * sleeper sees the new word and does not sleep.
 *
 * Before sleeping, a caller may spin a little (mps__spin_while_eq): a
 * hand-off between two running processes then costs a cache miss instead of
 * two syscalls and a context switch. The spin is bounded in time, shrinks
 * when it does not pay off, and is skipped on a single CPU (of the
 * process's affinity mask), where the process being waited for cannot run
 * while we spin. Nor does it spin while the machine is oversubscribed:
 * more threads runnable than CPUs (the kernel's count, sampled every
 * 50 ms), or a spin that found itself descheduled half-way, which turns
 * that thread's next spins off for a while. Waiters then sleep at once
 * and leave the CPU to the process they wait for.
 */
#include "config.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "stats.h"

int mps__futex_wait(_Atomic uint32_t *word, uint32_t expected, const mps__deadline *d)
{
  const struct timespec *at = d->kind == MPS__TIMED ? &d->at : NULL;
  if (d->kind == MPS__ONCE)
    return -EAGAIN;
  /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time, so a wait
   * that restarts after a signal does not extend the deadline. */
  long r = syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected, at, NULL, FUTEX_BITSET_MATCH_ANY);
  if (r < 0 && errno == ETIMEDOUT)
    return -ETIMEDOUT;
  return 0; /* woken, EAGAIN (word changed) or EINTR: the caller rechecks */
}

void mps__futex_wake(_Atomic uint32_t *word, int n)
{
  syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* The sleepers are woken, then the recovery recorded (stats.c). */
static void recover(mps__waitq *w, struct mps__hdr *h)
{
  mps__waitq_wake(w, INT32_MAX);
  if (h != NULL)
    mps__stat_recovered(h, MPS__REPAIR_WAKE);
}

void mps__waitq_enter(mps__waitq *w, mps__mutex *m, struct mps__hdr *h)
{
  if (mps__mutex_lock_forever(m) == MPS_OWNER_DIED)
    recover(w, h);
}

int mps__waitq_wait(mps__waitq *w, mps__mutex *m, const mps__deadline *d, struct mps__hdr *h)
{
  if (d->kind == MPS__ONCE)
    return -EAGAIN;
  uint32_t seq = atomic_load(&w->seq);
  atomic_fetch_add(&w->sleepers, 1);
  mps__mutex_unlock(m);
  int r = mps__futex_wait(&w->seq, seq, d);
  atomic_fetch_sub(&w->sleepers, 1);
  int relock = mps__mutex_lock_forever(m);
  if (relock == MPS_OWNER_DIED)
    recover(w, h); /* the dead holder may not have woken them */
  return relock == MPS_OWNER_DIED ? relock : r;
}

void mps__waitq_wake(mps__waitq *w, int n)
{
  atomic_fetch_add(&w->seq, 1);
  if (atomic_load(&w->sleepers) != 0)
    mps__futex_wake(&w->seq, n);
}

int mps__word_wait(_Atomic uint32_t *word, uint32_t expected, mps__mutex *m, const mps__deadline *d)
{
  if (d->kind == MPS__ONCE)
    return -EAGAIN;
  /* The caller read *word under m, and changes to it are made under m, so
   * a change after the unlock makes the futex return at once. */
  mps__mutex_unlock(m);
  int r = mps__futex_wait(word, expected, d);
  int relock = mps__mutex_lock_forever(m);
  return relock == MPS_OWNER_DIED ? relock : r;
}

void mps__waitq_wake_held(mps__waitq *w, int n)
{
  /* Sleepers register under the mutex the caller holds, so a sleeper that
   * is not counted yet will check the caller's new state before sleeping. */
  if (atomic_load(&w->sleepers) != 0) {
    atomic_fetch_add(&w->seq, 1);
    mps__futex_wake(&w->seq, n);
  }
}

/* Spin budget in nanoseconds, per thread: doubled when a spin saw the word
 * change, halved when it did not. */
#define MPS__SPIN_MIN_NS 4000
#define MPS__SPIN_MAX_NS 32000
#define MPS__SPIN_CHECK  32 /* spins between clock reads */
/* A gap this long between two clock reads inside a spin means the spinner
 * was descheduled: more threads want to run than there are CPUs. */
#define MPS__SPIN_PREEMPTED_NS 50000
/* Spins skipped after one was preempted: on an oversubscribed machine a
 * spinner only delays the process it waits for. */
#define MPS__SPIN_BACKOFF 64
/* A mutex is held for a short copy; longer than this, its holder is
 * probably not running, and we sleep in the kernel instead. */
#define MPS__MUTEX_SPIN_NS 3000

static _Thread_local long spin_budget_ns = 8000;
static _Thread_local unsigned spin_backoff;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* The CPUs this process may run on (its affinity mask, which may be
 * narrower than the machine), read once. */
static _Atomic int ncpu_seen;

static bool single_cpu(void)
{
  _Atomic int *ncpu = &ncpu_seen;
  int n = atomic_load_explicit(ncpu, memory_order_relaxed);
  if (n == 0) {
    cpu_set_t set;
    long r = sysconf(_SC_NPROCESSORS_ONLN);
    n = r > 0 && r < INT_MAX ? (int)r : 1;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) < n)
      n = CPU_COUNT(&set);
    n = n > 0 ? n : 1;
    atomic_store_explicit(ncpu, n, memory_order_relaxed);
  }
  return n == 1;
}

static int64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* How often the machine's count of runnable threads is read. */
#define MPS__LOAD_SAMPLE_NS (50 * 1000 * 1000)

static int ncpus(void)
{
  single_cpu();
  return atomic_load_explicit(&ncpu_seen, memory_order_relaxed);
}

/* Whether more threads want to run than this process has CPUs, from the
 * kernel's count of runnable threads (/proc/loadavg, 4th field), read at
 * most every 50 ms by one thread of the process. Then a spinner only
 * keeps the process it waits for off a CPU: waiters sleep at once. */
static bool oversubscribed(int64_t now)
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
  bool o = running > ncpus();
  atomic_store_explicit(&over, o, memory_order_relaxed);
  return o;
}

bool mps__spin_while_eq2(const _Atomic uint64_t *a, uint64_t olda, const _Atomic uint64_t *b,
                         uint64_t oldb)
{
  if (single_cpu())
    return false;
  if (spin_backoff > 0) {
    spin_backoff--;
    return false;
  }
  int64_t last = now_ns(), end = last + spin_budget_ns;
  if (oversubscribed(last))
    return false;
  for (unsigned i = 1;; i++) {
    if (atomic_load_explicit(a, memory_order_relaxed) != olda ||
        atomic_load_explicit(b, memory_order_relaxed) != oldb) {
      if (spin_budget_ns < MPS__SPIN_MAX_NS)
        spin_budget_ns *= 2;
      return true;
    }
    cpu_relax();
    if (i % MPS__SPIN_CHECK == 0) {
      int64_t t = now_ns();
      if (t - last > MPS__SPIN_PREEMPTED_NS)
        spin_backoff = MPS__SPIN_BACKOFF;
      if (t >= end || spin_backoff > 0)
        break;
      last = t;
    }
  }
  if (spin_budget_ns > MPS__SPIN_MIN_NS)
    spin_budget_ns /= 2;
  return false;
}

bool mps__spin_while_eq(const _Atomic uint64_t *word, uint64_t old)
{
  return mps__spin_while_eq2(word, old, word, old);
}

int mps__mutex_lock_spin(mps__mutex *m)
{
  static const mps__deadline once = {.kind = MPS__ONCE};
  if (!single_cpu() && !oversubscribed(now_ns())) {
    int64_t end = 0;
    for (unsigned i = 1;; i++) {
      if (mps__mutex_looks_free(m)) { /* test before test-and-set */
        int r = mps__mutex_lock(m, &once);
        if (r != -EAGAIN)
          return r;
      }
      cpu_relax();
      if (i % MPS__SPIN_CHECK == 0) {
        int64_t t = now_ns();
        if (end == 0)
          end = t + MPS__MUTEX_SPIN_NS;
        else if (t >= end)
          break;
      }
    }
  }
  return mps__mutex_lock_forever(m);
}
