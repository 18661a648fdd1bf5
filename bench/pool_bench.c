/* pool_bench: tasks per second through a process pool, against forking a
 * process per task for the same work, and against Python's
 * concurrent.futures.ProcessPoolExecutor (bench/pool_peer.py, run with
 * python3 in the same run, alternating, median of 3 rounds).
 *
 *   bench/pool_bench [workers] [tasks]
 *
 * The Python rows: mps_pool_map over a trivial task (square a long) against
 * executor.map(square, range(N), chunksize=256), and N single
 * mps_pool_submit calls then every result against N executor.submit calls,
 * both with 2 workers. MPS_BENCH_PEER names the script (default
 * bench/pool_peer.py); without python3 the rows say so.
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

static ssize_t square(const void *arg, size_t len, void *out, size_t cap)
{
  long x;
  if (len != sizeof(x) || cap < sizeof(x))
    return -EINVAL;
  memcpy(&x, arg, sizeof(x));
  x *= x;
  memcpy(out, &x, sizeof(x));
  return sizeof(x);
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

/* Tasks per second through mps_pool_map over n longs; -1 on error. */
static double run_map(mps_pool *p, long n)
{
  long *in = malloc((size_t)n * sizeof(long)), *out = malloc((size_t)n * sizeof(long));
  ssize_t *vals = malloc((size_t)n * sizeof(ssize_t));
  double r = -1;
  if (in != NULL && out != NULL && vals != NULL) {
    for (long i = 0; i < n; i++)
      in[i] = i;
    double t0 = now();
    int err = mps_pool_map(p, square, in, (size_t)n, sizeof(long), out, sizeof(long), vals, NULL,
                           MPS_FOREVER);
    double dt = now() - t0;
    if (err == 0 && out[n - 1] == (n - 1) * (n - 1))
      r = n / dt;
  }
  free(in);
  free(out);
  free(vals);
  return r;
}

/* Tasks per second of the Python peer, or -1 (no python3, or it failed). */
static double run_peer(const char *what, long n, unsigned workers)
{
  const char *script = getenv("MPS_BENCH_PEER");
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "python3 '%s' %s %ld %u 2>/dev/null",
           script != NULL ? script : "bench/pool_peer.py", what, n, workers);
  FILE *f = popen(cmd, "r");
  double r = -1;
  if (f == NULL)
    return -1;
  if (fscanf(f, "%lf", &r) != 1)
    r = -1;
  return pclose(f) == 0 ? r : -1;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* One row against Python: median of 3 alternating rounds. */
static int peer_row(const char *name, const char *what, long n)
{
  enum { ROUNDS = 3 };
  mps_pool *p = mps_pool_new(2);
  if (p == NULL)
    return 1;
  double mine[ROUNDS], theirs[ROUNDS];
  run_map(p, n / 10); /* warm up */
  for (int r = 0; r < ROUNDS; r++) {
    mine[r] = strcmp(what, "map") == 0 ? run_map(p, n)
                                       : run_pool(p, square, &(long){3}, sizeof(long), (int)n);
    /* Python's submit is ~50x slower: fewer tasks for the same time. */
    theirs[r] = run_peer(what, strcmp(what, "map") == 0 ? n : n / 50, 2);
  }
  mps_pool_free(p);
  qsort(mine, ROUNDS, sizeof(double), cmp_double);
  qsort(theirs, ROUNDS, sizeof(double), cmp_double);
  if (theirs[ROUNDS / 2] < 0)
    printf("| %s | %.0f | not run (python3) | - |\n", name, mine[ROUNDS / 2]);
  else
    printf("| %s | %.0f | %.0f | %.2fx |\n", name, mine[ROUNDS / 2], theirs[ROUNDS / 2],
           mine[ROUNDS / 2] / theirs[ROUNDS / 2]);
  return mine[0] < 0;
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
  printf("\n| 2 workers, trivial task | mpshare tasks/s | Python ProcessPoolExecutor tasks/s | "
         "ratio |\n");
  printf("|---|---:|---:|---:|\n");
  rc |= peer_row("map (Python: chunksize=256)", "map", 10L * n);
  rc |= peer_row("submit one task at a time, then every result", "submit", 5L * n);
  return rc;
}
