/* mpshare/inspect.h: looking at the named objects in /dev/shm from outside.
 *
 * Read-only and safe: these calls never take an object's lock, never wait
 * for another process and never map a segment; they copy its header and
 * fixed part with pread(), so a segment that is being modified, truncated
 * or is damaged gives -EPROTO or a slightly stale picture, never a crash.
 * The `mpshare` command (mpshare(1)) is built on them.
 */
#ifndef MPSHARE_INSPECT_H
#define MPSHARE_INSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <mpshare/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MPS_INFO_MAX_FIELDS 12
#define MPS_INFO_RECOVERIES 16

/* One named number of an object's state or counters. The strings are
 * static. When text is not NULL the value is that text (an order, a type);
 * else when is_bool it is true or false; else it is the number value. */
typedef struct mps_info_field {
  const char *key;
  int64_t value;
  const char *text;
  bool is_bool;
} mps_info_field;

/* One crash recovery: the process that recovered, when (seconds since the
 * epoch) and what it repaired (a static string). */
typedef struct mps_info_recovery {
  pid_t pid;
  double time;
  const char *what;
} mps_info_recovery;

/* Everything known about one object. A file that is not an mpshare object
 * of this library's layout, or is damaged, has kind "foreign", status
 * -EPROTO, and only name and size filled. */
typedef struct mps_object_info {
  char name[MPS_NAME_MAX + 2]; /* with its leading '/' */
  const char *kind;            /* "lock", "rlock", "value", "array", "shm", "semaphore",
                                  "bounded_semaphore", "event", "condition", "barrier",
                                  "queue", or "foreign" (static strings) */
  int status;                  /* 0, or -EPROTO for a foreign or damaged file */
  uint64_t size;               /* bytes of the segment */
  pid_t creator_pid;
  uint64_t creator_start; /* its start time, clock ticks after boot */
  uid_t creator_uid;
  bool creator_alive; /* that process (pid and start time) still runs */
  double created;     /* seconds since the epoch */
  unsigned version;   /* MPS_VERSION_NUMBER of the library that made it */
  int attached;       /* live processes that map it now; -1: unknown */
  size_t n_state;     /* the kind's state: depth, held, value, ... */
  mps_info_field state[MPS_INFO_MAX_FIELDS];
  size_t n_counters; /* the kind's counters since creation */
  mps_info_field counters[MPS_INFO_MAX_FIELDS];
  uint64_t recoveries; /* crash recoveries ever recorded */
  size_t n_recent;     /* the last ones, newest first */
  mps_info_recovery recent[MPS_INFO_RECOVERIES];
  unsigned char reserved_[64]; /* room to grow; zero */
} mps_object_info;

/* Describes the named object into *info (overwritten whole), without
 * opening it: no lock taken, nobody waited for.
 * Returns: 0.
 * Errors: -EINVAL (bad name, NULL info), -ENOENT, -EACCES, -EPROTO (not an
 * mpshare object, another layout version, or damaged: info->kind is then
 * "foreign" and only name and size are filled), -ENOMEM, -EMFILE, -ENFILE
 * (out of memory or file descriptors).
 * Owns: nothing is allocated; the strings in *info are static. */
MPS_API int mps_inspect(const char *name, mps_object_info *info);

/* List the foreign files of this user too, not only mpshare objects. */
#define MPS_INSPECT_ALL 1u

/* Lists this user's mpshare objects in /dev/shm (with MPS_INSPECT_ALL,
 * also the other files this user owns there, as "foreign"), sorted by
 * name, with the number of live processes that map each.
 * Returns: 0, with a new array in *list of *n entries.
 * Errors: -EINVAL (NULL list or n, unknown flags), -ENOMEM, or opendir(3)'s
 * error on /dev/shm (-ENOENT, -EACCES, -EMFILE, -ENFILE); *list is then
 * NULL and *n 0.
 * Owns: the caller releases *list with mps_inspect_free (also when *n is
 * 0). */
MPS_API int mps_inspect_list(mps_object_info **list, size_t *n, unsigned flags);

/* Releases a list from mps_inspect_list.
 * Returns: nothing; NULL is a no-op.
 * Errors: none.
 * Owns: list is freed. */
MPS_API void mps_inspect_free(mps_object_info *list);

/* Finds a field by name in info->state or info->counters.
 * Returns: the field named key among the n fields, or NULL (also for NULL
 * fields or key).
 * Errors: none.
 * Owns: the field is part of the caller's mps_object_info. */
MPS_API const mps_info_field *mps_info_get(const mps_info_field *fields, size_t n, const char *key);

#ifdef __cplusplus
}
#endif

#endif
