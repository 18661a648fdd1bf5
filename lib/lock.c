/* Lock and RLock: a robust mutex in a segment of its own.
 *
 * Shared layout: struct mps__lock_shm, the segment header and one
 * mps__mutex on its own cache line. All crash handling is the mutex's
 * (mutex.c): a dead owner's lock comes back with MPS_OWNER_DIED, and the
 * recovery is recorded in the header's ring (stats.c).
 *
 * An RLock is the same object with a recursive mutex and its own kind, so
 * that opening one as the other is refused (EPROTO). A lock handle may
 * also borrow the mutex of a value or array; its counters are then that
 * segment's.
 */
#include "config.h"

#include "inspect.h"
#include "stats.h"

/* Layout word: the lock's shared struct. */
#define LOCK_LAYOUT                                                                                \
  MPS__FOLD2(MPS__LAYOUT, sizeof(struct mps__lock_shm), offsetof(struct mps__lock_shm, mu))

struct mps_rlock {
  struct mps_lock l;
};

MPS__SEG_HANDLE(struct mps_lock);

static int lock_init(void *shm, const void *recursive)
{
  return mps__mutex_init(&((struct mps__lock_shm *)shm)->mu, *(const bool *)recursive);
}

/* An opened lock's mutex must be one glibc can take, of its own type. */
static int lock_check(const void *shm, size_t size)
{
  (void)size;
  return mps__mutex_check(&((const struct mps__lock_shm *)shm)->mu, false);
}

static int rlock_check(const void *shm, size_t size)
{
  (void)size;
  return mps__mutex_check(&((const struct mps__lock_shm *)shm)->mu, true);
}

static mps_lock *lock_make(enum mps__seg_mode mode, const char *name, bool recursive)
{
  mps__seg_spec spec = {recursive ? MPS__KIND_RLOCK : MPS__KIND_LOCK,
                        sizeof(struct mps__lock_shm),
                        lock_init,
                        recursive ? rlock_check : lock_check,
                        &recursive,
                        LOCK_LAYOUT};
  mps_lock *l = mps__seg_object(sizeof(*l), mode, name, &spec);
  if (l != NULL) {
    l->mu = &((struct mps__lock_shm *)l->seg.hdr)->mu;
    l->stats = l->seg.hdr;
  }
  return l;
}

void mps__lock_borrow(mps_lock *l, mps__mutex *mu, struct mps__hdr *h)
{
  l->seg.hdr = NULL;
  l->seg.magic = MPS__LIVE; /* open as long as its owner is */
  l->mu = mu;
  l->stats = h;
}

static int lock_close(mps_lock *l)
{
  if (l == NULL)
    return 0;
  if (!mps__seg_live(l) || l->seg.hdr == NULL)
    return -EINVAL;
  return mps__seg_free_handle(l);
}

/* Counts a successful acquisition (held now, so the counters are ours). */
static void lock_count(mps_lock *l, bool contended, int r)
{
  mps__stat_inc(l->stats, MPS__ST_ACQUIRED);
  if (contended)
    mps__stat_inc(l->stats, MPS__ST_CONTENDED);
  if (r == MPS_OWNER_DIED) {
    mps__stat_inc(l->stats, MPS__ST_OWNER_DIED);
    mps__stat_recovered(l->stats, MPS__REPAIR_LOCK);
  }
}

/* After a first try that returned r: waits for the lock if it was held
 * (forever, or until d; d NULL for a try only) and counts what happened. */
static __attribute__((noinline)) int lock_finish(mps_lock *l, int r, const mps__deadline *d)
{
  bool contended = r == -EAGAIN;
  if (contended && d != NULL)
    r = mps__mutex_lock(l->mu, d);
  if (r >= 0)
    lock_count(l, contended, r);
  return r;
}

static __attribute__((noinline)) int lock_acquire_timed(mps_lock *l, double timeout)
{
  mps__deadline d;
  if (!mps__seg_live(l))
    return -EINVAL;
  int r = mps__deadline_init(&d, timeout); /* NaN: -EINVAL */
  if (r < 0)
    return r;
  return lock_finish(l, mps__mutex_trylock(l->mu), d.kind == MPS__ONCE ? NULL : &d);
}

/* The common case, an uncontended acquire without a timeout, in as few
 * instructions as it can be; a try first in every case, so that a
 * contended acquisition is known as one. */
static int lock_acquire(mps_lock *l, double timeout)
{
  if (!mps__seg_live(l) || !(timeout < 0))
    return lock_acquire_timed(l, timeout);
  int r = mps__mutex_trylock(l->mu);
  if (r != 0)
    return lock_finish(l, r, &mps__forever);
  mps__stat_inc(l->stats, MPS__ST_ACQUIRED);
  return 0;
}

static int lock_release(mps_lock *l)
{
  return !mps__seg_live(l) ? -EINVAL : mps__mutex_unlock(l->mu);
}

mps_lock *mps_lock_new(void) { return lock_make(MPS__SEG_ANON, NULL, false); }
mps_lock *mps_lock_create(const char *name) { return lock_make(MPS__SEG_CREATE, name, false); }
mps_lock *mps_lock_open(const char *name) { return lock_make(MPS__SEG_OPEN, name, false); }
int mps_lock_close(mps_lock *l) { return lock_close(l); }
int mps_lock_acquire(mps_lock *l, double timeout) { return lock_acquire(l, timeout); }
int mps_lock_release(mps_lock *l) { return lock_release(l); }

/* An RLock handle is a Lock handle with another C type, so that the
 * compiler keeps the two apart. */
mps_rlock *mps_rlock_new(void) { return (mps_rlock *)lock_make(MPS__SEG_ANON, NULL, true); }
mps_rlock *mps_rlock_create(const char *name)
{
  return (mps_rlock *)lock_make(MPS__SEG_CREATE, name, true);
}
mps_rlock *mps_rlock_open(const char *name)
{
  return (mps_rlock *)lock_make(MPS__SEG_OPEN, name, true);
}
int mps_rlock_close(mps_rlock *l) { return lock_close((mps_lock *)l); }
int mps_rlock_acquire(mps_rlock *l, double timeout) { return lock_acquire((mps_lock *)l, timeout); }
int mps_rlock_release(mps_rlock *l) { return lock_release((mps_lock *)l); }

/* ---- inspection ----------------------------------------------------------- */

static int lock_describe(const void *copy, size_t size, mps_object_info *info)
{
  (void)size;
  mps__info_mutex(info, &((const struct mps__lock_shm *)copy)->mu);
  return 0;
}

const struct mps__kind_view mps__lock_view = {MPS__KIND_LOCK,   "lock",
                                              LOCK_LAYOUT,      sizeof(struct mps__lock_shm),
                                              MPS__FAMILY_LOCK, lock_describe};
const struct mps__kind_view mps__rlock_view = {MPS__KIND_RLOCK,  "rlock",
                                               LOCK_LAYOUT,      sizeof(struct mps__lock_shm),
                                               MPS__FAMILY_LOCK, lock_describe};
