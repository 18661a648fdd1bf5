/* mpshare: conventions shared by every object.
 *
 * Each call's comment has one shape: what it does; "Returns:" its results;
 * "Errors:" each negative errno it returns (constructors: NULL and errno)
 * and when; "Owns:" who owns what, also on failure, where anything changes
 * hands. The man pages (man/) say the same in more words.
 *
 * Return values: calls that return int or ssize_t give 0 (or a length or a
 * count) on success and a negative errno on failure; mps_strerror() explains
 * any of them. Constructors return a handle, or NULL with errno set. Calls
 * marked MPS_NODISCARD report a result the caller must look at (an acquire
 * that failed, a message that was not queued); the compiler warns when it is
 * dropped.
 *
 * NULL handles, one rule for every object: a NULL handle is never
 * dereferenced.
 *   - Calls returning int or ssize_t return -EINVAL.
 *   - Getters whose type cannot carry an error (bool, size_t, pid_t, an
 *     enum, a pointer) return false, 0, MPS_TYPE_NONE or NULL, and leave
 *     errno alone: "nothing", never a plausible answer such as "empty".
 *   - close and free accept NULL as a no-op (returning 0 where they return
 *     int).
 *
 * Options structs (mps_queue_opts, mps_process_opts, mps_pool_opts) end with
 * a reserved tail that must be zero (else -EINVAL / errno EINVAL). Later
 * versions take new fields out of it, so the struct's size never changes
 * and a program compiled against this version keeps working. Initialise
 * them with `= {0}` or designated initialisers, which zero the tail.
 *
 * Timeouts are double seconds: MPS_FOREVER (any negative value) blocks, 0
 * tries once (-EAGAIN if it would block), > 0 waits at most that long on the
 * monotonic clock (-ETIMEDOUT). NaN is -EINVAL.
 *
 * Errors many calls share; each call lists the ones it can return:
 *   - EAGAIN from a named object's open: a live process is still creating
 *     it (for longer than the 200 ms the open waits); retry.
 *   - EPROTO: the segment is not what this library wrote. From an open: a
 *     foreign or truncated file, another kind or layout version, or a
 *     creator that died before finishing it. From a call that takes the
 *     object's lock: the object is damaged (a lock word naming a thread
 *     that no longer exists, an index out of range), and the call gives
 *     up rather than trust it.
 *   - EDEADLK from a call that takes an object's internal lock: this
 *     thread is already inside a call on the same object (a signal handler
 *     interrupted it); nothing was done and the outer call is unharmed.
 *   - ETIMEDOUT / EAGAIN from a timed call also when a stopped process
 *     (SIGSTOP, a debugger) held the object's lock past the deadline.
 *   - EINVAL from a call on a handle already closed or freed, as far as
 *     that can still be told: a guard against a mistake, not a promise.
 */
#ifndef MPSHARE_COMMON_H
#define MPSHARE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MPS_API __attribute__((visibility("default")))
#else
#define MPS_API
#endif

/* A call whose result must be checked: dropping it is a compiler warning.
 * Probed, so that compilers without the attribute still build. */
#if defined(__has_attribute)
#if __has_attribute(warn_unused_result)
#define MPS_NODISCARD __attribute__((warn_unused_result))
#endif
#endif
#ifndef MPS_NODISCARD
#define MPS_NODISCARD
#endif

/* Words of reserved tail in every options struct (see above). */
#define MPS_OPTS_RESERVED 8

/* Block until the call can complete. */
#define MPS_FOREVER (-1.0)

/* Returned (a positive value) by the lock calls when the lock is now yours
 * but its previous owner died holding it: the lock is consistent again, the
 * data it protects may be half-updated. It is above every errno value, so
 * mps_strerror() tells it apart from a positive errno. */
#define MPS_OWNER_DIED 4096

/* Longest object name, in bytes, not counting the optional leading '/'. */
#define MPS_NAME_MAX 200

/* Largest size of one shared segment: a value, an array, a shared memory
 * block or a queue's slots (1 TiB). */
#define MPS_SIZE_MAX ((size_t)1 << 40)

/* Describes err: any value a call returned (int or ssize_t, no cast
 * needed), negative as returned or positive as in errno, 0, or
 * MPS_OWNER_DIED.
 * Returns: a static string, never NULL; "unknown error" for any other
 * number, INT_MIN and LLONG_MIN included.
 * Errors: none. */
MPS_API const char *mps_strerror(long long err);

/* The symbolic name of err, under the same rules as mps_strerror.
 * Returns: a static string, never NULL ("EPIPE", "MPS_OWNER_DIED", "OK" for
 * 0); "UNKNOWN" for a number that is no errno.
 * Errors: none. */
MPS_API const char *mps_err_name(long long err);

/* The library's version as built; compare with the macros in
 * <mpshare/version.h> you compiled with.
 * Returns: the version string ("0.1.0", static) and number
 * (MPS_VERSION_NUMBER).
 * Errors: none. */
MPS_API const char *mps_version(void);
MPS_API unsigned mps_version_number(void);

/* Removes the named object so that it can no longer be opened; processes
 * that have it open keep using it until they close it.
 * Returns: 0.
 * Errors: -EINVAL (bad name), -ENOENT (no such name), -EACCES or -EPERM
 * (another user's name).
 * A redis:// name (see <mpshare/queue.h>) deletes that remote queue and
 * its messages on the server at once; its handles then fail with -ENOENT.
 * More errors then: -EPROTO (the key is not an mpshare queue), -ENOTSUP,
 * and the connection errors of a remote queue. */
MPS_API int mps_unlink(const char *name);

#ifdef __cplusplus
}
#endif
#endif
