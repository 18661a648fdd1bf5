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

#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdint.h>
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

int mps__waitq_enter(mps__waitq *w, mps__mutex *m, struct mps__hdr *h, const mps__deadline *d)
{
  int r = mps__mutex_lock(m, d);
  if (r == MPS_OWNER_DIED)
    recover(w, h);
  return r < 0 ? r : 0;
}

int mps__waitq_wait(mps__waitq *w, mps__mutex *m, const mps__deadline *d, struct mps__hdr *h,
                    bool *held)
{
  *held = true;
  if (d->kind == MPS__ONCE)
    return -EAGAIN;
  uint32_t seq = atomic_load(&w->seq);
  atomic_fetch_add(&w->sleepers, 1);
  mps__mutex_unlock(m);
  int r = mps__futex_wait(&w->seq, seq, d);
  atomic_fetch_sub(&w->sleepers, 1);
  /* Retaken before the same deadline: a process stopped while it holds m
   * must not hold this call past its timeout. Past the deadline this is
   * one try with a short grace (mutex.c). */
  int relock = mps__mutex_lock(m, d);
  if (relock < 0) {
    *held = false;
    return relock;
  }
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
  int relock = mps__mutex_lock(m, &mps__forever);
  return relock != 0 ? relock : r;
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
static _Thread_local long spin_budget_ns = 8000;
static _Thread_local unsigned spin_backoff;

bool mps__spin_while_eq2(const _Atomic uint64_t *a, uint64_t olda, const _Atomic uint64_t *b,
                         uint64_t oldb)
{
  if (mps__single_cpu())
    return false;
  if (spin_backoff > 0) {
    spin_backoff--;
    return false;
  }
  int64_t last = mps__now_ns(), end = last + spin_budget_ns;
  if (mps__oversubscribed(last))
    return false;
  for (unsigned i = 1;; i++) {
    if (atomic_load_explicit(a, memory_order_relaxed) != olda ||
        atomic_load_explicit(b, memory_order_relaxed) != oldb) {
      if (spin_budget_ns < MPS__SPIN_MAX_NS)
        spin_budget_ns *= 2;
      return true;
    }
    mps__cpu_relax();
    if (i % MPS__SPIN_CHECK == 0) {
      int64_t t = mps__now_ns();
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
