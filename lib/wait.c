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
 * Ordering: the sleeper increments `sleepers` before the futex compares the
 * sequence word; the waker bumps the word before it reads `sleepers`. Both
 * are sequentially consistent, so either the waker sees the sleeper or the
 * sleeper sees the new word and does not sleep.
 */
#include "config.h"

#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

int mps__futex_wait(_Atomic uint32_t *word, uint32_t expected, const mps__deadline *d)
{
  const struct timespec *at = d->kind == MPS__TIMED ? &d->at : NULL;
  if (d->kind == MPS__ONCE)
    return -EAGAIN;
  /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time, so a wait
   * that restarts after a signal does not extend the deadline. */
  long r = syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected, at, NULL,
                   FUTEX_BITSET_MATCH_ANY);
  if (r < 0 && errno == ETIMEDOUT)
    return -ETIMEDOUT;
  return 0; /* woken, EAGAIN (word changed) or EINTR: the caller rechecks */
}

void mps__futex_wake(_Atomic uint32_t *word, int n)
{
  syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);
}

int mps__waitq_wait(mps__waitq *w, mps__mutex *m, const mps__deadline *d)
{
  if (d->kind == MPS__ONCE)
    return -EAGAIN;
  uint32_t seq = atomic_load(&w->seq);
  atomic_fetch_add(&w->sleepers, 1);
  mps__mutex_unlock(m);
  int r = mps__futex_wait(&w->seq, seq, d);
  atomic_fetch_sub(&w->sleepers, 1);
  int relock = mps__mutex_lock(m, &(mps__deadline){.kind = MPS__FOREVER});
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
  int relock = mps__mutex_lock(m, &(mps__deadline){.kind = MPS__FOREVER});
  return relock == MPS_OWNER_DIED ? relock : r;
}
