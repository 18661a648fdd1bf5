/* Helpers for the synchronization tests: knowing that a child is asleep,
 * and running an example. */
#ifndef MPS_TEST_SYNC_HELPERS_H
#define MPS_TEST_SYNC_HELPERS_H

#include <sched.h>

#include "helpers.h"

/* Waits until pid is asleep in the kernel (state S). Used after the child
 * said, through a pipe, that its next step is the wait under test: from then
 * on the only place it can sleep is that wait, so this observes the ordering
 * rather than hoping for it. Bounded by the test's own timeout. */
static inline void wait_asleep(pid_t pid)
{
  char path[64], buf[512];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  for (;;) {
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    cr_assert_not_null(p);
    if (p[2] == 'S')
      return;
    sched_yield();
  }
}

/* Runs $MPS_EXAMPLES_DIR/prog and returns its wait status; its output goes
 * to out. */
static inline int run_example(const char *prog, char *out, size_t cap)
{
  const char *dir = getenv("MPS_EXAMPLES_DIR");
  cr_assert_not_null(dir, "MPS_EXAMPLES_DIR is set by make check");
  char cmd[1024];
  snprintf(cmd, sizeof(cmd), "'%s/%s'", dir, prog);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  size_t len = fread(out, 1, cap - 1, p);
  out[len] = '\0';
  return pclose(p);
}

/* Writes and reads one byte on a pipe, asserting it worked. */
static inline void pipe_put(int fd) { cr_assert_eq(write(fd, "x", 1), 1); }

/* A byte that never comes must not hang the suite: SIGALRM ends the test
 * (as a crash) if the read blocks for 30 s, whatever Criterion's timeout
 * does with a worker that has children of its own. */
static inline void pipe_get(int fd)
{
  char c;
  unsigned outer = alarm(30);
  cr_assert_eq(read(fd, &c, 1), 1);
  alarm(outer); /* a test's own, longer guard goes on (0: none) */
}

#endif
