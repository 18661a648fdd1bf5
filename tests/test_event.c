/* Event: set/clear/is_set, waits and timeouts, waking every process,
 * surviving a killed waiter, named forms, bad input. */
#include "helpers.h"

static mps_event *ev;
static int fds[2];

Test(event, set_clear_is_set_and_wait_once, .timeout = 10)
{
  ev = mps_event_new();
  cr_assert_not_null(ev);
  cr_assert_not(mps_event_is_set(ev));
  cr_assert_eq(mps_event_wait(ev, 0), -EAGAIN);
  cr_assert_eq(mps_event_set(ev), 0);
  cr_assert(mps_event_is_set(ev));
  cr_assert_eq(mps_event_wait(ev, 0), 0);
  cr_assert_eq(mps_event_wait(ev, MPS_FOREVER), 0);
  cr_assert_eq(mps_event_clear(ev), 0);
  cr_assert_not(mps_event_is_set(ev));
  double t0 = test_now();
  cr_assert_eq(mps_event_wait(ev, 0.05), -ETIMEDOUT);
  cr_assert_geq(test_now() - t0, 0.05);
  mps_event_close(ev);
}

static int wait_forever(void *arg)
{
  (void)arg;
  pipe_put(fds[1]);
  return mps_event_wait(ev, MPS_FOREVER) == 0 ? 0 : 1;
}

static void start_waiters(pid_t *pids, int n)
{
  for (int i = 0; i < n; i++) {
    pids[i] = child_run(wait_forever, NULL);
    pipe_get(fds[0]);
    wait_until_blocked(pids[i]);
  }
}

Test(event, set_wakes_every_process, .timeout = 20)
{
  ev = mps_event_new();
  cr_assert_eq(pipe(fds), 0);
  pid_t pids[4];
  start_waiters(pids, 4);
  cr_assert_eq(mps_event_set(ev), 0);
  for (int i = 0; i < 4; i++)
    child_expect_exit(pids[i], 0);
  mps_event_close(ev);
}

Test(event, set_then_clear_still_releases_the_waiters, .timeout = 20)
{
  ev = mps_event_new();
  cr_assert_eq(pipe(fds), 0);
  pid_t pids[2];
  start_waiters(pids, 2);
  cr_assert_eq(mps_event_set(ev), 0);
  cr_assert_eq(mps_event_clear(ev), 0);
  for (int i = 0; i < 2; i++)
    child_expect_exit(pids[i], 0);
  cr_assert_not(mps_event_is_set(ev));
  mps_event_close(ev);
}

Test(event, killed_waiter_does_not_stop_the_others, .timeout = 20)
{
  ev = mps_event_new();
  cr_assert_eq(pipe(fds), 0);
  pid_t pids[3];
  start_waiters(pids, 3);
  kill(pids[1], SIGKILL);
  child_expect_signal(pids[1], SIGKILL);
  cr_assert_eq(mps_event_set(ev), 0);
  child_expect_exit(pids[0], 0);
  child_expect_exit(pids[2], 0);
  mps_event_close(ev);
}

static char ev_name[64];

static int open_and_set(void *arg)
{
  (void)arg;
  mps_event *e = mps_event_open(ev_name);
  if (e == NULL)
    return 1;
  int r = mps_event_set(e);
  mps_event_close(e);
  return r == 0 ? 0 : 2;
}

Test(event, named_event_set_by_another_process, .timeout = 20)
{
  test_name(ev_name, "event");
  ev = mps_event_create(ev_name);
  cr_assert_not_null(ev, "%s", strerror(errno));
  cr_assert_null(mps_event_create(ev_name));
  cr_assert_eq(errno, EEXIST);
  pid_t pid = child_run(open_and_set, NULL);
  cr_assert_eq(mps_event_wait(ev, 10), 0);
  child_expect_exit(pid, 0);
  cr_assert_null(mps_barrier_open(ev_name));
  cr_assert_eq(errno, EPROTO);
  mps_event_close(ev);
  cr_assert_eq(mps_unlink(ev_name), 0);
  cr_assert_null(mps_event_open(ev_name));
  cr_assert_eq(errno, ENOENT);
  assert_no_segments_left();
}

Test(event, bad_arguments, .timeout = 10)
{
  cr_assert_eq(mps_event_set(NULL), -EINVAL);
  cr_assert_eq(mps_event_clear(NULL), -EINVAL);
  cr_assert_eq(mps_event_wait(NULL, 0), -EINVAL);
  cr_assert_not(mps_event_is_set(NULL));
  cr_assert_eq(mps_event_close(NULL), 0);
  cr_assert_null(mps_event_create(""));
  cr_assert_eq(errno, EINVAL);
  ev = mps_event_new();
  cr_assert_eq(mps_event_wait(ev, 0.0 / 0.0), -EINVAL);
  mps_event_close(ev);
}

Test(event, example_event_start, .timeout = 60)
{
  char out[4096];
  int status = run_example("event_start", (const char *[]){NULL}, out, sizeof(out));
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x: %s", status, out);
  cr_assert_not_null(strstr(out, "4 workers started after the event was set\n"), "%s", out);
}
