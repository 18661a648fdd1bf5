/* The robust process-shared mutex under every lock, queue and primitive.
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
 * A blocked locker never sleeps in the kernel for more than a slice of
 * 50 ms at a time. glibc's robust mutex can strand a sleeper on a free
 * lock: an unlock clears the waiters bit and wakes one sleeper; if that
 * sleeper is killed before it takes the lock while a third process takes
 * it in passing, the wake-up dies with it, the third process unlocks
 * without a waiters bit, and the other sleepers are never woken (the
 * kernel's robust-list cleanup only helps when the lock word is 0 or the
 * dead process's own). The torture tests hit this within minutes. A
 * sleeper whose slice ends simply tries the lock again and finds it free.
 */
#include "config.h"

#include <linux/futex.h>
#include <unistd.h>

#include "internal.h"

/* The calling thread's id, cached: gettid() is a system call, and a
 * condition checks ownership on every wait and notify. A forked child is a
 * new thread with another id, so fork forgets the cache. */
static __thread pid_t my_tid;

static void forget_tid(void) { my_tid = 0; }

__attribute__((constructor)) static void register_forget_tid(void)
{
  pthread_atfork(NULL, NULL, forget_tid);
}

/* The futex word of a robust mutex holds its owner's thread id (0: free):
 * that is the kernel's robust futex ABI, so reading it is safe on Linux;
 * where the word sits in pthread_mutex_t is glibc's, and only this
 * function knows it. */
static int owner_word(const mps__mutex *m)
{
  return __atomic_load_n(&m->m.__data.__lock, __ATOMIC_RELAXED);
}

int mps__mutex_owner(const mps__mutex *m, bool *died)
{
  int w = owner_word(m);
  *died = (w & FUTEX_OWNER_DIED) != 0;
  return w & FUTEX_TID_MASK;
}

/* A trylock cannot tell ownership without side effects (it would take, and
 * so hide, a dead owner's lock): read the word instead. */
bool mps__mutex_held(mps__mutex *m)
{
  if (my_tid == 0)
    my_tid = gettid();
  return (owner_word(m) & FUTEX_TID_MASK) == my_tid;
}

/* glibc counts a recursive mutex's levels in __count (0 or 1 for one
 * level, by mutex type); like owner_word(), only this function knows where. */
unsigned mps__mutex_depth(const mps__mutex *m)
{
  unsigned n = m->m.__data.__count;
  return n > 1 ? n : 1;
}

bool mps__mutex_looks_free(mps__mutex *m) { return owner_word(m) == 0; }

/* The kernel, when an owner dies, clears its id from the word and sets
 * FUTEX_OWNER_DIED (and glibc clears that bit for the next owner), so
 * this is exact: no timeout, no pid that could have been reused. */
bool mps__mutex_owner_alive(mps__mutex *m)
{
  int w = owner_word(m);
  return (w & FUTEX_TID_MASK) != 0 && !(w & FUTEX_OWNER_DIED);
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
out:
  pthread_mutexattr_destroy(&a);
  return -err;
}

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
  default:
    return -err; /* ETIMEDOUT, EDEADLK, EAGAIN (recursion depth) */
  }
}

#define MPS__LOCK_SLICE_NS (50 * 1000 * 1000L)

/* Blocks for the lock until d (NULL: forever), one slice at a time. */
static int lock_sliced(mps__mutex *m, const struct timespec *d)
{
  for (;;) {
    struct timespec at;
    clock_gettime(CLOCK_MONOTONIC, &at);
    at.tv_nsec += MPS__LOCK_SLICE_NS;
    if (at.tv_nsec >= 1000000000L) {
      at.tv_sec++;
      at.tv_nsec -= 1000000000L;
    }
    bool last = d != NULL &&
                (d->tv_sec < at.tv_sec || (d->tv_sec == at.tv_sec && d->tv_nsec <= at.tv_nsec));
    int err = pthread_mutex_clocklock(&m->m, CLOCK_MONOTONIC, last ? d : &at);
    if (err != ETIMEDOUT || last)
      return mps__mutex_result(m, err);
  }
}

int mps__mutex_lock_contended(mps__mutex *m) { return lock_sliced(m, NULL); }

int mps__mutex_lock(mps__mutex *m, const mps__deadline *d)
{
  switch (d->kind) {
  case MPS__FOREVER:
    return mps__mutex_lock_forever(m);
  case MPS__ONCE:
    return mps__mutex_result(m, pthread_mutex_trylock(&m->m));
  default:
    return lock_sliced(m, &d->at);
  }
}

int mps__mutex_unlock(mps__mutex *m) { return mps__mutex_unlock_fast(m); }
