/* Semaphore and BoundedSemaphore: counting, bounds, timeouts, waking across
 * processes, dead holders and dead waiters, named forms, bad input. */
#include "helpers.h"

#include <stdatomic.h>

static mps_semaphore *sem;
static int fds[2];

Test(semaphore, counts_down_and_up, .timeout = 10)
{
  sem = mps_semaphore_new(2);
  cr_assert_not_null(sem);
  cr_assert_eq(mps_semaphore_value(sem), 2);
  cr_assert_eq(mps_semaphore_acquire(sem, 0), 0);
  cr_assert_eq(mps_semaphore_acquire(sem, MPS_FOREVER), 0);
  cr_assert_eq(mps_semaphore_value(sem), 0);
  cr_assert_eq(mps_semaphore_acquire(sem, 0), -EAGAIN);
  cr_assert_eq(mps_semaphore_release(sem), 0);
  cr_assert_eq(mps_semaphore_release(sem), 0);
  cr_assert_eq(mps_semaphore_release(sem), 0, "an unbounded semaphore goes past its start");
  cr_assert_eq(mps_semaphore_value(sem), 3);
  mps_semaphore_close(sem);
}

Test(semaphore, bounded_release_past_start_overflows, .timeout = 10)
{
  sem = mps_bounded_semaphore_new(1);
  cr_assert_not_null(sem);
  cr_assert_eq(mps_semaphore_release(sem), -EOVERFLOW);
  cr_assert_eq(mps_semaphore_value(sem), 1);
  cr_assert_eq(mps_semaphore_acquire(sem, 0), 0);
  cr_assert_eq(mps_semaphore_release(sem), 0);
  cr_assert_eq(mps_semaphore_release(sem), -EOVERFLOW);
  mps_semaphore_close(sem);
  sem = mps_bounded_semaphore_new(0);
  cr_assert_eq(mps_semaphore_release(sem), -EOVERFLOW);
  mps_semaphore_close(sem);
}

Test(semaphore, timeout_waits_at_least_that_long, .timeout = 10)
{
  sem = mps_semaphore_new(0);
  double t0 = test_now();
  cr_assert_eq(mps_semaphore_acquire(sem, 0.05), -ETIMEDOUT);
  cr_assert_geq(test_now() - t0, 0.05);
  mps_semaphore_close(sem);
}

static int acquire_forever(void *arg)
{
  (void)arg;
  pipe_put(fds[1]);
  return mps_semaphore_acquire(sem, MPS_FOREVER) == 0 ? 0 : 1;
}

Test(semaphore, release_wakes_a_blocked_process, .timeout = 20)
{
  sem = mps_semaphore_new(0);
  cr_assert_eq(pipe(fds), 0);
  pid_t pid = child_run(acquire_forever, NULL);
  pipe_get(fds[0]);
  wait_until_blocked(pid);
  cr_assert_eq(mps_semaphore_release(sem), 0);
  child_expect_exit(pid, 0);
  cr_assert_eq(mps_semaphore_value(sem), 0, "the child took the unit");
  mps_semaphore_close(sem);
}

static int take_and_die(void *arg)
{
  (void)arg;
  if (mps_semaphore_acquire(sem, 0) != 0)
    return 1;
  raise(SIGKILL);
  return 2;
}

Test(semaphore, dead_holder_does_not_give_back, .timeout = 20)
{
  sem = mps_semaphore_new(1);
  child_expect_signal(child_run(take_and_die, NULL), SIGKILL);
  cr_assert_eq(mps_semaphore_value(sem), 0);
  cr_assert_eq(mps_semaphore_acquire(sem, 0), -EAGAIN);
  mps_semaphore_close(sem);
}

Test(semaphore, killed_waiter_takes_nothing_and_blocks_nobody, .timeout = 20)
{
  sem = mps_semaphore_new(0);
  cr_assert_eq(pipe(fds), 0);
  pid_t dead = child_run(acquire_forever, NULL);
  pipe_get(fds[0]);
  wait_until_blocked(dead);
  pid_t live = child_run(acquire_forever, NULL);
  pipe_get(fds[0]);
  wait_until_blocked(live);
  kill(dead, SIGKILL);
  child_expect_signal(dead, SIGKILL);
  cr_assert_eq(mps_semaphore_release(sem), 0);
  child_expect_exit(live, 0);
  cr_assert_eq(mps_semaphore_value(sem), 0);
  mps_semaphore_close(sem);
}

static mps_value *inside;

static int enter_many(void *arg)
{
  (void)arg;
  _Atomic int *v = mps_value_ptr(inside);
  for (int i = 0; i < 2000; i++) {
    if (mps_semaphore_acquire(sem, 10) != 0)
      return 1;
    int now = atomic_fetch_add(&v[0], 1) + 1;
    int peak = atomic_load(&v[1]);
    while (now > peak && !atomic_compare_exchange_weak(&v[1], &peak, now))
      ;
    atomic_fetch_sub(&v[0], 1);
    if (mps_semaphore_release(sem) != 0)
      return 2;
  }
  return 0;
}

Test(semaphore, never_more_inside_than_its_value, .timeout = 30)
{
  sem = mps_bounded_semaphore_new(2);
  inside = mps_value_new_sized(2 * sizeof(_Atomic int), false);
  pid_t pids[4];
  for (int i = 0; i < 4; i++)
    pids[i] = child_run(enter_many, NULL);
  for (int i = 0; i < 4; i++)
    child_expect_exit(pids[i], 0);
  _Atomic int *v = mps_value_ptr(inside);
  cr_assert_leq(atomic_load(&v[1]), 2);
  cr_assert_geq(atomic_load(&v[1]), 1);
  cr_assert_eq(mps_semaphore_value(sem), 2);
  mps_value_close(inside);
  mps_semaphore_close(sem);
}

static char sem_name[64];

static int open_and_release(void *arg)
{
  (void)arg;
  mps_semaphore *s = mps_semaphore_open(sem_name);
  if (s == NULL)
    return 1;
  int r = mps_semaphore_release(s);
  mps_semaphore_close(s);
  return r == -EOVERFLOW ? 0 : 2;
}

Test(semaphore, named_keeps_its_bound, .timeout = 20)
{
  test_name(sem_name, "sem");
  sem = mps_bounded_semaphore_create(sem_name, 3);
  cr_assert_not_null(sem, "%s", strerror(errno));
  cr_assert_null(mps_semaphore_create(sem_name, 1));
  cr_assert_eq(errno, EEXIST);
  child_expect_exit(child_run(open_and_release, NULL), 0);
  mps_semaphore *b = mps_semaphore_open(sem_name);
  cr_assert_not_null(b);
  cr_assert_eq(mps_semaphore_acquire(b, 0), 0);
  cr_assert_eq(mps_semaphore_value(sem), 2, "one semaphore through two mappings");
  cr_assert_null(mps_event_open(sem_name));
  cr_assert_eq(errno, EPROTO);
  mps_semaphore_close(b);
  mps_semaphore_close(sem);
  cr_assert_eq(mps_unlink(sem_name), 0);
  assert_no_segments_left();
}

Test(semaphore, bad_arguments, .timeout = 10)
{
  cr_assert_eq(mps_semaphore_acquire(NULL, 0), -EINVAL);
  cr_assert_eq(mps_semaphore_release(NULL), -EINVAL);
  cr_assert_eq(mps_semaphore_value(NULL), -EINVAL);
  cr_assert_eq(mps_semaphore_close(NULL), 0);
  errno = 0;
  cr_assert_null(mps_semaphore_new(0x80000000u));
  cr_assert_eq(errno, EINVAL);
  cr_assert_null(mps_semaphore_create(NULL, 1));
  cr_assert_eq(errno, EINVAL);
  cr_assert_null(mps_semaphore_open("a/b"));
  cr_assert_eq(errno, EINVAL);
  sem = mps_semaphore_new(1);
  cr_assert_eq(mps_semaphore_acquire(sem, 0.0 / 0.0), -EINVAL);
  cr_assert_eq(mps_semaphore_value(sem), 1, "NaN took nothing");
  mps_semaphore_close(sem);
}

Test(semaphore, example_semaphore_pool, .timeout = 60)
{
  char out[4096];
  int status = run_example("semaphore_pool", (const char *[]){NULL}, out, sizeof(out));
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x: %s", status, out);
  cr_assert_not_null(strstr(out, "highest inside at once: 3\n"), "%s", out);
}
