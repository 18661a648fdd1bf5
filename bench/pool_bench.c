/* pool_bench: tasks per second through a process pool, against forking a
 * process per task for the same work.
 *
 *   bench/pool_bench [workers] [tasks]
 *
 * Two workloads: an empty task (no argument, no result) and a task with a
 * 1 KiB argument that returns 8 bytes (a checksum of it). The fork-per-task
 * baseline forks a child that runs the same function, sends its result back
 * through a pipe and exits; the parent reaps it. Prints one table row per
 * workload and the ratio pool / fork. Not a test: numbers vary by machine.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mpshare.h>

static ssize_t empty(const void *arg, size_t len, void *out, size_t cap)
{
  (void)arg, (void)len, (void)out, (void)cap;
  return 0;
}

static ssize_t checksum(const void *arg, size_t len, void *out, size_t cap)
{
  uint64_t sum = 0;
  const unsigned char *b = arg;
  if (cap < sizeof(sum))
    return -EMSGSIZE;
  for (size_t i = 0; i < len; i++)
    sum = sum * 31 + b[i];
  memcpy(out, &sum, sizeof(sum));
  return sizeof(sum);
}

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Tasks per second through the pool; -1 on error. */
static double run_pool(mps_pool *p, mps_task_fn fn, const void *arg, size_t len, int n)
{
  mps_future **fs = calloc((size_t)n, sizeof(*fs));
  if (fs == NULL)
    return -1;
  double t0 = now();
  int bad = 0;
  for (int i = 0; i < n; i++)
    bad |= (fs[i] = mps_pool_submit(p, fn, arg, len)) == NULL;
  for (int i = 0; i < n; i++) {
    char out[8];
    bad |= fs[i] == NULL || mps_future_result(fs[i], NULL, out, sizeof(out), MPS_FOREVER) != 0;
    mps_future_free(fs[i]);
  }
  double dt = now() - t0;
  free(fs);
  return bad ? -1 : n / dt;
}

/* Tasks per second when each task is a fork; -1 on error. */
static double run_fork(mps_task_fn fn, const void *arg, size_t len, int n)
{
  double t0 = now();
  for (int i = 0; i < n; i++) {
    int fd[2];
    if (pipe(fd) < 0)
      return -1;
    pid_t pid = fork();
    if (pid < 0)
      return -1;
    if (pid == 0) {
      char out[8];
      ssize_t r = fn(arg, len, out, sizeof(out));
      _exit(r >= 0 && write(fd[1], out, (size_t)r) == r ? 0 : 1);
    }
    close(fd[1]);
    char out[8];
    if (read(fd[0], out, sizeof(out)) < 0)
      return -1;
    close(fd[0]);
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
      return -1;
  }
  return n / (now() - t0);
}

int main(int argc, char **argv)
{
  unsigned workers = argc > 1 ? (unsigned)atoi(argv[1]) : 0;
  int n = argc > 2 ? atoi(argv[2]) : 20000;
  int nfork = n / 10 > 0 ? n / 10 : 1;
  mps_pool *p = mps_pool_new(workers);
  if (p == NULL) {
    perror("mps_pool_new");
    return 1;
  }
  static char kib[1024];
  memset(kib, 'a', sizeof(kib));
  struct {
    const char *name;
    mps_task_fn fn;
    const void *arg;
    size_t len;
  } w[] = {{"empty task", empty, NULL, 0}, {"1 KiB argument", checksum, kib, sizeof(kib)}};
  printf("| workload | pool tasks/s | fork-per-task tasks/s | ratio |\n");
  printf("|---|---:|---:|---:|\n");
  int rc = 0;
  for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
    run_pool(p, w[i].fn, w[i].arg, w[i].len, n / 10); /* warm up */
    double tp = run_pool(p, w[i].fn, w[i].arg, w[i].len, n);
    double tf = run_fork(w[i].fn, w[i].arg, w[i].len, nfork);
    if (tp < 0 || tf < 0)
      rc = 1;
    printf("| %s | %.0f | %.0f | %.1fx |\n", w[i].name, tp, tf, tf > 0 ? tp / tf : 0);
  }
  mps_pool_free(p);
  return rc;
}
