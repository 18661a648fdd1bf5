/* Pool crash points, walked one by one: a worker is SIGKILLed at each
 * window of its protocol (the pool crash points of lib/pool_internal.h,
 * compiled only into the test suite's copy of the library), on its 1st,
 * 2nd and 3rd hit, under single submits and under a map. Then: every task
 * ran at most once; every task reported done ran exactly once and gave its
 * own result; a task fails with -ECHILD only in the windows where it was
 * running (started, or returned but not recorded), never where it had not
 * started (it runs elsewhere) or had finished (its result is kept). */
#include "helpers.h"

#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>

#include "pool_internal.h"

#define N 64

static _Atomic int *runs; /* per task: times it started, in shared memory */

static ssize_t count_run(const void *arg, size_t len, void *out, size_t cap)
{
  (void)len, (void)cap;
  long i;
  memcpy(&i, arg, sizeof(i));
  atomic_fetch_add(&runs[i], 1);
  memcpy(out, &i, sizeof(i));
  return sizeof(i);
}

/* A pool of 2 workers armed to die at `point` on its hit-th hit; their
 * replacements are forked unarmed. */
static mps_pool *armed_pool(int point, unsigned hit, pid_t before[2])
{
  mps__crash_arm((enum mps__crash)point, hit);
  mps_pool *p = mps_pool_new(2);
  mps__crash_arm((enum mps__crash)point, 0);
  cr_assert_not_null(p);
  cr_assert_eq(mps_pool_workers(p, before, 2), 2);
  return p;
}

static bool may_fail(int point)
{
  return point == MPS__CP_POOL_STARTED || point == MPS__CP_POOL_RAN;
}

/* One task's outcome against the window it was killed in. */
static void check_task(int point, long i, int status, long v)
{
  int n = atomic_load(&runs[i]);
  cr_assert_leq(n, 1, "window %d: task %ld ran %d times", point, i, n);
  if (status == 0) {
    cr_assert(n == 1 && v == i, "window %d: task %ld ran %d times, gave %ld", point, i, n, v);
    return;
  }
  cr_assert_eq(status, -ECHILD, "window %d: task %ld: %s", point, i, mps_strerror(status));
  cr_assert(may_fail(point), "window %d: task %ld failed though it was not running", point, i);
  cr_assert_eq(n, point == MPS__CP_POOL_RAN ? 1 : 0, "window %d: task %ld ran %d times", point, i,
               n);
}

/* Workers replaced so far, once the pool is back to 2 live workers and at
 * least one was replaced (a worker may die after its last result was
 * delivered, so this waits, for at most 10 s). */
static int deaths(mps_pool *p, const pid_t before[2])
{
  for (int tries = 0;; tries++) {
    pid_t after[2];
    ssize_t n = mps_pool_workers(p, after, 2);
    int d = 0;
    for (int k = 0; n == 2 && k < 2; k++)
      d += after[0] != before[k] && after[1] != before[k];
    if ((n == 2 && d > 0) || tries == 10000)
      return d;
    nanosleep(&(struct timespec){0, 1000000}, NULL);
  }
}

static void walk_submit(int point, unsigned hit)
{
  memset(runs, 0, N * sizeof(*runs));
  pid_t before[2];
  mps_pool *p = armed_pool(point, hit, before);
  enum { K = 12 };
  mps_future *fs[K];
  for (long i = 0; i < K; i++) {
    fs[i] = mps_pool_submit(p, count_run, &i, sizeof(i));
    cr_assert_not_null(fs[i]);
  }
  int failed = 0;
  for (long i = 0; i < K; i++) {
    long v = -1;
    int r = mps_future_result(fs[i], NULL, &v, sizeof(v), 20.0);
    check_task(point, i, r, v);
    failed += r != 0;
    mps_future_free(fs[i]);
  }
  int d = deaths(p, before);
  cr_assert_geq(d, 1, "window %d hit %u: no worker died", point, hit);
  cr_assert_leq(failed, d);
  mps_pool_free(p);
}

static void walk_map(int point, unsigned hit)
{
  memset(runs, 0, N * sizeof(*runs));
  pid_t before[2];
  mps_pool *p = armed_pool(point, hit, before);
  long in[N], out[N];
  for (long i = 0; i < N; i++)
    in[i] = i;
  memset(out, 0xff, sizeof(out));
  ssize_t vals[N];
  int st[N];
  int r = mps_pool_map(p, count_run, in, N, sizeof(long), out, sizeof(long), vals, st, 20.0);
  cr_assert(r == 0 || (r == -ECHILD && may_fail(point)), "window %d: map gave %s", point,
            mps_strerror(r));
  int lost = 0;
  for (long i = 0; i < N; i++) {
    int n = atomic_load(&runs[i]);
    cr_assert_leq(n, 1, "window %d: task %ld ran %d times", point, i, n);
    if (out[i] != i) { /* the task whose worker died running it */
      cr_assert(may_fail(point), "window %d: out[%ld] = %ld", point, i, out[i]);
      cr_assert_eq(n, point == MPS__CP_POOL_RAN ? 1 : 0);
      cr_assert_eq(st[i], -ECHILD, "window %d: status[%ld] = %d", point, i, st[i]);
      lost++;
    } else {
      cr_assert_eq(n, 1, "window %d: task %ld ran %d times", point, i, n);
      cr_assert_eq(st[i], 0);
      cr_assert_eq(vals[i], (ssize_t)sizeof(long));
    }
  }
  int d = deaths(p, before);
  cr_assert_geq(d, 1, "window %d hit %u: no worker died", point, hit);
  cr_assert_leq(lost, d);
  cr_assert_eq(lost > 0, r != 0);
  mps_pool_free(p);
}

static void setup(void)
{
  runs = mmap(NULL, N * sizeof(*runs), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  cr_assert_neq(runs, MAP_FAILED);
}

TestSuite(pool_crash, .init = setup);

Test(pool_crash, every_window_under_submit, .timeout = 120)
{
  for (int point = MPS__CP_POOL_GOT; point < MPS__CP_POOL_END; point++)
    for (unsigned hit = 1; hit <= 3; hit++)
      walk_submit(point, hit);
}

Test(pool_crash, every_window_under_map, .timeout = 120)
{
  for (int point = MPS__CP_POOL_GOT; point < MPS__CP_POOL_END; point++)
    for (unsigned hit = 1; hit <= 3; hit++)
      walk_map(point, hit);
}
