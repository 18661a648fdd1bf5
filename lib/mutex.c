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
 */
#include "config.h"

#include "internal.h"

int mps__mutex_init(mps__mutex *m, bool recursive)
{
  pthread_mutexattr_t a;
  int err = pthread_mutexattr_init(&a);
  if (err != 0)
    return -err;
  if ((err = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) != 0 ||
      (err = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) != 0 ||
      (err = pthread_mutexattr_settype(
           &a, recursive ? PTHREAD_MUTEX_RECURSIVE : PTHREAD_MUTEX_ERRORCHECK)) != 0)
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

int mps__mutex_lock(mps__mutex *m, const mps__deadline *d)
{
  switch (d->kind) {
  case MPS__FOREVER:
    return mps__mutex_lock_forever(m);
  case MPS__ONCE:
    return mps__mutex_result(m, pthread_mutex_trylock(&m->m));
  default:
    return mps__mutex_result(m, pthread_mutex_clocklock(&m->m, CLOCK_MONOTONIC, &d->at));
  }
}

int mps__mutex_unlock(mps__mutex *m)
{
  return mps__mutex_unlock_fast(m);
}
