/* The one error table: every errno an mpshare call can return, with its
 * symbolic name and what it means for mpshare calls.
 *
 * One X-macro list (MPS__ERRORS) feeds both mps_err_name() and
 * mps_strerror(), so a code cannot have a name without a text. The texts
 * say what the error means here, which is more useful than the C library's
 * generic strerror() ("Broken pipe" for a closed queue). A code missing
 * from the list still gets glibc's static name and description when the C
 * library has them (strerrorname_np, strerrordesc_np), never a buffer that
 * a later call overwrites. No shared state; nothing here can crash.
 */
#include "config.h"

#include <string.h>

#include "internal.h"

#include "mpshare/version.h"

/* X(code, text). Every errno a public header documents must be here:
 * tests/test_error.c scans the headers and fails on a missing one. */
#define MPS__ERRORS(X)                                                                             \
  X(EINVAL, "invalid argument")                                                                    \
  X(EAGAIN, "not possible now: would block (timeout 0), or still being created; retry")            \
  X(ETIMEDOUT, "timed out")                                                                        \
  X(EMSGSIZE, "message too large for the object or the buffer")                                    \
  X(EEXIST, "an object with this name exists")                                                     \
  X(ENOENT, "no object with this name")                                                            \
  X(EPIPE, "closed, shut down or broken")                                                          \
  X(ENOMEM, "out of memory or shared memory")                                                      \
  X(EPERM, "not the owner (of the lock, or of the name)")                                          \
  X(EOVERFLOW, "value would exceed its limit")                                                     \
  X(EPROTO, "not an mpshare object of this kind and layout version, or a damaged one")             \
  X(EDEADLK, "the calling thread already holds this lock, or is inside a call on this object")     \
  X(EACCES, "permission denied")                                                                   \
  X(ECHILD, "no such child of this process, or the worker running the task died")                  \
  X(ESRCH, "no such process")                                                                      \
  X(ECANCELED, "cancelled")                                                                        \
  X(EBUSY, "busy: still running or still in use")                                                  \
  X(ENOSYS, "not supported on this system")                                                        \
  X(EMFILE, "too many open files in this process")                                                 \
  X(ENFILE, "too many open files in the system")                                                   \
  X(EDOM, "argument out of the function's domain")                                                 \
  X(ERANGE, "result out of range")                                                                 \
  X(EUSERS, "too many waiters: the object's waiter table is full")                                 \
  X(ENOSPC, "no space left for the shared segment")                                                \
  X(EINTR, "interrupted by a signal")                                                              \
  X(EBADF, "bad file descriptor")                                                                  \
  X(EFAULT, "bad address")                                                                         \
  X(EIO, "input/output error")                                                                     \
  X(ENAMETOOLONG, "name too long")                                                                 \
  X(ENOTSUP, "not supported (a redis:// name in a build without hiredis)")                         \
  X(ECONNREFUSED, "the server refused the connection")                                             \
  X(EHOSTUNREACH, "the server's host cannot be reached or does not answer")                        \
  X(ECONNRESET, "the connection to the server was lost during the call")                           \
  X(ENOTCONN, "not connected")                                                                     \
  X(ENOBUFS, "no buffer space: the kernel is short of memory")                                     \
  X(EOWNERDEAD, "the owner died")                                                                  \
  X(ENOTRECOVERABLE, "state not recoverable")

struct mps__err {
  int code;
  const char *name;
  const char *text;
};

#define MPS__ERR_ENTRY(code, text) {code, #code, text},
static const struct mps__err errors[] = {
    {0, "OK", "success"},
    {MPS_OWNER_DIED, "MPS_OWNER_DIED",
     "lock acquired; its previous owner died holding it, the data it protects may be "
     "half-updated"},
    MPS__ERRORS(MPS__ERR_ENTRY)};
#undef MPS__ERR_ENTRY

/* errno values are below 4096 on Linux (the kernel's MAX_ERRNO): anything
 * else is not one, and is never negated (LLONG_MIN has no opposite). */
#define MPS__ERRNO_MAX 4095

/* The errno that err stands for, of either sign, or -1 when it is none. */
static int err_code(long long err)
{
  if (err == MPS_OWNER_DIED)
    return MPS_OWNER_DIED;
  if (err < -MPS__ERRNO_MAX || err > MPS__ERRNO_MAX)
    return -1;
  return (int)(err < 0 ? -err : err);
}

static const struct mps__err *lookup(int code)
{
  for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
    if (errors[i].code == code)
      return &errors[i];
  return NULL;
}

const char *mps_strerror(long long err)
{
  int code = err_code(err);
  const struct mps__err *e = lookup(code);
  if (e != NULL)
    return e->text;
#ifdef HAVE_STRERRORDESC_NP
  const char *s = code > 0 ? strerrordesc_np(code) : NULL;
  if (s != NULL)
    return s;
#endif
  return "unknown error";
}

const char *mps_err_name(long long err)
{
  int code = err_code(err);
  const struct mps__err *e = lookup(code);
  if (e != NULL)
    return e->name;
#ifdef HAVE_STRERRORNAME_NP
  const char *s = code > 0 ? strerrorname_np(code) : NULL;
  if (s != NULL)
    return s;
#endif
  return "UNKNOWN";
}

const char *mps_version(void) { return MPS_VERSION_STRING; }

unsigned mps_version_number(void) { return MPS_VERSION_NUMBER; }
