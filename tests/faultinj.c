/* A test-only LD_PRELOAD shim (never installed) that makes system calls
 * fail on demand, so the tests can check that each failure gives the
 * documented error and leaks nothing.
 *
 * MPS_FAULT in the environment, read at every call, says what fails: a
 * comma-separated list of  name[:n[:stop]]
 *   name   mmap, madvise, ftruncate, posix_fallocate, fallocate, fork,
 *          socketpair or pidfd_open (the libc wrapper or the raw syscall)
 *   n      fail only the n-th call (1-based) made while MPS_FAULT has this
 *          value; without it, every call fails
 *   stop   instead of failing, the process stops itself (SIGSTOP) before
 *          making the call: a creator caught in the middle of its work
 * Each failing call sets the errno a full system would: ENOMEM for mmap,
 * madvise and fork's EAGAIN, ENOSPC for ftruncate and the fallocates,
 * EMFILE for socketpair, ENOSYS for pidfd_open (an old kernel or a seccomp
 * profile). Counting starts again whenever MPS_FAULT changes. The
 * large-file names (mmap64, ftruncate64, posix_fallocate64, fallocate64),
 * which a build with _FILE_OFFSET_BITS=64 calls, fail the same way.
 *
 *   LD_PRELOAD=tests/.libs/libfaultinj.so MPS_FAULT=posix_fallocate ./prog
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

enum {
  F_MMAP,
  F_MADVISE,
  F_FTRUNCATE,
  F_POSIX_FALLOCATE,
  F_FALLOCATE,
  F_FORK,
  F_SOCKETPAIR,
  F_PIDFD_OPEN,
  F_N
};
static const char *const names[F_N] = {"mmap",      "madvise", "ftruncate",  "posix_fallocate",
                                       "fallocate", "fork",    "socketpair", "pidfd_open"};

static char seen[256]; /* the MPS_FAULT value the counters belong to */
static unsigned calls[F_N];

/* Whether call `f` should fail now (false: go on to the real call). */
static bool should_fail(int f)
{
  const char *spec = getenv("MPS_FAULT");
  if (spec == NULL || spec[0] == '\0')
    return false;
  if (strncmp(spec, seen, sizeof(seen)) != 0) {
    strncpy(seen, spec, sizeof(seen) - 1);
    memset(calls, 0, sizeof(calls));
  }
  unsigned call = ++calls[f];
  size_t len = strlen(names[f]);
  for (const char *p = spec; p != NULL && *p != '\0';
       p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
    if (strncmp(p, names[f], len) != 0 || (p[len] != ':' && p[len] != ',' && p[len] != '\0'))
      continue;
    unsigned n = p[len] == ':' ? (unsigned)strtoul(p + len + 1, NULL, 10) : 0;
    if (n != 0 && n != call)
      continue;
    const char *stop = strstr(p + len, ":stop");
    const char *end = strchr(p, ',');
    if (stop != NULL && (end == NULL || stop < end)) {
      raise(SIGSTOP);
      return false;
    }
    return true;
  }
  return false;
}

/* The next definition of each call, found at its first use (another
 * library's constructor may call it before ours would run). */
#define REAL(ret, name, ...)                                                                       \
  static ret (*real_##name##_p)(__VA_ARGS__);                                                      \
  static ret (*real_##name(void))(__VA_ARGS__)                                                     \
  {                                                                                                \
    if (real_##name##_p == NULL)                                                                   \
      real_##name##_p = (ret(*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name);                              \
    return real_##name##_p;                                                                        \
  }

REAL(void *, mmap, void *, size_t, int, int, int, off_t)
REAL(int, madvise, void *, size_t, int)
REAL(int, ftruncate, int, off_t)
REAL(int, posix_fallocate, int, off_t, off_t)
REAL(int, fallocate, int, int, off_t, off_t)
REAL(pid_t, fork, void)
REAL(int, socketpair, int, int, int, int *)
REAL(long, syscall, long, long, long, long, long, long, long)
REAL(void *, mmap64, void *, size_t, int, int, int, off_t)
REAL(int, ftruncate64, int, off_t)
REAL(int, posix_fallocate64, int, off_t, off_t)
REAL(int, fallocate64, int, int, off_t, off_t)

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
  if (should_fail(F_MMAP)) {
    errno = ENOMEM;
    return MAP_FAILED;
  }
  return real_mmap()(addr, len, prot, flags, fd, off);
}

int madvise(void *addr, size_t len, int advice)
{
  if (should_fail(F_MADVISE)) {
    errno = ENOMEM;
    return -1;
  }
  return real_madvise()(addr, len, advice);
}

int ftruncate(int fd, off_t len)
{
  if (should_fail(F_FTRUNCATE)) {
    errno = ENOSPC;
    return -1;
  }
  return real_ftruncate()(fd, len);
}

int posix_fallocate(int fd, off_t off, off_t len)
{
  return should_fail(F_POSIX_FALLOCATE) ? ENOSPC : real_posix_fallocate()(fd, off, len);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
  if (should_fail(F_FALLOCATE)) {
    errno = ENOSPC;
    return -1;
  }
  return real_fallocate()(fd, mode, off, len);
}

pid_t fork(void)
{
  if (should_fail(F_FORK)) {
    errno = EAGAIN;
    return -1;
  }
  return real_fork()();
}

int socketpair(int domain, int type, int proto, int sv[2])
{
  if (should_fail(F_SOCKETPAIR)) {
    errno = EMFILE;
    return -1;
  }
  return real_socketpair()(domain, type, proto, sv);
}

int pidfd_open(pid_t pid, unsigned flags);
int pidfd_open(pid_t pid, unsigned flags)
{
  if (should_fail(F_PIDFD_OPEN)) {
    errno = ENOSYS;
    return -1;
  }
  return (int)real_syscall()(SYS_pidfd_open, pid, flags, 0, 0, 0, 0);
}

long syscall(long n, ...)
{
  va_list ap;
  long a[6];
  va_start(ap, n);
  for (int i = 0; i < 6; i++)
    a[i] = va_arg(ap, long);
  va_end(ap);
  if (n == SYS_pidfd_open && should_fail(F_PIDFD_OPEN)) {
    errno = ENOSYS;
    return -1;
  }
  return real_syscall()(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
  if (should_fail(F_MMAP)) {
    errno = ENOMEM;
    return MAP_FAILED;
  }
  return real_mmap64()(addr, len, prot, flags, fd, off);
}

int ftruncate64(int fd, off_t len);
int ftruncate64(int fd, off_t len)
{
  if (should_fail(F_FTRUNCATE)) {
    errno = ENOSPC;
    return -1;
  }
  return real_ftruncate64()(fd, len);
}

int posix_fallocate64(int fd, off_t off, off_t len);
int posix_fallocate64(int fd, off_t off, off_t len)
{
  return should_fail(F_POSIX_FALLOCATE) ? ENOSPC : real_posix_fallocate64()(fd, off, len);
}

int fallocate64(int fd, int mode, off_t off, off_t len);
int fallocate64(int fd, int mode, off_t off, off_t len)
{
  if (should_fail(F_FALLOCATE)) {
    errno = ENOSPC;
    return -1;
  }
  return real_fallocate64()(fd, mode, off, len);
}
