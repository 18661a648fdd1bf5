/* Barrier: distinct indices, rounds, timeouts and abort breaking it, reset,
 * a party killed while waiting, named barriers, bad input, and a random-kill
 * stress. Children report their index as exit code 10 + index, -EPIPE as 1. */
#include "helpers.h"

static mps_barrier *bar;
static int fds[2];

static int code_of(int r) { return r >= 0 ? 10 + r : r == -EPIPE ? 1 : 2; }

static int party(void *arg)
{
  (void)arg;
  pipe_put(fds[1]);
  return code_of(mps_barrier_wait(bar, 20));
}

/* Reaps pid and returns its index, or -1 for -EPIPE. */
static int reap_index(pid_t pid)
{
  int status = child_wait(pid);
  cr_assert(WIFEXITED(status), "status 0x%x", status);
  int code = WEXITSTATUS(status);
  cr_assert(code == 1 || code >= 10, "child code %d", code);
  return code == 1 ? -1 : code - 10;
}

Test(barrier, indices_are_distinct_and_rounds_repeat, .timeout = 30)
{
  bar = mps_barrier_new(3);
  cr_assert_not_null(bar);
  cr_assert_eq(pipe(fds), 0);
  cr_assert_eq(mps_barrier_parties(bar), 3);
  for (int round = 0; round < 5; round++) {
    pid_t a = child_run(party, NULL), b = child_run(party, NULL);
    int seen = 1 << mps_barrier_wait(bar, 20);
    seen |= 1 << reap_index(a);
    seen |= 1 << reap_index(b);
    cr_assert_eq(seen, 7, "indices 0, 1 and 2 in round %d", round);
    cr_assert_eq(mps_barrier_n_waiting(bar), 0);
    pipe_get(fds[0]), pipe_get(fds[0]);
  }
  mps_barrier_close(bar);
}

Test(barrier, one_party_never_waits, .timeout = 10)
{
  bar = mps_barrier_new(1);
  cr_assert_eq(mps_barrier_wait(bar, 0), 0);
  cr_assert_eq(mps_barrier_wait(bar, MPS_FOREVER), 0);
  mps_barrier_close(bar);
}

Test(barrier, timeout_breaks_it_until_reset, .timeout = 20)
{
  bar = mps_barrier_new(2);
  double t0 = test_now();
  cr_assert_eq(mps_barrier_wait(bar, 0.05), -ETIMEDOUT);
  cr_assert_geq(test_now() - t0, 0.05);
  cr_assert(mps_barrier_broken(bar));
  cr_assert_eq(mps_barrier_n_waiting(bar), 0);
  cr_assert_eq(mps_barrier_wait(bar, 5), -EPIPE);
  cr_assert_eq(mps_barrier_reset(bar), 0);
  cr_assert_not(mps_barrier_broken(bar));
  cr_assert_eq(mps_barrier_wait(bar, 0), -EAGAIN, "timeout 0 breaks it too");
  cr_assert(mps_barrier_broken(bar));
  cr_assert_eq(mps_barrier_reset(bar), 0);
  cr_assert_eq(pipe(fds), 0);
  pid_t a = child_run(party, NULL);
  int mine = mps_barrier_wait(bar, 20);
  cr_assert_eq((1 << mine) | (1 << reap_index(a)), 3);
  mps_barrier_close(bar);
}

static void start_sleeping_party(pid_t *pid)
{
  *pid = child_run(party, NULL);
  pipe_get(fds[0]);
  wait_until_blocked(*pid);
}

Test(barrier, abort_and_reset_wake_waiters_with_epipe, .timeout = 20)
{
  bar = mps_barrier_new(3);
  cr_assert_eq(pipe(fds), 0);
  pid_t a, b;
  start_sleeping_party(&a);
  start_sleeping_party(&b);
  cr_assert_eq(mps_barrier_n_waiting(bar), 2);
  cr_assert_eq(mps_barrier_abort(bar), 0);
  cr_assert_eq(reap_index(a), -1);
  cr_assert_eq(reap_index(b), -1);
  cr_assert_eq(mps_barrier_reset(bar), 0);
  start_sleeping_party(&a);
  cr_assert_eq(mps_barrier_reset(bar), 0, "reset while a party waits");
  cr_assert_eq(reap_index(a), -1);
  cr_assert_not(mps_barrier_broken(bar));
  cr_assert_eq(mps_barrier_n_waiting(bar), 0);
  mps_barrier_close(bar);
}

Test(barrier, party_killed_while_waiting_still_counts, .timeout = 20)
{
  bar = mps_barrier_new(3);
  cr_assert_eq(pipe(fds), 0);
  pid_t dead, live;
  start_sleeping_party(&dead); /* index 0 */
  kill(dead, SIGKILL);
  child_expect_signal(dead, SIGKILL);
  cr_assert_eq(mps_barrier_n_waiting(bar), 1, "the dead party has arrived");
  start_sleeping_party(&live); /* index 1 */
  cr_assert_eq(mps_barrier_wait(bar, 20), 2, "the last party releases the survivor");
  cr_assert_eq(reap_index(live), 1);
  cr_assert_not(mps_barrier_broken(bar));
  mps_barrier_close(bar);
}

static char bar_name[64];

static int named_party(void *arg)
{
  (void)arg;
  mps_barrier *b = mps_barrier_open(bar_name);
  if (b == NULL)
    return 3;
  int r = mps_barrier_wait(b, 20);
  mps_barrier_close(b);
  return code_of(r);
}

Test(barrier, named_barrier, .timeout = 20)
{
  test_name(bar_name, "barrier");
  bar = mps_barrier_create(bar_name, 2);
  cr_assert_not_null(bar, "%s", strerror(errno));
  cr_assert_null(mps_barrier_create(bar_name, 2));
  cr_assert_eq(errno, EEXIST);
  pid_t a = child_run(named_party, NULL);
  int mine = mps_barrier_wait(bar, 20);
  cr_assert_eq((1 << mine) | (1 << reap_index(a)), 3);
  cr_assert_null(mps_cond_open(bar_name));
  cr_assert_eq(errno, EPROTO);
  mps_barrier_close(bar);
  cr_assert_eq(mps_unlink(bar_name), 0);
  assert_no_segments_left();
}

Test(barrier, bad_arguments, .timeout = 10)
{
  errno = 0;
  cr_assert_null(mps_barrier_new(0));
  cr_assert_eq(errno, EINVAL);
  cr_assert_null(mps_barrier_new(0x80000000u));
  cr_assert_eq(errno, EINVAL);
  cr_assert_null(mps_barrier_open(NULL));
  cr_assert_eq(errno, EINVAL);
  cr_assert_eq(mps_barrier_wait(NULL, 0), -EINVAL);
  cr_assert_eq(mps_barrier_abort(NULL), -EINVAL);
  cr_assert_eq(mps_barrier_reset(NULL), -EINVAL);
  cr_assert_eq(mps_barrier_parties(NULL), -EINVAL);
  cr_assert_eq(mps_barrier_n_waiting(NULL), -EINVAL);
  cr_assert_not(mps_barrier_broken(NULL));
  cr_assert_eq(mps_barrier_close(NULL), 0);
  bar = mps_barrier_new(2);
  cr_assert_eq(mps_barrier_wait(bar, 0.0 / 0.0), -EINVAL);
  cr_assert_eq(mps_barrier_n_waiting(bar), 0, "NaN did not arrive");
  mps_barrier_close(bar);
}

/* 50 rounds: 3 children and the parent are the 4 parties; one child,
 * chosen at random, is killed at a random moment (before, while or after
 * arriving). If it had arrived (n_waiting reaches 3) the parent completes
 * the round and every survivor must get a distinct index; otherwise the
 * parent aborts and every survivor must get -EPIPE. Either way nobody hangs:
 * every wait is bounded and so is the test. */
#define ROUNDS 50
#define KIDS   3

static bool poll_n_waiting(int want, double for_s)
{
  double end = test_now() + for_s;
  while (mps_barrier_n_waiting(bar) < want)
    if (test_now() > end)
      return false;
    else
      sched_yield();
  return true;
}

Test(barrier, stress_random_kill_50_rounds, .timeout = 60)
{
  alarm(50); /* no hang, even if Criterion's own timeout did not fire */
  bar = mps_barrier_new(KIDS + 1);
  cr_assert_eq(pipe(fds), 0);
  unsigned seed = (unsigned)getpid();
  for (int round = 0; round < ROUNDS; round++) {
    int victim = rand_r(&seed) % KIDS, when = rand_r(&seed) % (KIDS + 1);
    pid_t pids[KIDS];
    for (int i = 0; i < KIDS; i++)
      pids[i] = child_run(party, NULL);
    poll_n_waiting(when, 5); /* kill once `when` parties arrived */
    kill(pids[victim], SIGKILL);
    child_expect_signal(pids[victim], SIGKILL);
    bool complete = poll_n_waiting(KIDS, 0.1);
    int mine = complete ? mps_barrier_wait(bar, 20) : mps_barrier_abort(bar);
    int seen = complete ? 1 << mine : 0;
    for (int i = 0; i < KIDS; i++) {
      if (i == victim)
        continue;
      int idx = reap_index(pids[i]);
      cr_assert_eq(idx >= 0, complete, "round %d: survivor %d got %d", round, i, idx);
      if (idx >= 0) {
        cr_assert_eq(seen & (1 << idx), 0, "round %d: index %d twice", round, idx);
        seen |= 1 << idx;
      }
    }
    if (!complete)
      cr_assert_eq(mps_barrier_reset(bar), 0);
    cr_assert_not(mps_barrier_broken(bar));
    cr_assert_eq(mps_barrier_n_waiting(bar), 0);
  }
  close(fds[0]), close(fds[1]);
  mps_barrier_close(bar);
}

Test(barrier, example_barrier_phases, .timeout = 60)
{
  char out[4096];
  int status = run_example("barrier_phases", (const char *[]){NULL}, out, sizeof(out));
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x: %s", status, out);
  cr_assert_not_null(strstr(out, "4 processes went through 3 phases together\n"), "%s", out);
}
