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
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mpshare.h>

/* Forks a child that runs fn(arg) and _exits with its return value. The
 * child dies with the test process, so a test that fails while its
 * children are blocked leaves nothing running behind it. */
static inline pid_t child_run(int (*fn)(void *), void *arg)
{
  fflush(NULL);
  pid_t parent = getpid();
  pid_t pid = fork();
  cr_assert(pid >= 0, "fork: %s", strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(126);
    _exit(fn(arg));
  }
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
    bool ours =
        strncmp(e->d_name, "mps-test-", 9) == 0 && n > k && strcmp(e->d_name + n - k, suffix) == 0;
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

/* Runs an example from $MPS_EXAMPLES_DIR with args, captures its stdout
 * into out, and returns its wait status. */
static inline int run_example(const char *prog, const char *const args[], char *out, size_t cap)
{
  const char *dir = getenv("MPS_EXAMPLES_DIR");
  cr_assert_not_null(dir, "MPS_EXAMPLES_DIR is set by make check");
  char cmd[1024];
  int n = snprintf(cmd, sizeof(cmd), "'%s/%s'", dir, prog);
  for (int i = 0; args[i] != NULL; i++)
    n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " %s", args[i]);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  size_t len = fread(out, 1, cap - 1, p);
  out[len] = '\0';
  return pclose(p);
}

/* Writes one byte on a pipe, asserting it worked. */
static inline void pipe_put(int fd) { cr_assert_eq(write(fd, "x", 1), 1); }

/* Reads one byte from a pipe. A byte that never comes must not hang the
 * suite: SIGALRM ends the test (as a crash) if the read blocks for 30 s,
 * whatever Criterion's timeout does with a worker that has children. */
static inline void pipe_get(int fd)
{
  char c;
  unsigned outer = alarm(30);
  cr_assert_eq(read(fd, &c, 1), 1);
  alarm(outer); /* a test's own, longer guard goes on (0: none) */
}

/* Waits until pid has stopped (SIGSTOP, raised by itself or sent), so a
 * test acts on a process that is really stopped, wherever it stopped. */
static inline void child_wait_stopped(pid_t pid)
{
  int status;
  pid_t r;
  do
    r = waitpid(pid, &status, WUNTRACED);
  while (r < 0 && errno == EINTR);
  cr_assert_eq(r, pid, "waitpid(%d): %s", (int)pid, strerror(errno));
  cr_assert(WIFSTOPPED(status), "child %d did not stop (status 0x%x)", (int)pid, status);
}

/* Seconds on the monotonic clock. */
static inline double test_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#endif
