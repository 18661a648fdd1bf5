/* mpshare: conventions shared by every object.
 *
 * Return values: calls that return int or ssize_t give 0 (or a length or a
 * count) on success and a negative errno on failure; mps_strerror() explains
 * any of them. Constructors return a handle, or NULL with errno set.
 *
 * Timeouts are double seconds: MPS_FOREVER (any negative value) blocks, 0
 * tries once (-EAGAIN if it would block), > 0 waits at most that long on the
 * monotonic clock (-ETIMEDOUT). NaN is -EINVAL.
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

/* Block until the call can complete. */
#define MPS_FOREVER (-1.0)

/* Returned (a positive value) by the lock calls when the lock is now yours
 * but its previous owner died holding it: the lock is consistent again, the
 * data it protects may be half-updated. It is above every errno value, so
 * mps_strerror() tells it apart from a positive errno. */
#define MPS_OWNER_DIED 4096

/* Longest object name, in bytes, not counting the optional leading '/'. */
#define MPS_NAME_MAX 200

/* Describes err, which may be negative (as returned) or positive, or
 * MPS_OWNER_DIED. Never NULL; the string is static. */
MPS_API const char *mps_strerror(int err);

/* The symbolic name of err ("EPIPE", "MPS_OWNER_DIED"), or "UNKNOWN". */
MPS_API const char *mps_err_name(int err);

/* The library's version string ("0.1.0") and number (MPS_VERSION_NUMBER),
 * as built; compare with the macros in <mpshare/version.h> you compiled with. */
MPS_API const char *mps_version(void);
MPS_API unsigned mps_version_number(void);

/* Removes the named object so that it can no longer be opened; processes
 * that have it open keep using it until they close it.
 * Returns 0, -EINVAL (bad name), -ENOENT (no such name), -EACCES.
 * A redis:// name (see <mpshare/queue.h>) deletes that remote queue and
 * its messages on the server at once; its handles then fail with
 * -ENOENT. More errors then: -EPROTO (the key is not an mpshare queue),
 * -ENOTSUP, and the connection errors of a remote queue. */
MPS_API int mps_unlink(const char *name);

#ifdef __cplusplus
}
#endif
#endif
