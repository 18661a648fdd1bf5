/* Semaphore, BoundedSemaphore, Event, Condition and Barrier, the
 * synchronization primitives of Python's multiprocessing, between processes.
 *
 * Each lives in shared memory: anonymous (mps_X_new, created before fork()
 * and shared with every child) or named (mps_X_create / mps_X_open, reachable
 * by unrelated processes of the same user; mps_unlink() removes the name).
 * mps_X_close() releases this process's handle and mapping.
 *
 * Crash safety: every wait sleeps on a futex word in the shared segment;
 * nothing a waiter leaves behind when it is killed can block the others or
 * swallow a wake-up meant for them. The details are given per object below.
 */
#ifndef MPSHARE_SYNC_H
#define MPSHARE_SYNC_H

#include <mpshare/common.h>
#include <mpshare/lock.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Semaphore and BoundedSemaphore ---------------------------------------
 *
 * A counter that acquire decrements (waiting while it is 0) and release
 * increments. A bounded semaphore refuses to be released above its initial
 * value. A process that dies holding a unit does not give it back (as with
 * POSIX and Python semaphores): the count stays one lower. */
typedef struct mps_semaphore mps_semaphore;

/* Largest value of a semaphore. */
#define MPS_SEMAPHORE_MAX 0x7fffffff

/* Creates an anonymous semaphore (mps_bounded_semaphore_new: a bounded one)
 * with `value` units, shared with the children forked after it.
 * Returns: the handle.
 * Errors: NULL with errno EINVAL (value above MPS_SEMAPHORE_MAX), ENOMEM.
 * Owns: the caller owns the handle (mps_semaphore_close). */
MPS_API mps_semaphore *mps_semaphore_new(unsigned value);
MPS_API mps_semaphore *mps_bounded_semaphore_new(unsigned value);

/* Named forms (mode 0600); open takes either kind (the bound is part of the
 * object).
 * Returns: the handle; the name stays until mps_unlink().
 * Errors: NULL with errno EINVAL (bad name or value), EEXIST (create),
 * ENOENT (open), EACCES, EAGAIN (open: a process is still creating it),
 * EPROTO (open: not a semaphore of this layout, or damaged), ENOMEM.
 * Owns: the caller owns the handle (mps_semaphore_close). */
MPS_API mps_semaphore *mps_semaphore_create(const char *name, unsigned value);
MPS_API mps_semaphore *mps_bounded_semaphore_create(const char *name, unsigned value);
MPS_API mps_semaphore *mps_semaphore_open(const char *name);

/* Releases this process's handle and mapping.
 * Returns: 0; 0 for NULL.
 * Errors: -EINVAL (a handle closed already).
 * Owns: s is freed. */
MPS_API int mps_semaphore_close(mps_semaphore *s);

/* Takes one unit, waiting at most `timeout` seconds for one.
 * Returns: 0.
 * Errors: -EAGAIN (timeout 0, value 0), -ETIMEDOUT, -EINVAL (NULL, NaN),
 * -EPROTO (damaged), -EDEADLK (re-entered from a signal handler; see
 * common.h). */
MPS_API MPS_NODISCARD int mps_semaphore_acquire(mps_semaphore *s, double timeout);

/* Gives one unit back and wakes the waiters.
 * Returns: 0.
 * Errors: -EOVERFLOW (bounded and already at its initial value, or at
 * MPS_SEMAPHORE_MAX), -EINVAL (NULL), -EPROTO (damaged), -EDEADLK
 * (re-entered from a signal handler). */
MPS_API int mps_semaphore_release(mps_semaphore *s);

/* The current value, a snapshot that may change at once.
 * Returns: the value (>= 0).
 * Errors: -EINVAL (NULL). */
MPS_API int mps_semaphore_value(const mps_semaphore *s);

/* ---- Event ----------------------------------------------------------------
 *
 * A flag that processes wait for. set() wakes every waiter; a waiter killed
 * while waiting leaves nothing behind. */
typedef struct mps_event mps_event;

/* Creates an anonymous, clear event, shared with the children forked after
 * it.
 * Returns: the handle.
 * Errors: NULL with errno ENOMEM.
 * Owns: the caller owns the handle (mps_event_close). */
MPS_API mps_event *mps_event_new(void);

/* Named forms (mode 0600).
 * Returns: the handle; the name stays until mps_unlink().
 * Errors: NULL with errno EINVAL (bad name), EEXIST (create), ENOENT
 * (open), EACCES, EAGAIN (open: a process is still creating it), EPROTO
 * (open: not an event of this layout, or damaged), ENOMEM.
 * Owns: the caller owns the handle (mps_event_close). */
MPS_API mps_event *mps_event_create(const char *name);
MPS_API mps_event *mps_event_open(const char *name);

/* Releases this process's handle and mapping.
 * Returns: 0; 0 for NULL.
 * Errors: -EINVAL (a handle closed already).
 * Owns: e is freed. */
MPS_API int mps_event_close(mps_event *e);

/* Sets the flag and wakes every waiter (set), or clears it (clear).
 * Returns: 0.
 * Errors: -EINVAL (NULL), -EPROTO (damaged), -EDEADLK (re-entered from a
 * signal handler). */
MPS_API int mps_event_set(mps_event *e);
MPS_API int mps_event_clear(mps_event *e);

/* Whether the flag is set.
 * Returns: the flag; false for NULL.
 * Errors: none. */
MPS_API bool mps_event_is_set(const mps_event *e);

/* Waits until the flag is set, at most `timeout` seconds. Like Python, a
 * waiter that was waiting when set() ran returns 0 even if the flag was
 * cleared again before it woke.
 * Returns: 0.
 * Errors: -EAGAIN (timeout 0, not set), -ETIMEDOUT, -EINVAL (NULL, NaN),
 * -EPROTO (damaged), -EDEADLK (re-entered from a signal handler). */
MPS_API MPS_NODISCARD int mps_event_wait(mps_event *e, double timeout);

/* ---- Condition ------------------------------------------------------------
 *
 * A condition variable over a lock: the caller holds the lock, waits (which
 * releases it while asleep and takes it again before returning) and is woken
 * by notify. notify(n) wakes exactly n of the processes waiting at that
 * moment (fewer if fewer wait), oldest first; a later waiter never takes a
 * notification meant for an earlier one, and a waiter that was killed before
 * the notify is skipped, so it never takes one either. A waiter killed after
 * being notified counts as woken (as if it returned and then died).
 *
 * At most MPS_COND_MAX_WAITERS processes or threads wait on one condition at
 * once. */
typedef struct mps_cond mps_cond;

/* Most processes or threads waiting on one condition at once. */
#define MPS_COND_MAX_WAITERS 128

/* Creates an anonymous condition over `lock` (from mps_lock_new,
 * mps_value_get_lock or mps_array_get_lock), or over a lock of its own when
 * lock is NULL, shared with the children forked after it.
 * Returns: the handle.
 * Errors: NULL with errno EINVAL (lock is a handle closed already), ENOMEM.
 * Owns: the caller owns the handle (mps_cond_close); the lock is borrowed
 * and must outlive the condition. */
MPS_API mps_cond *mps_cond_new(mps_lock *lock);

/* Python's default Condition(): as mps_cond_new, over an RLock (from
 * mps_rlock_new), or over a recursive lock of its own when lock is NULL.
 * The owner may hold it several levels deep when it waits: wait releases
 * every level while asleep and takes them all back before returning.
 * Returns, Errors, Owns: as mps_cond_new. */
MPS_API mps_cond *mps_cond_new_rlock(mps_rlock *lock);

/* Named forms (mode 0600), always over the condition's own Lock (a lock in
 * another segment cannot be found by name from here).
 * Returns: the handle; the name stays until mps_unlink().
 * Errors: NULL with errno EINVAL (bad name), EEXIST (create), ENOENT
 * (open), EACCES, EAGAIN (open: a process is still creating it), EPROTO
 * (open: not a named condition of this layout, or damaged), ENOMEM.
 * Owns: the caller owns the handle (mps_cond_close). */
MPS_API mps_cond *mps_cond_create(const char *name);
MPS_API mps_cond *mps_cond_open(const char *name);

/* Releases this process's handle and mapping; the lock must not be held by
 * this thread.
 * Returns: 0; 0 for NULL.
 * Errors: -EINVAL (a handle closed already).
 * Owns: c is freed; a borrowed lock stays its owner's. */
MPS_API int mps_cond_close(mps_cond *c);

/* Takes and releases the condition's lock.
 * Returns, Errors: as mps_lock_acquire / mps_lock_release (MPS_OWNER_DIED
 * included). */
MPS_API MPS_NODISCARD int mps_cond_acquire(mps_cond *c, double timeout);
MPS_API int mps_cond_release(mps_cond *c);

/* Releases the lock, sleeps until notified or `timeout` seconds pass, takes
 * the lock again (without a time limit, as Python does) and returns holding
 * it.
 * Returns: 0 (notified), or MPS_OWNER_DIED (the lock's owner died while we
 * slept: the lock is ours and consistent, the data may be half-updated;
 * whether we were notified is not said, so recheck).
 * Errors: -ETIMEDOUT, -EAGAIN (timeout 0: not notified), -EPERM (the
 * calling thread does not hold the lock; nothing is released), -EUSERS
 * (MPS_COND_MAX_WAITERS wait already: retry once one has left), -EINVAL
 * (NULL, NaN), -EPROTO (the lock was found damaged when retaken: it is
 * not held on return). Whatever the other results, a caller that held the
 * lock holds it on return. */
MPS_API MPS_NODISCARD int mps_cond_wait(mps_cond *c, double timeout);

/* Waits until pred(arg) returns non-zero, evaluating it with the lock held,
 * at most `timeout` seconds in all.
 * Returns: 0 once pred is true (also when it is true at once), or
 * MPS_OWNER_DIED (as for wait: returned at once, pred not evaluated again).
 * Errors: -ETIMEDOUT, -EAGAIN (timeout 0; pred still false), -EPERM,
 * -EUSERS, -EINVAL (NULL c or pred, NaN), -EPROTO (as for wait). */
MPS_API MPS_NODISCARD int mps_cond_wait_for(mps_cond *c, int (*pred)(void *arg), void *arg,
                                            double timeout);

/* Wakes n of the current waiters (notify) or all of them (notify_all),
 * oldest first; the caller holds the lock.
 * Returns: how many were woken (0..n).
 * Errors: -EPERM (the lock is not held by the calling thread), -EINVAL
 * (NULL). */
MPS_API int mps_cond_notify(mps_cond *c, unsigned n);
MPS_API int mps_cond_notify_all(mps_cond *c);

/* ---- Barrier --------------------------------------------------------------
 *
 * `parties` processes wait for each other; when the last one arrives all are
 * released and the barrier is ready for the next round. A timeout or
 * mps_barrier_abort() breaks it: every waiter and every later wait gets
 * -EPIPE until mps_barrier_reset().
 *
 * A party killed while waiting has arrived and stays arrived: the round
 * completes when `parties` arrivals happened, dead ones included, so the
 * survivors are released by the last party and the dead one's index goes
 * unused. n_waiting counts it. (A party that dies before arriving never
 * arrives; the others wait for it until their timeout breaks the barrier.) */
typedef struct mps_barrier mps_barrier;

/* Most parties of one barrier. */
#define MPS_BARRIER_PARTIES_MAX 0x7fffffff

/* Creates an anonymous barrier for `parties` processes, shared with the
 * children forked after it.
 * Returns: the handle.
 * Errors: NULL with errno EINVAL (0 or above MPS_BARRIER_PARTIES_MAX),
 * ENOMEM.
 * Owns: the caller owns the handle (mps_barrier_close). */
MPS_API mps_barrier *mps_barrier_new(unsigned parties);

/* Named forms (mode 0600).
 * Returns: the handle; the name stays until mps_unlink().
 * Errors: NULL with errno EINVAL (bad name or parties), EEXIST (create),
 * ENOENT (open), EACCES, EAGAIN (open: a process is still creating it),
 * EPROTO (open: not a barrier of this layout, or damaged), ENOMEM.
 * Owns: the caller owns the handle (mps_barrier_close). */
MPS_API mps_barrier *mps_barrier_create(const char *name, unsigned parties);
MPS_API mps_barrier *mps_barrier_open(const char *name);

/* Releases this process's handle and mapping.
 * Returns: 0; 0 for NULL.
 * Errors: -EINVAL (a handle closed already).
 * Owns: b is freed. */
MPS_API int mps_barrier_close(mps_barrier *b);

/* Arrives and waits for the other parties, at most `timeout` seconds.
 * Returns: this party's arrival index, distinct in the round,
 * 0..parties-1 (parties-1 for the last one, which releases the others).
 * Errors: -EPIPE (broken before or while waiting, or reset while waiting);
 * -ETIMEDOUT, -EAGAIN (timeout 0) when this call's timeout ran out: it
 * breaks the barrier and the other waiters get -EPIPE (but when the
 * timeout ran out before this party could take the barrier's lock, held
 * by a stopped process, it has not arrived and nothing is broken);
 * -EINVAL (NULL, NaN); -EPROTO (damaged); -EDEADLK (re-entered from a
 * signal handler: not arrived). */
MPS_API MPS_NODISCARD int mps_barrier_wait(mps_barrier *b, double timeout);

/* Breaks the barrier: waiters and later waits get -EPIPE until reset.
 * Returns: 0.
 * Errors: -EINVAL (NULL), -EPROTO (damaged), -EDEADLK (re-entered from a
 * signal handler). */
MPS_API int mps_barrier_abort(mps_barrier *b);

/* Starts a fresh round: the barrier is no longer broken and nobody has
 * arrived. Processes waiting at that moment get -EPIPE.
 * Returns: 0.
 * Errors: -EINVAL (NULL), -EPROTO (damaged), -EDEADLK (re-entered from a
 * signal handler). */
MPS_API int mps_barrier_reset(mps_barrier *b);

/* The number of parties, and the arrivals in the current round (dead
 * parties included; 0 while broken).
 * Returns: the count (parties > 0, n_waiting >= 0).
 * Errors: -EINVAL (NULL). */
MPS_API int mps_barrier_parties(const mps_barrier *b);
MPS_API int mps_barrier_n_waiting(const mps_barrier *b);

/* Whether the barrier is broken.
 * Returns: the state; false for NULL.
 * Errors: none. */
MPS_API bool mps_barrier_broken(const mps_barrier *b);

#ifdef __cplusplus
}
#endif
#endif
