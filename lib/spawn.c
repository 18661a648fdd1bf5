/* Forking children and watching them: the one fork / die-with-parent /
 * pidfd helper of mps_process and the pool's workers.
 *
 * Nothing here is shared memory. A child is watched through a pidfd when the
 * kernel gives one (Linux >= 5.3, and not refused by a seccomp profile or a
 * tool such as valgrind 3.19): it becomes readable when the child exits, so
 * a watcher sleeps in poll(). Without one, waitid(WNOWAIT) sees the exit
 * without reaping it, so the reap always stays with the caller.
 *
 * Crash semantics: a child forked with die_with_parent asks for SIGKILL when
 * the forking *thread* dies (PR_SET_PDEATHSIG), then compares getppid() with
 * the pid recorded before the fork: if the parent died before the request
 * was made, no death signal will ever come, so the child kills itself with
 * the same signal.
 */
#include "config.h"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

/* Polling backoff bounds for waiting without a pidfd. */
#define BACKOFF_MIN_NS 1000000L  /* 1 ms */
#define BACKOFF_MAX_NS 20000000L /* 20 ms */

pid_t mps__fork(bool die_with_parent)
{
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0)
    return errno == ENOMEM ? -ENOMEM : -EAGAIN;
  if (pid == 0 && die_with_parent) {
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      raise(SIGKILL);
  }
  return pid;
}

int mps__pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
  /* The child is not reaped yet, so its pid cannot have been reused. */
  int fd = (int)syscall(SYS_pidfd_open, pid, 0);
  return fd >= 0 ? fd : -errno;
#else
  (void)pid;
  return -ENOSYS;
#endif
}

bool mps__child_exited(pid_t pid)
{
  siginfo_t si;
  for (;;) {
    si.si_pid = 0;
    int r = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT | WNOHANG);
    if (r < 0 && errno == EINTR)
      continue;
    /* An error means it is not our unreaped child any more: nothing left
     * to wait for. */
    return r < 0 || si.si_pid != 0;
  }
}

/* Sleeps on the pidfd until the child exits or d passes: 0, -ETIMEDOUT, or
 * 1 if ppoll() failed and the caller must fall back. */
static int wait_pidfd(int fd, const mps__deadline *d)
{
  for (;;) {
    struct timespec left, *tmo = NULL;
    if (d->kind != MPS__FOREVER) {
      if (mps__deadline_left(d, &left) < 0)
        return -ETIMEDOUT;
      tmo = &left;
    }
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int n = ppoll(&pfd, 1, tmo, NULL);
    if (n > 0)
      return 0;
    if (n == 0)
      return -ETIMEDOUT;
    if (errno != EINTR)
      return 1;
  }
}

/* Without a pidfd: an untimed wait sleeps in waitid(WNOWAIT); a timed one
 * checks with a growing backoff. */
static int wait_fallback(pid_t pid, const mps__deadline *d)
{
  siginfo_t si;
  if (d->kind == MPS__FOREVER) {
    while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
      ;
    return 0;
  }
  long ns = BACKOFF_MIN_NS;
  for (;;) {
    if (mps__child_exited(pid))
      return 0;
    if (mps__deadline_passed(d))
      return -ETIMEDOUT;
    nanosleep(&(struct timespec){.tv_nsec = ns}, NULL);
    ns = ns * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS : ns * 2;
  }
}

int mps__child_wait_exit(pid_t pid, int pidfd, const mps__deadline *d)
{
  int w = pidfd >= 0 ? wait_pidfd(pidfd, d) : 1;
  return w == 1 ? wait_fallback(pid, d) : w;
}
