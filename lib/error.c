/* The one error table: what each negative errno means for mpshare calls.
 *
 * The texts say what the error means here, which is more useful than the
 * C library's generic strerror() ("Broken pipe" for a closed queue).
 */
#include "config.h"

#include <string.h>

#include "internal.h"

#include "mpshare/version.h"

struct mps__err {
  int code;
  const char *name;
  const char *text;
};

static const struct mps__err errors[] = {
    {0, "OK", "success"},
    {MPS_OWNER_DIED, "MPS_OWNER_DIED",
     "lock acquired; its previous owner died holding it, the data it protects may be half-updated"},
    {EINVAL, "EINVAL", "invalid argument"},
    {EAGAIN, "EAGAIN", "would block (timeout 0)"},
    {ETIMEDOUT, "ETIMEDOUT", "timed out"},
    {EMSGSIZE, "EMSGSIZE", "message too large for the object or the buffer"},
    {EEXIST, "EEXIST", "an object with this name exists"},
    {ENOENT, "ENOENT", "no object with this name"},
    {EPIPE, "EPIPE", "closed, shut down or broken"},
    {ENOMEM, "ENOMEM", "out of memory or shared memory"},
    {EPERM, "EPERM", "not the owner of the lock"},
    {EOVERFLOW, "EOVERFLOW", "value would exceed its limit"},
    {EPROTO, "EPROTO", "not an mpshare object of this kind and layout version"},
    {EDEADLK, "EDEADLK", "the calling thread already holds this lock"},
    {EACCES, "EACCES", "permission denied"},
    {ECHILD, "ECHILD", "no such child of this process, or the worker running the task died"},
    {ESRCH, "ESRCH", "no such process"},
    {ECANCELED, "ECANCELED", "cancelled"},
    {EBUSY, "EBUSY", "busy"},
    {ENOSYS, "ENOSYS", "not supported on this system"},
    {ENOTSUP, "ENOTSUP", "not supported by this build (a redis:// name needs hiredis)"},
    {ECONNREFUSED, "ECONNREFUSED", "the server refused the connection"},
    {EHOSTUNREACH, "EHOSTUNREACH", "the server's host cannot be reached or does not answer"},
    {ECONNRESET, "ECONNRESET", "the connection to the server was lost during the call"},
};

static const struct mps__err *lookup(int err)
{
  int code = err == MPS_OWNER_DIED ? err : (err < 0 ? -err : err);
  for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
    if (errors[i].code == code)
      return &errors[i];
  return NULL;
}

const char *mps_strerror(int err)
{
  const struct mps__err *e = lookup(err);
  if (e != NULL)
    return e->text;
  /* Not ours: the system's text, which glibc keeps static for known codes. */
  return err < 0 && err > -4096 ? strerror(-err) : "unknown error";
}

const char *mps_err_name(int err)
{
  const struct mps__err *e = lookup(err);
  return e != NULL ? e->name : "UNKNOWN";
}

const char *mps_version(void)
{
  return MPS_VERSION_STRING;
}

unsigned mps_version_number(void)
{
  return MPS_VERSION_NUMBER;
}
