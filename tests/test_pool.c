/* Process pool and futures: thousands of results, map order, task errors,
 * cancel, timeouts, workers killed mid-task, recycling, initializer,
 * shutdown with and without wait, threads, and no zombies afterwards. */
#include <fcntl.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>

#include "helpers.h"

static int gate[2];    /* workers blocked in `wait_gate` read one byte each */
static int started[2]; /* they write their pid here first */

static ssize_t square(const void *arg, size_t len, void *out, size_t cap)
{
  if (len != sizeof(long) || cap < sizeof(long))
    return -EINVAL;
  long v;
  memcpy(&v, arg, sizeof(v));
  v *= v;
  memcpy(out, &v, sizeof(v));
  return sizeof(v);
}

static ssize_t fail_odd(const void *arg, size_t len, void *out, size_t cap)
{
  long v;
  memcpy(&v, arg, sizeof(v));
  return v % 2 ? -EDOM : square(arg, len, out, cap);
}

static ssize_t my_pid(const void *arg, size_t len, void *out, size_t cap)
{
  (void)arg, (void)len, (void)cap;
  pid_t pid = getpid();
  memcpy(out, &pid, sizeof(pid));
  return sizeof(pid);
}

static ssize_t wait_gate(const void *arg, size_t len, void *out, size_t cap)
{
  (void)arg, (void)len, (void)out, (void)cap;
  pid_t pid = getpid();
  if (write(started[1], &pid, sizeof(pid)) != sizeof(pid))
    return -EIO;
  char c;
  return read(gate[0], &c, 1) == 1 ? 0 : -EIO;
}

/* arg: 0 SIGKILL itself, 1 abort(), 2 _exit(3) */
static ssize_t die(const void *arg, size_t len, void *out, size_t cap)
{
  (void)len, (void)out, (void)cap;
  int how = *(const int *)arg;
  if (how == 0)
    raise(SIGKILL);
  if (how == 1)
    abort();
  _exit(3);
}

static mps_future *submit_long(mps_pool *p, mps_task_fn fn, long v)
{
  mps_future *f = mps_pool_submit(p, fn, &v, sizeof(v));
  cr_assert_not_null(f, "submit: %s", strerror(errno));
  return f;
}

static long result_long(mps_future *f, int expect)
{
  long v = -1;
  ssize_t len = 0;
  int r = mps_future_result(f, &len, &v, sizeof(v), 20.0);
  /* A library status, or the task's own negative value (r == 0 then). */
  int got = r != 0 ? r : len < 0 ? (int)len : 0;
  cr_assert_eq(got, expect, "result %d/%zd (%s), expected %d", r, len, mps_strerror(got), expect);
  if (got == 0)
    cr_assert_eq(len, (ssize_t)sizeof(v));
  return v;
}

static pid_t wait_started(void)
{
  pid_t pid;
  cr_assert_eq(read(started[0], &pid, sizeof(pid)), (ssize_t)sizeof(pid));
  return pid;
}

static void open_gate(int n)
{
  for (int i = 0; i < n; i++)
    cr_assert_eq(write(gate[1], "g", 1), 1);
}

/* Frees the pool and checks that it left no child process behind. */
static void free_and_check(mps_pool *p)
{
  mps_pool_free(p);
  errno = 0;
  cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1, "a child process is left");
  cr_assert_eq(errno, ECHILD);
  assert_no_segments_left();
}

static void init_pipes(void)
{
  cr_assert_eq(pipe(gate), 0);
  cr_assert_eq(pipe(started), 0);
}

TestSuite(pool, .init = init_pipes);

Test(pool, thousands_of_tasks_give_correct_results, .timeout = 60)
{
  mps_pool *p = mps_pool_new(2);
  cr_assert_not_null(p);
  enum { N = 3000 };
  static mps_future *fs[N];
  for (long i = 0; i < N; i++)
    fs[i] = submit_long(p, square, i);
  for (long i = 0; i < N; i++) {
    cr_assert_eq(result_long(fs[i], 0), i * i);
    mps_future_free(fs[i]);
  }
  free_and_check(p);
}

Test(pool, map_keeps_input_order, .timeout = 60)
{
  mps_pool *p = mps_pool_new(3);
  cr_assert_not_null(p);
  enum { N = 1000 };
  static long in[N], out[N];
  for (long i = 0; i < N; i++)
    in[i] = N - i;
  static ssize_t vals[N];
  static int st[N];
  cr_assert_eq(mps_pool_map(p, square, in, N, sizeof(long), out, sizeof(long), vals, st, 30.0), 0);
  for (long i = 0; i < N; i++) {
    cr_assert_eq(out[i], (N - i) * (N - i), "out[%ld] = %ld", i, out[i]);
    cr_assert_eq(vals[i], (ssize_t)sizeof(long));
    cr_assert_eq(st[i], 0);
  }
  free_and_check(p);
}

/* Returns its argument, whatever it is: the task's own value. */
static ssize_t return_arg(const void *arg, size_t len, void *out, size_t cap)
{
  (void)len, (void)out, (void)cap;
  long long v;
  memcpy(&v, arg, sizeof(v));
  return (ssize_t)v;
}

/* A task that says more than its buffer holds. */
static ssize_t too_long(const void *arg, size_t len, void *out, size_t cap)
{
  (void)arg, (void)len, (void)out;
  return (ssize_t)cap + 1;
}

Test(pool, map_keeps_each_tasks_value_apart_from_the_librarys_status, .timeout = 30)
{
  mps_pool *p = mps_pool_new_opts(&(mps_pool_opts){.workers = 2, .max_result = 64});
  cr_assert_not_null(p);
  /* Values that look like the library's errors, and beyond an int. */
  long long in[] = {-ETIMEDOUT, -ECHILD, -4294967296LL, INT_MIN - 1LL, 0, -EDOM};
  enum { N = sizeof(in) / sizeof(in[0]) };
  ssize_t vals[N];
  int st[N];
  cr_assert_eq(mps_pool_map(p, return_arg, in, N, sizeof(in[0]), NULL, 0, vals, st, 30.0), 0,
               "every task returned: their own errors are not the call's");
  for (int i = 0; i < N; i++) {
    cr_assert_eq(st[i], 0);
    cr_assert_eq(vals[i], (ssize_t)in[i], "task %d: %zd", i, vals[i]);
  }
  /* The same without a status array: the call's return says the same. */
  cr_assert_eq(mps_pool_map(p, return_arg, in, N, sizeof(in[0]), NULL, 0, vals, NULL, 30.0), 0);
  cr_assert_eq(vals[2], -4294967296LL);
  /* A result longer than result_size, or than max_result: the library's
   * -EMSGSIZE for that task, with the length the task gave. */
  long long lens[] = {8, 8};
  char out[2][4];
  cr_assert_eq(
      mps_pool_map(p, return_arg, lens, 2, sizeof(lens[0]), out, sizeof(out[0]), vals, st, 30.0),
      -EMSGSIZE);
  cr_assert_eq(st[0], -EMSGSIZE);
  cr_assert_eq(vals[0], 8, "the length the task gave");
  cr_assert_eq(mps_pool_map(p, too_long, lens, 2, sizeof(lens[0]), NULL, 0, vals, st, 30.0),
               -EMSGSIZE);
  cr_assert_eq(st[1], -EMSGSIZE);
  cr_assert_eq(vals[1], 65);
  mps_future *f = mps_pool_submit(p, too_long, NULL, 0);
  ssize_t v = 0;
  cr_assert_eq(mps_future_result(f, &v, NULL, 0, 20.0), -EMSGSIZE);
  cr_assert_eq(v, 65, "the length the task gave");
  mps_future_free(f);
  /* values is required: the tasks' own errors must go somewhere. */
  cr_assert_eq(mps_pool_map(p, return_arg, in, N, sizeof(in[0]), NULL, 0, NULL, st, 30.0), -EINVAL);
  free_and_check(p);
}

Test(pool, a_task_error_is_its_future_result, .timeout = 30)
{
  mps_pool *p = mps_pool_new(2);
  cr_assert_not_null(p);
  mps_future *even = submit_long(p, fail_odd, 4), *odd = submit_long(p, fail_odd, 5);
  cr_assert_eq(result_long(odd, -EDOM), -1);
  cr_assert_eq(result_long(even, 0), 16);
  cr_assert_eq(result_long(even, 0), 16, "a result can be read twice");
  char small[2];
  ssize_t len = 0;
  cr_assert_eq(mps_future_result(even, &len, small, sizeof(small), 1.0), -EMSGSIZE);
  cr_assert_eq(len, (ssize_t)sizeof(long));
  cr_assert_eq(mps_future_result(odd, &len, NULL, 0, 0), 0, "the task returned");
  cr_assert_eq(len, -EDOM, "its own value");
  mps_future_free(even);
  mps_future_free(odd);
  free_and_check(p);
}

Test(pool, result_timeouts, .timeout = 30)
{
  mps_pool *p = mps_pool_new(1);
  cr_assert_not_null(p);
  mps_future *f = mps_pool_submit(p, wait_gate, NULL, 0);
  cr_assert_not_null(f);
  wait_started();
  cr_assert_eq(mps_future_result(f, NULL, NULL, 0, 0), -EAGAIN);
  cr_assert(!mps_future_done(f));
  double t0 = test_now();
  cr_assert_eq(mps_future_result(f, NULL, NULL, 0, 0.2), -ETIMEDOUT);
  cr_assert_geq(test_now() - t0, 0.2);
  mps_future *all[] = {f};
  cr_assert_eq(mps_pool_wait_any(all, 1, 0.05), -ETIMEDOUT);
  open_gate(1);
  cr_assert_eq(mps_future_result(f, NULL, NULL, 0, 20.0), 0);
  cr_assert(mps_future_done(f));
  mps_future_free(f);
  free_and_check(p);
}

Test(pool, cancel_only_while_pending, .timeout = 30)
{
  mps_pool *p = mps_pool_new(1);
  cr_assert_not_null(p);
  mps_future *running = mps_pool_submit(p, wait_gate, NULL, 0);
  cr_assert_not_null(running);
  wait_started();
  mps_future *a = submit_long(p, my_pid, 0), *b = mps_pool_submit(p, wait_gate, NULL, 0),
             *c = submit_long(p, square, 3);
  cr_assert_eq(mps_future_cancel(running), -EBUSY);
  cr_assert_eq(mps_future_cancel(b), 0);
  cr_assert_eq(mps_future_cancel(b), 0, "cancelling twice is fine");
  cr_assert(mps_future_done(b));
  cr_assert_eq(mps_future_result(b, NULL, NULL, 0, 0), -ECANCELED);
  open_gate(1);
  cr_assert_eq(mps_future_result(running, NULL, NULL, 0, 20.0), 0);
  pid_t pid = 0;
  cr_assert_eq(mps_future_result(a, NULL, &pid, sizeof(pid), 20.0), 0);
  cr_assert_gt(pid, 0);
  cr_assert_eq(result_long(c, 0), 9);
  cr_assert_eq(mps_future_cancel(c), -EBUSY, "finished");
  /* b never ran: it would have written its pid to `started`. */
  mps_pool_free(p);
  int fl = 0;
  cr_assert_eq(read(started[0], &fl, 0), 0);
  close(started[1]);
  cr_assert_eq(read(started[0], &fl, sizeof(fl)), 0, "the cancelled task ran");
  mps_future_free(running);
  mps_future_free(a);
  mps_future_free(b);
  mps_future_free(c);
}

static void crash_one(int how)
{
  mps_pool *p = mps_pool_new(2);
  cr_assert_not_null(p);
  pid_t before[2];
  cr_assert_eq(mps_pool_workers(p, before, 2), 2);
  enum { N = 40 };
  mps_future *fs[N];
  for (long i = 0; i < N; i++)
    fs[i] = i == N / 2 ? mps_pool_submit(p, die, &how, sizeof(how)) : submit_long(p, square, i);
  for (long i = 0; i < N; i++)
    if (i == N / 2)
      result_long(fs[i], -ECHILD);
    else
      cr_assert_eq(result_long(fs[i], 0), i * i);
  pid_t after[2];
  cr_assert_eq(mps_pool_workers(p, after, 2), 2, "the pool is back to 2 workers");
  bool fresh = false;
  for (int i = 0; i < 2; i++)
    fresh |= after[i] != before[0] && after[i] != before[1];
  cr_assert(fresh, "no replacement worker");
  mps_future *g = submit_long(p, square, 7);
  cr_assert_eq(result_long(g, 0), 49, "the pool still works");
  mps_future_free(g);
  for (long i = 0; i < N; i++)
    mps_future_free(fs[i]);
  free_and_check(p);
}

Test(pool, worker_sigkilled_mid_task_fails_only_its_future, .timeout = 30) { crash_one(0); }
Test(pool, worker_aborting_mid_task_fails_only_its_future, .timeout = 30) { crash_one(1); }
Test(pool, worker_exiting_mid_task_fails_only_its_future, .timeout = 30) { crash_one(2); }

Test(pool, worker_killed_from_outside, .timeout = 30)
{
  mps_pool *p = mps_pool_new(2);
  cr_assert_not_null(p);
  mps_future *f = mps_pool_submit(p, wait_gate, NULL, 0);
  cr_assert_not_null(f);
  pid_t victim = wait_started();
  cr_assert_eq(kill(victim, SIGKILL), 0);
  cr_assert_eq(mps_future_result(f, NULL, NULL, 0, 20.0), -ECHILD);
  mps_future *g = submit_long(p, square, 5);
  cr_assert_eq(result_long(g, 0), 25);
  mps_future_free(f);
  mps_future_free(g);
  free_and_check(p);
}

Test(pool, max_tasks_per_child_recycles_workers, .timeout = 30)
{
  mps_pool *p = mps_pool_new_opts(&(mps_pool_opts){.workers = 1, .max_tasks_per_child = 2});
  cr_assert_not_null(p);
  pid_t pids[6];
  for (int i = 0; i < 6; i++) {
    mps_future *f = mps_pool_submit(p, my_pid, NULL, 0);
    cr_assert_not_null(f);
    cr_assert_eq(mps_future_result(f, NULL, &pids[i], sizeof(pids[i]), 20.0), 0);
    mps_future_free(f);
  }
  for (int i = 0; i < 6; i += 2) {
    cr_assert_eq(pids[i], pids[i + 1], "a worker runs 2 tasks");
    if (i > 0)
      cr_assert_neq(pids[i], pids[i - 1], "then it is replaced");
  }
  free_and_check(p);
}

static int init_value;

static void set_init(void *arg) { init_value = *(int *)arg; }

static ssize_t get_init(const void *arg, size_t len, void *out, size_t cap)
{
  (void)arg, (void)len, (void)cap;
  memcpy(out, &init_value, sizeof(init_value));
  return sizeof(init_value);
}

Test(pool, initializer_runs_in_each_worker, .timeout = 30)
{
  int v = 42;
  mps_pool *p = mps_pool_new_opts(&(mps_pool_opts){.workers = 2, .init = set_init, .init_arg = &v});
  cr_assert_not_null(p);
  for (int i = 0; i < 10; i++) {
    mps_future *f = mps_pool_submit(p, get_init, NULL, 0);
    int got = 0;
    cr_assert_eq(mps_future_result(f, NULL, &got, sizeof(got), 20.0), 0);
    cr_assert_eq(got, 42);
    mps_future_free(f);
  }
  cr_assert_eq(init_value, 0, "init ran in the parent");
  free_and_check(p);
}

static void crash_in_init(void *arg)
{
  (void)arg;
  abort();
}

Test(pool, a_crashing_initializer_breaks_the_pool_instead_of_forking_forever, .timeout = 30)
{
  mps_pool *p = mps_pool_new_opts(&(mps_pool_opts){.workers = 2, .init = crash_in_init});
  cr_assert_not_null(p);
  mps_future *f = mps_pool_submit(p, square, &(long){2}, sizeof(long));
  if (f != NULL) { /* submitted before the pool gave up */
    cr_assert_eq(mps_future_result(f, NULL, NULL, 0, 20.0), -ECHILD);
    mps_future_free(f);
  } else {
    cr_assert_eq(errno, EPIPE);
  }
  cr_assert_eq(mps_pool_shutdown(p, true, false), 0);
  cr_assert_null(mps_pool_submit(p, square, &(long){2}, sizeof(long)));
  cr_assert_eq(errno, EPIPE);
  free_and_check(p);
}

Test(pool, shutdown_with_wait_runs_everything_and_futures_outlive_the_pool, .timeout = 30)
{
  mps_pool *p = mps_pool_new(2);
  cr_assert_not_null(p);
  enum { N = 200 };
  mps_future *fs[N];
  for (long i = 0; i < N; i++)
    fs[i] = submit_long(p, square, i);
  cr_assert_eq(mps_pool_shutdown(p, true, false), 0);
  cr_assert_eq(mps_pool_workers(p, NULL, 0), 0);
  for (long i = 0; i < N; i++)
    cr_assert(mps_future_done(fs[i]));
  cr_assert_null(mps_pool_submit(p, square, &(long){1}, sizeof(long)));
  cr_assert_eq(errno, EPIPE);
  free_and_check(p);
  for (long i = 0; i < N; i++) {
    cr_assert_eq(result_long(fs[i], 0), i * i);
    mps_future_free(fs[i]);
  }
}

Test(pool, shutdown_without_wait_and_cancel_pending, .timeout = 30)
{
  mps_pool *p = mps_pool_new(1);
  cr_assert_not_null(p);
  mps_future *running = mps_pool_submit(p, wait_gate, NULL, 0);
  wait_started();
  enum { N = 10 };
  mps_future *fs[N];
  for (long i = 0; i < N; i++)
    fs[i] = submit_long(p, square, i);
  cr_assert_eq(mps_pool_shutdown(p, false, true), 0, "returns with a task still running");
  cr_assert(!mps_future_done(running));
  for (long i = 0; i < N; i++)
    cr_assert_eq(mps_future_result(fs[i], NULL, NULL, 0, 0), -ECANCELED);
  open_gate(1);
  cr_assert_eq(mps_future_result(running, NULL, NULL, 0, 20.0), 0);
  free_and_check(p);
  mps_future_free(running);
  for (long i = 0; i < N; i++)
    mps_future_free(fs[i]);
}

Test(pool, wait_any_iterates_as_completed, .timeout = 30)
{
  mps_pool *p = mps_pool_new(2);
  cr_assert_not_null(p);
  mps_future *fs[4];
  fs[0] = mps_pool_submit(p, wait_gate, NULL, 0); /* finishes last */
  wait_started();
  for (long i = 1; i < 4; i++)
    fs[i] = submit_long(p, square, i);
  mps_future *left[4] = {fs[0], fs[1], fs[2], fs[3]};
  for (int k = 0; k < 3; k++) {
    ssize_t i = mps_pool_wait_any(left, 4, 20.0);
    cr_assert(i >= 1 && i < 4, "got %zd", i);
    cr_assert(mps_future_done(left[i]));
    left[i] = NULL;
  }
  cr_assert_eq(mps_pool_wait_any(left, 4, 0), -EAGAIN);
  open_gate(1);
  cr_assert_eq(mps_pool_wait_any(left, 4, 20.0), 0);
  left[0] = NULL;
  cr_assert_eq(mps_pool_wait_any(left, 4, 0), -EINVAL, "nothing left");
  for (int i = 0; i < 4; i++)
    mps_future_free(fs[i]);
  free_and_check(p);
}

static mps_pool *shared_pool;

static void *submit_many(void *arg)
{
  long base = (long)(intptr_t)arg;
  for (long i = base; i < base + 500; i++) {
    mps_future *f = mps_pool_submit(shared_pool, square, &i, sizeof(i));
    long v = 0;
    if (f == NULL || mps_future_result(f, NULL, &v, sizeof(v), 20.0) != 0 || v != i * i)
      return (void *)1;
    mps_future_free(f);
  }
  return NULL;
}

Test(pool, submit_from_several_threads, .timeout = 60)
{
  shared_pool = mps_pool_new(2);
  cr_assert_not_null(shared_pool);
  pthread_t t[4];
  for (long i = 0; i < 4; i++)
    cr_assert_eq(pthread_create(&t[i], NULL, submit_many, (void *)(intptr_t)(i * 1000)), 0);
  for (int i = 0; i < 4; i++) {
    void *r;
    pthread_join(t[i], &r);
    cr_assert_null(r, "thread %d got a wrong result", i);
  }
  free_and_check(shared_pool);
}

Test(pool, bad_arguments, .timeout = 30)
{
  cr_assert_null(mps_pool_new(5000));
  cr_assert_eq(errno, EINVAL);
  cr_assert_null(mps_pool_new_opts(&(mps_pool_opts){.workers = 1, .max_arg = (size_t)1 << 40}));
  cr_assert_eq(errno, EINVAL);
  cr_assert_null(mps_pool_new_opts(&(mps_pool_opts){.workers = 1, .reserved = {[0] = 1}}));
  cr_assert_eq(errno, EINVAL, "a non-zero reserved word is refused");
  mps_pool *p = mps_pool_new_opts(&(mps_pool_opts){.workers = 1, .max_arg = 16});
  cr_assert_not_null(p);
  char big[17] = {0};
  cr_assert_null(mps_pool_submit(p, square, big, sizeof(big)));
  cr_assert_eq(errno, EMSGSIZE);
  cr_assert_null(mps_pool_submit(NULL, square, NULL, 0));
  cr_assert_eq(errno, EINVAL);
  cr_assert_null(mps_pool_submit(p, NULL, NULL, 0));
  cr_assert_null(mps_pool_submit(p, square, NULL, 4));
  cr_assert_eq(mps_future_result(NULL, NULL, NULL, 0, 0), -EINVAL);
  cr_assert_eq(mps_future_cancel(NULL), -EINVAL);
  cr_assert(!mps_future_done(NULL));
  cr_assert_eq(mps_pool_wait_any(NULL, 1, 0), -EINVAL);
  cr_assert_eq(mps_pool_shutdown(NULL, true, false), -EINVAL);
  cr_assert_eq(mps_pool_map(NULL, square, NULL, 0, 0, NULL, 0, NULL, NULL, 0), -EINVAL);
  cr_assert_eq(mps_pool_map(p, square, NULL, 0, 0, NULL, 0, NULL, NULL, 0.0 / 0.0), -EINVAL);
  cr_assert_eq(mps_pool_map(p, square, NULL, 0, 0, NULL, 0, NULL, NULL, 0), 0, "nothing to do");
  mps_future *f = mps_pool_submit(p, square, &(long){3}, sizeof(long));
  cr_assert_eq(mps_future_result(f, NULL, NULL, 0, 0.0 / 0.0), -EINVAL);
  cr_assert_eq(result_long(f, 0), 9);
  mps_future_free(f);
  mps_future_free(NULL);
  free_and_check(p);
  mps_pool_free(NULL);
}

/* ---- newer calls: status apart from value, sets, callbacks, streams ------- */

static ssize_t return_arg_value(const void *arg, size_t len, void *out, size_t cap)
{
  (void)len, (void)out, (void)cap;
  long v;
  memcpy(&v, arg, sizeof(v));
  return (ssize_t)v;
}

Test(pool, a_task_value_is_never_taken_for_a_library_status, .timeout = 30)
{
  mps_pool *p = mps_pool_new(1);
  cr_assert_not_null(p);
  long vals[] = {-ETIMEDOUT, -ECHILD, -4294967296L, -2147483649L, 0};
  for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
    mps_future *f = submit_long(p, return_arg_value, vals[i]);
    ssize_t v = 1;
    cr_assert_eq(mps_future_result(f, &v, NULL, 0, 20.0), 0, "the task returned");
    cr_assert_eq(v, vals[i], "its value, full range: %zd", v);
    mps_future_free(f);
  }
  free_and_check(p);
}

static _Atomic int callbacks;
static void count_callback(mps_future *f, void *arg)
{
  long v = 0;
  cr_assert_eq(mps_future_result(f, NULL, &v, sizeof(v), 0), 0);
  cr_assert_eq(v, *(long *)arg * *(long *)arg);
  atomic_fetch_add(&callbacks, 1);
}

Test(pool, as_completed_sets_return_futures_in_completion_order, .timeout = 30)
{
  mps_pool *p = mps_pool_new(2);
  cr_assert_not_null(p);
  mps_future_set *set = mps_future_set_new();
  cr_assert_not_null(set);
  mps_future *slow = mps_pool_submit(p, wait_gate, NULL, 0);
  wait_started();
  static long args[8];
  mps_future *fs[8];
  cr_assert_eq(mps_future_set_add(set, slow), 0);
  cr_assert_eq(mps_future_set_add(set, slow), -EBUSY);
  for (long i = 0; i < 8; i++) {
    args[i] = i;
    fs[i] = submit_long(p, square, i);
    cr_assert_eq(mps_future_add_done_callback(fs[i], count_callback, &args[i]), 0);
    cr_assert_eq(mps_future_set_add(set, fs[i]), 0);
  }
  cr_assert_eq(mps_future_add_done_callback(fs[0], count_callback, &args[0]), -EBUSY);
  for (int k = 0; k < 8; k++) {
    mps_future *f = mps_future_set_next(set, 20.0);
    cr_assert_not_null(f);
    cr_assert_neq(f, slow, "the blocked task came out before it finished");
    cr_assert(mps_future_done(f));
  }
  cr_assert_null(mps_future_set_next(set, 0));
  cr_assert_eq(errno, EAGAIN);
  open_gate(1);
  cr_assert_eq(mps_future_set_next(set, 20.0), slow);
  cr_assert_null(mps_future_set_next(set, 0));
  cr_assert_eq(errno, ENOENT, "empty");
  cr_assert_eq(atomic_load(&callbacks), 8);
  mps_future_set_free(set);
  mps_future_free(slow);
  for (int i = 0; i < 8; i++)
    mps_future_free(fs[i]);
  free_and_check(p);
}

Test(pool, submit_times_out_when_the_queue_is_full, .timeout = 30)
{
  mps_pool *p = mps_pool_new_opts(&(mps_pool_opts){.workers = 1, .queue_size = 2});
  cr_assert_not_null(p);
  enum { MAX = 64 };
  mps_future *fs[MAX];
  size_t n = 0;
  fs[n++] = mps_pool_submit(p, wait_gate, NULL, 0);
  wait_started();
  /* The worker's inbox, then queue_size more: then submit must wait. */
  while (n < MAX && (fs[n] = mps_pool_submit_timeout(p, square, &(long){2}, sizeof(long), 0)))
    n++;
  cr_assert_lt(n, MAX, "submit never refused");
  cr_assert_eq(errno, EAGAIN);
  double t0 = test_now();
  cr_assert_null(mps_pool_submit_timeout(p, square, &(long){2}, sizeof(long), 0.1));
  cr_assert_eq(errno, ETIMEDOUT);
  cr_assert_geq(test_now() - t0, 0.1);
  open_gate(1);
  cr_assert_eq(mps_future_result(fs[0], NULL, NULL, 0, 20.0), 0);
  for (size_t i = 1; i < n; i++)
    cr_assert_eq(result_long(fs[i], 0), 4, "every accepted task runs");
  for (size_t i = 0; i < n; i++)
    mps_future_free(fs[i]);
  free_and_check(p);
}

Test(pool, terminate_kills_the_workers_now, .timeout = 30)
{
  mps_pool *p = mps_pool_new(1);
  cr_assert_not_null(p);
  mps_future *running = mps_pool_submit(p, wait_gate, NULL, 0);
  wait_started();
  mps_future *queued = submit_long(p, square, 3);
  cr_assert_eq(mps_pool_terminate(p), 0, "returns without the gate opening");
  cr_assert_eq(mps_future_result(running, NULL, NULL, 0, 0), -ECHILD);
  cr_assert_eq(mps_future_result(queued, NULL, NULL, 0, 0), -ECANCELED);
  cr_assert_eq(mps_pool_workers(p, NULL, 0), 0);
  cr_assert_null(mps_pool_submit(p, square, &(long){1}, sizeof(long)));
  cr_assert_eq(errno, EPIPE);
  mps_future_free(running);
  mps_future_free(queued);
  free_and_check(p);
}

Test(pool, imap_unordered_streams_every_result_once, .timeout = 60)
{
  mps_pool *p = mps_pool_new(2);
  cr_assert_not_null(p);
  enum { N = 1000 };
  static long in[N];
  static bool seen[N];
  for (long i = 0; i < N; i++)
    in[i] = i;
  mps_pool_stream *s = mps_pool_imap_unordered(p, fail_odd, in, N, sizeof(long), sizeof(long), 7);
  cr_assert_not_null(s);
  for (int k = 0; k < N; k++) {
    size_t i = N;
    ssize_t v = 0;
    long out = -1;
    cr_assert_eq(mps_pool_stream_next(s, &i, &v, &out, sizeof(out), 20.0), 0);
    cr_assert_lt(i, (size_t)N);
    cr_assert(!seen[i], "task %zu twice", i);
    seen[i] = true;
    if (i % 2)
      cr_assert_eq(v, -EDOM, "the task's own error is its value");
    else
      cr_assert(v == sizeof(long) && out == (long)(i * i));
  }
  cr_assert_eq(mps_pool_stream_next(s, NULL, NULL, NULL, 0, 0), -ENOENT);
  mps_pool_stream_free(s);
  /* Freed before the end: the rest is cancelled, the pool goes on. */
  s = mps_pool_imap_unordered(p, square, in, N, sizeof(long), sizeof(long), 0);
  cr_assert_not_null(s);
  cr_assert_eq(mps_pool_stream_next(s, NULL, NULL, NULL, 0, 20.0), -EMSGSIZE, "cap 0");
  mps_pool_stream_free(s);
  mps_future *f = submit_long(p, square, 12);
  cr_assert_eq(result_long(f, 0), 144);
  mps_future_free(f);
  cr_assert_null(mps_pool_imap_unordered(p, square, in, N, sizeof(long), 1 << 20, 0));
  cr_assert_eq(errno, EMSGSIZE);
  free_and_check(p);
}

/* ---- each task at most once, and its future tells the truth ---------------- */

#include <sys/mman.h>

static _Atomic int *runs;      /* per task: times it started (shared) */
static _Atomic int *kill_once; /* the first task that sees 0 here dies */

static ssize_t count_run(const void *arg, size_t len, void *out, size_t cap)
{
  (void)len, (void)cap;
  long i;
  memcpy(&i, arg, sizeof(i));
  atomic_fetch_add(&runs[i], 1);
  if (i == 40 && atomic_exchange(kill_once, 1) == 0)
    raise(SIGKILL); /* mid-chunk: tasks before it finished, after it did not start */
  memcpy(out, &i, sizeof(i));
  return sizeof(i);
}

static void map_shared(size_t n)
{
  runs = mmap(NULL, (n + 1) * sizeof(*runs), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
              0);
  cr_assert_neq(runs, MAP_FAILED);
  kill_once = &runs[n];
}

Test(pool, a_worker_killed_mid_chunk_keeps_finished_results_and_runs_the_rest_once, .timeout = 60)
{
  enum { N = 200 };
  map_shared(N);
  mps_pool *p = mps_pool_new(2);
  cr_assert_not_null(p);
  static long in[N], out[N];
  for (long i = 0; i < N; i++)
    in[i] = i;
  static ssize_t vals[N];
  static int st[N];
  cr_assert_eq(mps_pool_map(p, count_run, in, N, sizeof(long), out, sizeof(long), vals, st, 30.0),
               -ECHILD, "the task that was running when its worker died");
  for (long i = 0; i < N; i++) {
    cr_assert_eq(atomic_load(&runs[i]), 1, "task %ld ran %d times", i, atomic_load(&runs[i]));
    cr_assert_eq(st[i], i == 40 ? -ECHILD : 0, "status[%ld] = %d", i, st[i]);
    if (i != 40)
      cr_assert_eq(out[i], i, "out[%ld] = %ld", i, out[i]);
  }
  cr_assert_eq(mps_pool_workers(p, NULL, 0), 2);
  free_and_check(p);
  munmap(runs, (N + 1) * sizeof(*runs));
}

Test(pool, workers_killed_at_random_never_run_a_task_twice, .timeout = 120)
{
  enum { N = 3000, KILLS = 12 };
  map_shared(N);
  atomic_store(kill_once, 1); /* only kills from outside */
  mps_pool *p = mps_pool_new(2);
  cr_assert_not_null(p);
  static mps_future *fs[N];
  unsigned seed = (unsigned)getpid();
  int kills = 0;
  for (long i = 0; i < N; i++) {
    fs[i] = submit_long(p, count_run, i);
    if (i % (N / KILLS) == N / KILLS / 2) {
      pid_t pids[2];
      ssize_t n = mps_pool_workers(p, pids, 2);
      if (n > 0 && kill(pids[rand_r(&seed) % n], SIGKILL) == 0)
        kills++;
    }
  }
  int died = 0;
  for (long i = 0; i < N; i++) {
    long v = -1;
    ssize_t len = 0;
    int r = mps_future_result(fs[i], &len, &v, sizeof(v), 30.0);
    int n = atomic_load(&runs[i]);
    cr_assert(r == 0 || r == -ECHILD, "task %ld: %d", i, r);
    cr_assert_leq(n, 1, "task %ld ran %d times", i, n);
    if (r == 0)
      cr_assert(n == 1 && v == i, "task %ld: ran %d times, gave %ld", i, n, v);
    died += r == -ECHILD;
    mps_future_free(fs[i]);
  }
  cr_assert_leq(died, kills, "%d futures failed for %d kills", died, kills);
  cr_assert_gt(kills, 0);
  free_and_check(p);
  munmap(runs, (N + 1) * sizeof(*runs));
}

Test(pool, a_cancelled_task_never_runs_even_when_an_idle_worker_steals_it, .timeout = 60)
{
  enum { ROUNDS = 10 };
  map_shared(ROUNDS);
  atomic_store(kill_once, 1);
  mps_pool *p = mps_pool_new(2);
  cr_assert_not_null(p);
  for (long r = 0; r < ROUNDS; r++) {
    mps_future *g1 = mps_pool_submit(p, wait_gate, NULL, 0);
    wait_started();
    mps_future *g2 = mps_pool_submit(p, wait_gate, NULL, 0);
    wait_started();
    /* Both workers are blocked; x waits in one of their inboxes. */
    mps_future *x = submit_long(p, count_run, r);
    cr_assert_eq(mps_future_cancel(x), 0);
    /* One worker goes idle, and may steal x from the other's inbox. */
    open_gate(1);
    mps_future *all[] = {g1, g2};
    cr_assert_geq(mps_pool_wait_any(all, 2, 20.0), 0);
    open_gate(1);
    cr_assert_eq(mps_future_result(g1, NULL, NULL, 0, 20.0), 0);
    cr_assert_eq(mps_future_result(g2, NULL, NULL, 0, 20.0), 0);
    mps_future *after = submit_long(p, square, 2);
    cr_assert_eq(result_long(after, 0), 4);
    cr_assert_eq(mps_future_result(x, NULL, NULL, 0, 0), -ECANCELED);
    mps_future_free(g1);
    mps_future_free(g2);
    mps_future_free(x);
    mps_future_free(after);
  }
  free_and_check(p);
  for (long r = 0; r < ROUNDS; r++)
    cr_assert_eq(atomic_load(&runs[r]), 0, "cancelled task %ld ran", r);
  munmap(runs, (ROUNDS + 1) * sizeof(*runs));
}

/* ---- a forked child with the parent's pool -------------------------------- */

static mps_pool *inherited;
static mps_future *inherited_pending;

/* In a child: every call on the parent's pool is refused without touching
 * anything shared, and free releases only the child's copy. The old
 * breakage: a map with a timeout cancelled the parent's next task ids, and
 * free shut the parent's task queue down. Returns 0 or the failed step. */
static int use_parents_pool(void *arg)
{
  (void)arg;
  static long in[64], out[64];
  static ssize_t vals[64];
  if (mps_pool_map(inherited, square, in, 64, sizeof(long), out, sizeof(long), vals, NULL, 0.01) !=
      -EPERM)
    return 1;
  if (mps_pool_submit(inherited, square, &(long){2}, sizeof(long)) != NULL || errno != EPERM)
    return 2;
  if (mps_future_result(inherited_pending, NULL, NULL, 0, 0.01) != -EPERM)
    return 3;
  if (mps_future_cancel(inherited_pending) != -EPERM)
    return 4;
  mps_future *all[] = {inherited_pending};
  if (mps_pool_wait_any(all, 1, 0.01) != -EPERM)
    return 5;
  if (mps_pool_shutdown(inherited, true, true) != -EPERM ||
      mps_pool_workers(inherited, NULL, 0) != -EPERM)
    return 6;
  mps_pool_free(inherited); /* returns at once: nothing to wait for here */
  if (mps_future_result(inherited_pending, NULL, NULL, 0, 0) != -EPERM)
    return 7;
  mps_future_free(inherited_pending);
  return 0;
}

Test(pool, a_forked_child_cannot_break_its_parents_pool, .timeout = 60)
{
  inherited = mps_pool_new(2);
  cr_assert_not_null(inherited);
  inherited_pending = mps_pool_submit(inherited, wait_gate, NULL, 0);
  cr_assert_not_null(inherited_pending);
  wait_started();
  child_expect_exit(child_run(use_parents_pool, NULL), 0);
  open_gate(1);
  cr_assert_eq(mps_future_result(inherited_pending, NULL, NULL, 0, 20.0), 0);
  /* The ids the child would have cancelled, and the task queue it would
   * have shut down: the parent's next tasks all run. */
  enum { N = 200 };
  static long in[N], out[N];
  for (long i = 0; i < N; i++)
    in[i] = i;
  static ssize_t vals[N];
  cr_assert_eq(
      mps_pool_map(inherited, square, in, N, sizeof(long), out, sizeof(long), vals, NULL, 20.0), 0);
  for (long i = 0; i < N; i++)
    cr_assert_eq(out[i], i * i);
  mps_future *f = submit_long(inherited, square, 9);
  cr_assert_eq(result_long(f, 0), 81);
  cr_assert_eq(mps_pool_workers(inherited, NULL, 0), 2);
  mps_future_free(f);
  mps_future_free(inherited_pending);
  free_and_check(inherited);
}

/* ---- without pidfd_open ------------------------------------------------------ */

/* Makes pidfd_open fail with ENOSYS in this process, as a seccomp profile
 * (or an old kernel) does. 0, or -1 if seccomp is not available. */
static int refuse_pidfd_open(void)
{
#if defined(__NR_pidfd_open) && defined(SECCOMP_RET_ERRNO)
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_pidfd_open, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
      prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
    return -1;
  return syscall(__NR_pidfd_open, getpid(), 0) < 0 && errno == ENOSYS ? 0 : -1;
#else
  return -1;
#endif
}

/* In a child without pidfd_open: the pool has its workers, runs tasks, and
 * still notices a worker killed mid-task and replaces it. */
static int pool_without_pidfd(void *arg)
{
  (void)arg;
  if (refuse_pidfd_open() < 0)
    return 10;
  mps_pool *p = mps_pool_new(2);
  if (p == NULL || mps_pool_workers(p, NULL, 0) != 2)
    return 1;
  enum { N = 100 };
  static long in[N], out[N];
  for (long i = 0; i < N; i++)
    in[i] = i;
  static ssize_t vals[N];
  if (mps_pool_map(p, square, in, N, sizeof(long), out, sizeof(long), vals, NULL, 20.0) != 0 ||
      out[N - 1] != (N - 1) * (N - 1))
    return 2;
  mps_future *f = mps_pool_submit(p, wait_gate, NULL, 0);
  pid_t victim;
  if (f == NULL || read(started[0], &victim, sizeof(victim)) != sizeof(victim))
    return 3;
  kill(victim, SIGKILL);
  if (mps_future_result(f, NULL, NULL, 0, 20.0) != -ECHILD)
    return 4;
  mps_future_free(f);
  f = mps_pool_submit(p, square, &(long){6}, sizeof(long));
  long v = 0;
  if (f == NULL || mps_future_result(f, NULL, &v, sizeof(v), 20.0) != 0 || v != 36)
    return 5;
  mps_future_free(f);
  if (mps_pool_workers(p, NULL, 0) != 2)
    return 6;
  mps_pool_free(p);
  return waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD ? 0 : 7;
}

Test(pool, works_without_pidfd_open, .timeout = 60)
{
  int status = child_wait(child_run(pool_without_pidfd, NULL));
  cr_assert(WIFEXITED(status), "status 0x%x", status);
  if (WEXITSTATUS(status) == 10)
    cr_skip_test("seccomp filters are not available here");
  cr_assert_eq(WEXITSTATUS(status), 0, "failed at step %d", WEXITSTATUS(status));
}

static void expect_example(const char *name, const char *needle)
{
  static char out[64 * 1024];
  int status = run_example(name, (const char *[]){NULL}, out, sizeof(out));
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: status 0x%x", name, status);
  cr_assert_not_null(strstr(out, needle), "%s printed:\n%s", name, out);
}

Test(pool, example_pool_map_runs, .timeout = 60)
{
  expect_example("pool_map",
                 "980100 982081 984064 986049 988036 990025 992016 994009 996004 998001\n");
}
Test(pool, example_futures_runs, .timeout = 60)
{
  expect_example("futures", "crashed worker: ECHILD");
}

/* ---- two pools, two threads: each pool's futures have their own lock ------ */

struct own_pool {
  mps_pool *p;
  long base;
  int failed; /* checks that failed (no Criterion assert outside its thread) */
};

static void *use_own_pool(void *arg)
{
  struct own_pool *t = arg;
  enum { N = 200 };
  mps_future *fs[N];
  long in[N], out[N];
  ssize_t vals[N];
  for (long i = 0; i < N; i++) {
    in[i] = t->base + i;
    fs[i] = mps_pool_submit(t->p, square, &in[i], sizeof(in[i]));
    t->failed += fs[i] == NULL;
  }
  for (long i = 0; i < N && fs[i] != NULL; i++) {
    long y = 0;
    ssize_t v = 0;
    t->failed += mps_future_result(fs[i], &v, &y, sizeof(y), 20.0) != 0 || v != sizeof(y) ||
                 y != in[i] * in[i];
    mps_future_free(fs[i]);
  }
  t->failed += mps_pool_map(t->p, square, in, N, sizeof(long), out, sizeof(long), vals, NULL, 20.0);
  for (long i = 0; i < N; i++)
    t->failed += out[i] != in[i] * in[i] || vals[i] != sizeof(long);
  return NULL;
}

Test(pool, two_pools_used_from_two_threads_at_once, .timeout = 60)
{
  struct own_pool t[2] = {{mps_pool_new(1), 0, 0}, {mps_pool_new(1), 1000, 0}};
  cr_assert_not_null(t[0].p);
  cr_assert_not_null(t[1].p);
  pthread_t th[2];
  for (int k = 0; k < 2; k++)
    cr_assert_eq(pthread_create(&th[k], NULL, use_own_pool, &t[k]), 0);
  for (int k = 0; k < 2; k++) {
    cr_assert_eq(pthread_join(th[k], NULL), 0);
    cr_assert_eq(t[k].failed, 0, "pool %d: %d checks failed", k, t[k].failed);
  }
  mps_pool_free(t[0].p);
  free_and_check(t[1].p);
}

struct any_waiter {
  mps_future **fs;
  int tid_pipe[2];
  ssize_t got;
};

static void *wait_any_of_two(void *arg)
{
  struct any_waiter *w = arg;
  pid_t tid = (pid_t)syscall(SYS_gettid);
  if (write(w->tid_pipe[1], &tid, sizeof(tid)) != sizeof(tid))
    return NULL;
  w->got = mps_pool_wait_any(w->fs, 2, 20.0);
  return NULL;
}

/* A thread asleep in wait_any on futures of two pools is woken by either;
 * a set holding both returns them in completion order. */
Test(pool, one_wait_covers_futures_of_two_pools, .timeout = 30)
{
  mps_pool *a = mps_pool_new(1), *b = mps_pool_new(1);
  cr_assert_not_null(a);
  cr_assert_not_null(b);
  mps_future *fs[2] = {mps_pool_submit(a, wait_gate, NULL, 0),
                       mps_pool_submit(b, wait_gate, NULL, 0)};
  cr_assert_not_null(fs[0]);
  cr_assert_not_null(fs[1]);
  wait_started();
  wait_started();
  mps_future_set *s = mps_future_set_new();
  cr_assert_not_null(s);
  cr_assert_eq(mps_future_set_add(s, fs[0]), 0);
  cr_assert_eq(mps_future_set_add(s, fs[1]), 0);
  cr_assert_null(mps_future_set_next(s, 0));
  cr_assert_eq(errno, EAGAIN);
  struct any_waiter w = {.fs = fs, .got = -1};
  cr_assert_eq(pipe(w.tid_pipe), 0);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, wait_any_of_two, &w), 0);
  pid_t tid;
  cr_assert_eq(read(w.tid_pipe[0], &tid, sizeof(tid)), (ssize_t)sizeof(tid));
  wait_until_blocked(tid);
  open_gate(1); /* one of the two workers takes it */
  cr_assert_eq(pthread_join(th, NULL), 0);
  cr_assert(w.got == 0 || w.got == 1, "wait_any gave %zd", w.got);
  cr_assert_eq(mps_future_set_next(s, 20.0), fs[w.got]);
  open_gate(1);
  cr_assert_eq(mps_future_set_next(s, 20.0), fs[1 - w.got]);
  cr_assert_null(mps_future_set_next(s, 0));
  cr_assert_eq(errno, ENOENT);
  mps_future_set_free(s);
  for (int k = 0; k < 2; k++) {
    cr_assert_eq(mps_future_result(fs[k], NULL, NULL, 0, 0), 0);
    mps_future_free(fs[k]);
  }
  close(w.tid_pipe[0]);
  close(w.tid_pipe[1]);
  mps_pool_free(a);
  free_and_check(b);
}

/* ---- handles after free ---------------------------------------------------- */

/* A freed pool or future is caught by its magic word while its memory is
 * not reused; AddressSanitizer reports the read of freed memory itself, as
 * it should (tests/test_damage.c does the same for the other handles). */
#if defined(__SANITIZE_ADDRESS__)
#define SKIP_UNDER_ASAN() cr_skip_test("use after free is AddressSanitizer's to report")
#else
#define SKIP_UNDER_ASAN() (void)0
#endif

static void never_called(mps_future *f, void *arg) { (void)f, (void)arg; }

static void expect_future_refused(mps_future *f)
{
  cr_expect_eq(mps_future_result(f, NULL, NULL, 0, 0), -EINVAL);
  cr_expect(!mps_future_done(f));
  cr_expect_eq(mps_future_cancel(f), -EINVAL);
  cr_expect_eq(mps_future_add_done_callback(f, never_called, NULL), -EINVAL);
  mps_future_set *s = mps_future_set_new();
  cr_assert_not_null(s);
  cr_expect_eq(mps_future_set_add(s, f), -EINVAL);
  mps_future_set_free(s);
  mps_future *all[] = {f};
  cr_expect_eq(mps_pool_wait_any(all, 1, 0), -EINVAL);
  mps_future_free(f); /* a second free: nothing */
}

/* A pending future freed by its caller stays allocated for its runner:
 * every later call on it is -EINVAL, under the sanitizers too. */
Test(pool, a_pending_future_after_free_is_einval, .timeout = 30)
{
  mps_pool *p = mps_pool_new(1);
  cr_assert_not_null(p);
  mps_future *f = mps_pool_submit(p, wait_gate, NULL, 0);
  cr_assert_not_null(f);
  wait_started();
  mps_future_free(f);
  expect_future_refused(f);
  open_gate(1);
  free_and_check(p);
}

Test(pool, a_freed_pool_future_or_stream_is_einval_not_a_crash, .timeout = 30)
{
  SKIP_UNDER_ASAN();
  mps_pool *p = mps_pool_new(1);
  cr_assert_not_null(p);
  mps_future *f = submit_long(p, square, 3);
  cr_assert_eq(result_long(f, 0), 9);
  mps_future_free(f); /* done: really freed */
  expect_future_refused(f);
  long in[4] = {1, 2, 3, 4};
  mps_pool_stream *s = mps_pool_imap_unordered(p, square, in, 4, sizeof(long), sizeof(long), 0);
  cr_assert_not_null(s);
  mps_pool_stream_free(s);
  mps_pool_stream_free(s);
  cr_expect_eq(mps_pool_stream_next(s, NULL, NULL, NULL, 0, 0), -EINVAL);
  free_and_check(p);
  mps_pool_free(p); /* a second free: nothing */
  errno = 0;
  cr_expect_null(mps_pool_submit(p, square, &in[0], sizeof(long)));
  cr_expect_eq(errno, EINVAL);
  cr_expect_null(mps_pool_imap_unordered(p, square, in, 4, sizeof(long), sizeof(long), 0));
  cr_expect_eq(errno, EINVAL);
  ssize_t vals[4];
  cr_expect_eq(mps_pool_map(p, square, in, 4, sizeof(long), in, sizeof(long), vals, NULL, 0),
               -EINVAL);
  cr_expect_eq(mps_pool_shutdown(p, true, false), -EINVAL);
  cr_expect_eq(mps_pool_terminate(p), -EINVAL);
  cr_expect_eq(mps_pool_workers(p, NULL, 0), -EINVAL);
}

/* A future freed while done in a set is never returned by it; a future
 * returned by next, or whose set was freed, may join a set again; a set
 * freed before its futures complete goes with the last of them (LeakSanitizer
 * checks it under make check-sanitize). */
Test(pool, sets_and_their_futures_freed_in_any_order, .timeout = 30)
{
  mps_pool *p = mps_pool_new(1);
  cr_assert_not_null(p);
  mps_future *f1 = submit_long(p, square, 2), *f2 = submit_long(p, square, 3);
  cr_assert_eq(result_long(f1, 0), 4);
  cr_assert_eq(result_long(f2, 0), 9);
  mps_future_set *s = mps_future_set_new();
  cr_assert_not_null(s);
  cr_assert_eq(mps_future_set_add(s, f1), 0);
  cr_assert_eq(mps_future_set_add(s, f2), 0);
  cr_assert_eq(mps_future_set_add(s, f2), -EBUSY);
  mps_future_free(f1);
  cr_assert_eq(mps_future_set_next(s, 0), f2);
  cr_assert_null(mps_future_set_next(s, 0));
  cr_assert_eq(errno, ENOENT);
  cr_assert_eq(mps_future_set_add(s, f2), 0, "returned by next: it may come back");
  cr_assert_eq(mps_future_set_next(s, 0), f2);
  mps_future *g = mps_pool_submit(p, wait_gate, NULL, 0);
  cr_assert_not_null(g);
  wait_started();
  mps_future_set *gone = mps_future_set_new();
  cr_assert_not_null(gone);
  cr_assert_eq(mps_future_set_add(gone, g), 0);
  mps_future_set_free(gone); /* g pending: the set goes with its last link */
  open_gate(1);
  cr_assert_eq(mps_future_result(g, NULL, NULL, 0, 20.0), 0);
  cr_assert_eq(mps_future_set_add(s, g), 0, "its set was freed: it may join another");
  cr_assert_eq(mps_future_set_next(s, 20.0), g);
  mps_future_free(g);
  mps_future_free(f2);
  mps_future_set_free(s);
  free_and_check(p);
}

static mps_future *done_before_fork;
static mps_future_set *set_before_fork;

/* In a child forked while another thread of the parent waits on the same
 * pool's futures: a future done before the fork, and a set, still work. */
static int read_done_future(void *arg)
{
  (void)arg;
  long y = 0;
  ssize_t v = 0;
  if (mps_future_result(done_before_fork, &v, &y, sizeof(y), 0) != 0 || v != sizeof(y) || y != 49)
    return 1;
  if (mps_future_set_next(set_before_fork, 0) != done_before_fork)
    return 2;
  return 0;
}

static int waited;

static void *wait_forever(void *arg)
{
  waited = mps_future_result(arg, NULL, NULL, 0, MPS_FOREVER);
  return NULL;
}

Test(pool, a_done_future_reads_in_a_child_forked_while_a_thread_waits, .timeout = 30)
{
  mps_pool *p = mps_pool_new(1);
  cr_assert_not_null(p);
  done_before_fork = submit_long(p, square, 7);
  cr_assert_eq(result_long(done_before_fork, 0), 49);
  set_before_fork = mps_future_set_new();
  cr_assert_not_null(set_before_fork);
  cr_assert_eq(mps_future_set_add(set_before_fork, done_before_fork), 0);
  mps_future *g = mps_pool_submit(p, wait_gate, NULL, 0);
  cr_assert_not_null(g);
  wait_started();
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, wait_forever, g), 0);
  for (int i = 0; i < 20; i++)
    child_expect_exit(child_run(read_done_future, NULL), 0);
  open_gate(1);
  cr_assert_eq(pthread_join(th, NULL), 0);
  cr_assert_eq(waited, 0);
  mps_future_free(g);
  mps_future_set_free(set_before_fork);
  mps_future_free(done_before_fork);
  free_and_check(p);
}
