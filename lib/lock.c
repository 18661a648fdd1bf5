/* Lock and RLock: a robust mutex in a segment of its own.
 *
 * Shared layout: struct mps__lock_shm, the segment header and one
 * mps__mutex on its own cache line. All crash handling is the mutex's
 * (mutex.c): a dead owner's lock comes back with MPS_OWNER_DIED.
 *
 * An RLock is the same object with a recursive mutex and its own kind, so
 * that opening one as the other is refused (EPROTO).
 */
#include "config.h"

#include "internal.h"

struct mps_rlock {
  struct mps_lock l;
};

MPS__SEG_HANDLE(struct mps_lock);

static int lock_init(void *shm, const void *recursive)
{
  return mps__mutex_init(&((struct mps__lock_shm *)shm)->mu, *(const bool *)recursive);
}

static mps_lock *lock_make(const char *name, bool create, bool recursive)
{
  mps__seg_spec spec = {recursive ? MPS__KIND_RLOCK : MPS__KIND_LOCK, sizeof(struct mps__lock_shm),
                        lock_init, NULL, &recursive};
  mps_lock *l = mps__seg_object(sizeof(*l), name, create, &spec);
  if (l != NULL)
    l->mu = &((struct mps__lock_shm *)l->seg.hdr)->mu;
  return l;
}

void mps__lock_borrow(mps_lock *l, mps__mutex *mu)
{
  l->seg.hdr = NULL;
  l->mu = mu;
}

static int lock_close(mps_lock *l)
{
  if (l == NULL)
    return 0;
  if (l->seg.hdr == NULL)
    return -EINVAL;
  return mps__seg_free_handle(l);
}

static int lock_acquire(mps_lock *l, double timeout)
{
  if (l == NULL)
    return -EINVAL;
  if (timeout < 0)
    return mps__mutex_lock_forever(l->mu);
  mps__deadline d;
  int err = mps__deadline_init(&d, timeout);
  return err < 0 ? err : mps__mutex_lock(l->mu, &d);
}

static int lock_release(mps_lock *l) { return l == NULL ? -EINVAL : mps__mutex_unlock_fast(l->mu); }

mps_lock *mps_lock_new(void) { return lock_make(NULL, true, false); }
mps_lock *mps_lock_create(const char *name) { return lock_make(name ? name : "", true, false); }
mps_lock *mps_lock_open(const char *name) { return lock_make(name ? name : "", false, false); }
int mps_lock_close(mps_lock *l) { return lock_close(l); }
int mps_lock_acquire(mps_lock *l, double timeout) { return lock_acquire(l, timeout); }
int mps_lock_release(mps_lock *l) { return lock_release(l); }

/* An RLock handle is a Lock handle with another C type, so that the
 * compiler keeps the two apart. */
mps_rlock *mps_rlock_new(void) { return (mps_rlock *)lock_make(NULL, true, true); }
mps_rlock *mps_rlock_create(const char *name)
{
  return (mps_rlock *)lock_make(name ? name : "", true, true);
}
mps_rlock *mps_rlock_open(const char *name)
{
  return (mps_rlock *)lock_make(name ? name : "", false, true);
}
int mps_rlock_close(mps_rlock *l) { return lock_close((mps_lock *)l); }
int mps_rlock_acquire(mps_rlock *l, double timeout) { return lock_acquire((mps_lock *)l, timeout); }
int mps_rlock_release(mps_rlock *l) { return lock_release((mps_lock *)l); }
