/* Lock (multiprocessing.Lock) and RLock (multiprocessing.RLock).
 *
 * Both are robust, process-shared pthread mutexes in shared memory. A lock
 * whose owner died while holding it is handed to the next acquirer with
 * MPS_OWNER_DIED: it is consistent again and usable, and the caller decides
 * whether the data it protects needs repair.
 *
 * Anonymous locks (mps_lock_new) are created before fork() and shared with
 * every child. Named locks (mps_lock_create/mps_lock_open) are reachable by
 * unrelated processes of the same user. Either kind is released in this
 * process with mps_lock_close(); a named one stays until mps_unlink().
 */
#ifndef MPSHARE_LOCK_H
#define MPSHARE_LOCK_H

#include <mpshare/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mps_lock mps_lock;
typedef struct mps_rlock mps_rlock;

/* Creates an unlocked anonymous lock, shared with the children forked
 * after it.
 * Returns: the handle.
 * Errors: NULL with errno ENOMEM.
 * Owns: the caller owns the handle (mps_lock_close). */
MPS_API mps_lock *mps_lock_new(void);

/* Creates the named lock `name` (mode 0600), unlocked.
 * Returns: the handle; the name stays until mps_unlink().
 * Errors: NULL with errno EINVAL (bad name), EEXIST (the name exists),
 * EACCES, ENOMEM.
 * Owns: the caller owns the handle (mps_lock_close). */
MPS_API mps_lock *mps_lock_create(const char *name);

/* Opens the named lock `name`.
 * Returns: the handle.
 * Errors: NULL with errno EINVAL (bad name), ENOENT, EACCES, EAGAIN (a
 * process is still creating it: retry), EPROTO (not an mpshare lock of
 * this layout version, or a damaged one), ENOMEM.
 * Owns: the caller owns the handle (mps_lock_close). */
MPS_API mps_lock *mps_lock_open(const char *name);

/* Releases this process's handle and mapping. The lock must not be held by
 * this process (the others would recover it as from a dead owner).
 * Returns: 0; 0 for NULL.
 * Errors: -EINVAL when l is the lock of a value or array
 * (mps_value_get_lock, mps_array_get_lock), which its value owns, or a
 * handle closed already.
 * Owns: l is freed, except on -EINVAL. */
MPS_API int mps_lock_close(mps_lock *l);

/* Acquires l, waiting at most `timeout` seconds.
 * Returns: 0, or MPS_OWNER_DIED (acquired; the previous owner died holding
 * it: the data it protects may be half-updated).
 * Errors: -EAGAIN (timeout 0 and held), -ETIMEDOUT, -EDEADLK (this thread
 * holds it already), -EPROTO (the lock is damaged: its owner word names a
 * thread that no longer exists or a process that does not map it, or its
 * kind is not one this library makes; nothing was taken), -EINVAL (NULL l,
 * NaN timeout). */
MPS_API MPS_NODISCARD int mps_lock_acquire(mps_lock *l, double timeout);

/* Releases l, which the calling thread holds.
 * Returns: 0.
 * Errors: -EPERM (the calling thread does not hold it), -EPROTO (its kind
 * word was damaged while it was held: released all the same), -EINVAL
 * (NULL). */
MPS_API int mps_lock_release(mps_lock *l);

/* Most levels of one RLock. */
#define MPS_RLOCK_DEPTH_MAX 0xffffffffu

/* The recursive lock: its owner may acquire it again, and releases it as
 * many times.
 * Returns, Errors, Owns: as the mps_lock_* call of the same name, except
 * that acquiring it again from its owner succeeds, up to
 * MPS_RLOCK_DEPTH_MAX levels (-EAGAIN beyond; never -EDEADLK), and that an
 * RLock's close fails with -EINVAL only for a handle closed already. */
MPS_API mps_rlock *mps_rlock_new(void);
MPS_API mps_rlock *mps_rlock_create(const char *name);
MPS_API mps_rlock *mps_rlock_open(const char *name);
MPS_API int mps_rlock_close(mps_rlock *l);
MPS_API MPS_NODISCARD int mps_rlock_acquire(mps_rlock *l, double timeout);
MPS_API int mps_rlock_release(mps_rlock *l);

/* Runs the statement or block that follows with l held, like Python's
 * `with lock:`, and stores the acquire result in rc, an int variable of the
 * caller's, before the block:
 *
 *     int rc;
 *     MPS_WITH_LOCK(lock, rc) {
 *       if (rc == MPS_OWNER_DIED)
 *         repair_the_data();
 *       update_the_data();
 *     }
 *     if (rc < 0)
 *       return rc; // the lock was not taken and the block did not run
 *
 * The block runs when the acquire succeeded (0 or MPS_OWNER_DIED, which the
 * block sees in rc) and is skipped otherwise: a NULL lock (the lock of a raw
 * value) gives -EINVAL, a lock this thread holds already -EDEADLK, a damaged
 * one -EPROTO, as mps_lock_acquire returns them. The macro only writes rc,
 * so a caller that never reads it gets GCC's "set but not used" warning
 * (-Wall; Clang 14 does not warn through the macro). The lock is released
 * when the block is left in any way, including break, continue, return and
 * goto. l is evaluated once. Needs GCC or Clang (the cleanup attribute). */
#define MPS_WITH_LOCK(l, rc)                                                                       \
  for (struct mps__with _mps_with __attribute__((cleanup(mps__with_exit))) = {(l), ((rc) = 0, 0)}; \
       _mps_with.state == 0 && ((rc) = mps__with_enter(&_mps_with), _mps_with.state == 1);         \
       mps__with_exit(&_mps_with))

/* state: 0 not tried yet, 1 held, 2 released or never taken. The macro
 * starts it with `(rc) = 0`, which sets rc on every path the compiler can
 * see (no "may be used uninitialized" after the block). */
struct mps__with {
  mps_lock *lock;
  int state;
};

static inline int mps__with_enter(struct mps__with *w)
{
  int r = mps_lock_acquire(w->lock, MPS_FOREVER);
  w->state = r >= 0 ? 1 : 2;
  return r;
}

static inline void mps__with_exit(struct mps__with *w)
{
  if (w->state == 1)
    (void)mps_lock_release(w->lock);
  w->state = 2;
}

#ifdef __cplusplus
}
#endif
#endif
