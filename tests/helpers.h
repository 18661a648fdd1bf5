/* Fork, reap and name helpers shared by the Criterion tests.
 *
 * Children never return into Criterion: they run a function and _exit()
 * with its result, so no atexit handler or Criterion report runs twice.
 * Every child is reaped and its status asserted by the parent.
 */
#ifndef MPS_TEST_HELPERS_H
#define MPS_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mpshare.h>

/* Forks a child that runs fn(arg) and _exits with its return value. */
static inline pid_t child_run(int (*fn)(void *), void *arg)
{
  fflush(NULL);
  pid_t pid = fork();
  cr_assert(pid >= 0, "fork: %s", strerror(errno));
  if (pid == 0)
    _exit(fn(arg));
  return pid;
}

/* Waits for pid and returns its raw status. */
static inline int child_wait(pid_t pid)
{
  int status;
  pid_t r;
  do
    r = waitpid(pid, &status, 0);
  while (r < 0 && errno == EINTR);
  cr_assert_eq(r, pid, "waitpid(%d): %s", (int)pid, strerror(errno));
  return status;
}

/* Reaps pid and asserts that it exited with `code`. */
static inline void child_expect_exit(pid_t pid, int code)
{
  int status = child_wait(pid);
  cr_assert(WIFEXITED(status), "child %d did not exit (status 0x%x)", (int)pid, status);
  cr_assert_eq(WEXITSTATUS(status), code, "child %d exited %d, expected %d", (int)pid,
               WEXITSTATUS(status), code);
}

/* Reaps pid and asserts that it was killed by `sig`. */
static inline void child_expect_signal(pid_t pid, int sig)
{
  int status = child_wait(pid);
  cr_assert(WIFSIGNALED(status), "child %d was not killed (status 0x%x)", (int)pid, status);
  cr_assert_eq(WTERMSIG(status), sig, "child %d killed by %d, expected %d", (int)pid,
               WTERMSIG(status), sig);
}

/* A name unique to this test process, so parallel tests never collide. */
static inline const char *test_name(char buf[64], const char *what)
{
  snprintf(buf, 64, "/mps-test-%s-%d", what, (int)getpid());
  return buf;
}

/* Asserts that no segment named by test_name() in this process is left. */
static inline void assert_no_segments_left(void)
{
  char suffix[32];
  snprintf(suffix, sizeof(suffix), "-%d", (int)getpid());
  DIR *d = opendir("/dev/shm");
  cr_assert_not_null(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t n = strlen(e->d_name), k = strlen(suffix);
    bool ours = strncmp(e->d_name, "mps-test-", 9) == 0 && n > k &&
                strcmp(e->d_name + n - k, suffix) == 0;
    cr_expect(!ours, "segment left behind: /dev/shm/%s", e->d_name);
  }
  closedir(d);
}

/* Polls until pid is asleep in a futex wait (its /proc wchan says so), so a
 * test can act on a process that is really blocked rather than sleeping
 * and hoping. Asserts that this happens within 10 seconds. */
static inline void wait_until_blocked(pid_t pid)
{
  char path[64], wchan[128];
  snprintf(path, sizeof(path), "/proc/%d/wchan", (int)pid);
  for (int i = 0; i < 100000; i++) {
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    size_t n = fread(wchan, 1, sizeof(wchan) - 1, f);
    fclose(f);
    wchan[n] = '\0';
    if (strncmp(wchan, "futex", 5) == 0)
      return;
    struct timespec pause = {0, 100000};
    nanosleep(&pause, NULL);
  }
  cr_assert_fail("process %d never blocked in a futex wait", (int)pid);
}

/* Seconds on the monotonic clock. */
static inline double test_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#endif
