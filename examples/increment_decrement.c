/* The classic shared counter: one process adds 1 a million times, another
 * subtracts 1 a million times, both under the value's lock. The counter
 * ends where it started. With --no-lock the two race and it usually does
 * not: the lock is what makes `*counter += 1` safe across processes.
 *
 *   increment_decrement [--no-lock] [iterations]
 */
#include <mpshare.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int work(mps_value *v, long iterations, int step, int locked)
{
  volatile long *counter = mps_value_ptr(v);
  mps_lock *lock = mps_value_get_lock(v);
  for (long i = 0; i < iterations; i++) {
    if (locked) {
      int rc;
      MPS_WITH_LOCK(lock, rc) *counter += step;
      if (rc < 0)
        return 1;
    } else {
      *counter += step;
    }
  }
  return 0;
}

int main(int argc, char **argv)
{
  int locked = 1;
  long iterations = 1000000;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--no-lock") == 0)
      locked = 0;
    else
      iterations = atol(argv[i]);
  }
  mps_value *v = mps_value_new(MPS_LONG, true);
  if (v == NULL) {
    perror("mps_value_new");
    return 1;
  }
  long *counter = mps_value_ptr(v);
  printf("start value: %ld\n", *counter);

  double t0 = now();
  pid_t pids[2];
  for (int k = 0; k < 2; k++) {
    pids[k] = fork();
    if (pids[k] == 0) {
      _exit(work(v, iterations, k == 0 ? 1 : -1, locked));
    }
  }
  int ok = 1;
  for (int k = 0; k < 2; k++) {
    int status;
    waitpid(pids[k], &status, 0);
    ok &= WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  double elapsed = now() - t0;

  printf("end value: %ld%s\n", *counter, locked ? "" : " (no lock: a race)");
  printf("%.1f ns per %s operation (%ld operations in 2 processes)\n",
         elapsed * 1e9 / (2.0 * iterations), locked ? "locked" : "unlocked", 2 * iterations);
  mps_value_close(v);
  return ok ? 0 : 1;
}
