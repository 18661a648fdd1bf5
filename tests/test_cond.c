/* Condition: lock ownership rules, notify(n) exactness and order,
 * notify_all, timeouts, wait_for, a killed waiter, a lock owner killed while
 * others wait, named conditions, and a random-kill stress. */
#include "helpers.h"

#include <fcntl.h>
#include <pthread.h>

#define N 3

static mps_cond *cond;

/* What the waiters share: the notify round the parent is in, and the round
 * each waiter saw when it woke. */
struct shared {
  int round;
  int flag;
  int woke[8];
};
static struct shared *sh;
static mps_value *shv;
static int ready[2], woke[2];

static void setup(mps_lock *lock)
{
  cond = mps_cond_new(lock);
  cr_assert_not_null(cond);
  shv = mps_value_new_sized(sizeof(struct shared), false);
  sh = mps_value_ptr(shv);
  cr_assert_eq(pipe(ready), 0);
  cr_assert_eq(pipe(woke), 0);
}

static void teardown(void)
{
  mps_cond_close(cond);
  mps_value_close(shv);
  close(ready[0]), close(ready[1]), close(woke[0]), close(woke[1]);
}

Test(cond, wait_and_notify_need_the_lock, .timeout = 10)
{
  setup(NULL);
  cr_assert_eq(mps_cond_wait(cond, 0), -EPERM);
  cr_assert_eq(mps_cond_notify(cond, 1), -EPERM);
  cr_assert_eq(mps_cond_notify_all(cond), -EPERM);
  cr_assert_eq(mps_cond_release(cond), -EPERM);
  cr_assert_eq(mps_cond_acquire(cond, 0), 0);
  cr_assert_eq(mps_cond_wait(cond, 0), -EAGAIN);
  cr_assert_eq(mps_cond_acquire(cond, 0), -EDEADLK, "still held after wait");
  double t0 = test_now();
  cr_assert_eq(mps_cond_wait(cond, 0.05), -ETIMEDOUT);
  cr_assert_geq(test_now() - t0, 0.05);
  cr_assert_eq(mps_cond_notify(cond, 5), 0, "nobody waits");
  cr_assert_eq(mps_cond_notify_all(cond), 0);
  cr_assert_eq(mps_cond_release(cond), 0);
  teardown();
}

/* Waiter i: registers, tells the parent, waits, records the round. */
static int waiter(void *arg)
{
  int i = (int)(intptr_t)arg;
  if (mps_cond_acquire(cond, MPS_FOREVER) != 0)
    return 10;
  pipe_put(ready[1]);
  int r = mps_cond_wait(cond, 20);
  sh->woke[i] = sh->round;
  mps_cond_release(cond);
  pipe_put(woke[1]);
  return r == 0 ? 0 : 11;
}

/* Starts waiter i and returns once it is registered: it released the lock
 * only inside wait, so taking the lock proves it waits. */
static pid_t start_waiter(int i)
{
  pid_t pid = child_run(waiter, (void *)(intptr_t)i);
  pipe_get(ready[0]);
  cr_assert_geq(mps_cond_acquire(cond, MPS_FOREVER), 0);
  cr_assert_eq(mps_cond_release(cond), 0);
  return pid;
}

static void notify_round(int round, unsigned n, int expect)
{
  cr_assert_eq(mps_cond_acquire(cond, MPS_FOREVER), 0);
  sh->round = round;
  cr_assert_eq(mps_cond_notify(cond, n), expect);
  cr_assert_eq(mps_cond_release(cond), 0);
  for (int k = 0; k < expect; k++)
    pipe_get(woke[0]);
}

Test(cond, notify_one_wakes_exactly_one_oldest_first, .timeout = 30)
{
  setup(NULL);
  pid_t pids[N];
  for (int i = 0; i < N; i++)
    pids[i] = start_waiter(i);
  for (int k = 1; k <= N; k++)
    notify_round(k, 1, 1);
  for (int i = 0; i < N; i++)
    child_expect_exit(pids[i], 0);
  /* One waiter per round, in the order they started to wait. */
  for (int i = 0; i < N; i++)
    cr_assert_eq(sh->woke[i], i + 1, "waiter %d woke in round %d", i, sh->woke[i]);
  teardown();
}

Test(cond, notify_n_and_notify_all, .timeout = 30)
{
  setup(NULL);
  pid_t pids[5];
  for (int i = 0; i < 5; i++)
    pids[i] = start_waiter(i);
  notify_round(1, 2, 2);
  cr_assert_eq(mps_cond_acquire(cond, MPS_FOREVER), 0);
  sh->round = 2;
  cr_assert_eq(mps_cond_notify_all(cond), 3);
  cr_assert_eq(mps_cond_release(cond), 0);
  for (int i = 0; i < 5; i++)
    child_expect_exit(pids[i], 0);
  for (int i = 0; i < 5; i++)
    cr_assert_eq(sh->woke[i], i < 2 ? 1 : 2, "waiter %d: round %d", i, sh->woke[i]);
  teardown();
}

Test(cond, killed_waiter_does_not_take_a_notification, .timeout = 30)
{
  setup(NULL);
  pid_t pids[N];
  for (int i = 0; i < N; i++)
    pids[i] = start_waiter(i);
  kill(pids[0], SIGKILL); /* the oldest, first in line for notify(1) */
  child_expect_signal(pids[0], SIGKILL);
  notify_round(1, 1, 1);
  notify_round(2, 1, 1);
  notify_round(3, 1, 0);
  child_expect_exit(pids[1], 0);
  child_expect_exit(pids[2], 0);
  cr_assert_eq(sh->woke[1], 1);
  cr_assert_eq(sh->woke[2], 2);
  teardown();
}

static mps_lock *vlock;

static int notify_and_die(void *arg)
{
  (void)arg;
  if (mps_lock_acquire(vlock, MPS_FOREVER) != 0)
    return 1;
  mps_cond_notify_all(cond);
  raise(SIGKILL); /* dies holding the lock the waiter must take back */
  return 2;
}

static int wait_expect_owner_died(void *arg)
{
  (void)arg;
  if (mps_lock_acquire(vlock, MPS_FOREVER) != 0)
    return 1;
  pipe_put(ready[1]);
  int r = mps_cond_wait(cond, 20);
  if (mps_lock_release(vlock) != 0)
    return 3;
  return r == MPS_OWNER_DIED ? 0 : 2;
}

Test(cond, over_a_value_lock_reacquire_reports_owner_died, .timeout = 30)
{
  mps_value *v = mps_value_new(MPS_INT, true);
  vlock = mps_value_get_lock(v);
  setup(vlock);
  pid_t w = child_run(wait_expect_owner_died, NULL);
  pipe_get(ready[0]);
  cr_assert_eq(mps_lock_acquire(vlock, MPS_FOREVER), 0); /* w waits now */
  cr_assert_eq(mps_lock_release(vlock), 0);
  child_expect_signal(child_run(notify_and_die, NULL), SIGKILL);
  child_expect_exit(w, 0);
  cr_assert_eq(mps_lock_acquire(vlock, 0), 0, "consistent again");
  mps_lock_release(vlock);
  teardown();
  mps_value_close(v);
}

static int flag_is(void *arg) { return sh->flag == *(int *)arg; }

static int wait_for_flag(void *arg)
{
  if (mps_cond_acquire(cond, MPS_FOREVER) < 0) /* MPS_OWNER_DIED is fine */
    return 10;
  pipe_put(ready[1]);
  int r = mps_cond_wait_for(cond, flag_is, arg, 20);
  while (r == MPS_OWNER_DIED) /* a killed sibling held the lock: recheck */
    r = mps_cond_wait_for(cond, flag_is, arg, 20);
  mps_cond_release(cond);
  return r == 0 ? 0 : 11;
}

Test(cond, wait_for_predicate_and_timeout, .timeout = 30)
{
  setup(NULL);
  int want = 1;
  cr_assert_eq(mps_cond_acquire(cond, 0), 0);
  double t0 = test_now();
  cr_assert_eq(mps_cond_wait_for(cond, flag_is, &want, 0.05), -ETIMEDOUT);
  cr_assert_geq(test_now() - t0, 0.05);
  cr_assert_eq(mps_cond_wait_for(cond, flag_is, &want, 0), -EAGAIN);
  sh->flag = 1;
  cr_assert_eq(mps_cond_wait_for(cond, flag_is, &want, 0), 0, "true at once");
  sh->flag = 0;
  cr_assert_eq(mps_cond_release(cond), 0);
  pid_t pid = child_run(wait_for_flag, &want);
  pipe_get(ready[0]);
  /* Notifies while the predicate is still false are absorbed. */
  cr_assert_eq(mps_cond_acquire(cond, MPS_FOREVER), 0);
  cr_assert_eq(mps_cond_notify_all(cond), 1);
  cr_assert_eq(mps_cond_release(cond), 0);
  cr_assert_eq(mps_cond_acquire(cond, MPS_FOREVER), 0);
  sh->flag = 1;
  mps_cond_notify_all(cond);
  cr_assert_eq(mps_cond_release(cond), 0);
  child_expect_exit(pid, 0);
  teardown();
}

static char cond_name[64];

static int named_notifier(void *arg)
{
  (void)arg;
  mps_cond *c = mps_cond_open(cond_name);
  if (c == NULL)
    return 1;
  int woken = 0;
  while (woken == 0) { /* until the parent waits */
    if (mps_cond_acquire(c, MPS_FOREVER) != 0)
      return 2;
    woken = mps_cond_notify(c, 1);
    mps_cond_release(c);
    sched_yield();
  }
  mps_cond_close(c);
  return woken == 1 ? 0 : 3;
}

Test(cond, named_condition_with_its_own_lock, .timeout = 20)
{
  test_name(cond_name, "cond");
  cond = mps_cond_create(cond_name);
  cr_assert_not_null(cond, "%s", strerror(errno));
  cr_assert_null(mps_cond_create(cond_name));
  cr_assert_eq(errno, EEXIST);
  cr_assert_eq(mps_cond_acquire(cond, 0), 0);
  pid_t pid = child_run(named_notifier, NULL);
  cr_assert_eq(mps_cond_wait(cond, 10), 0);
  cr_assert_eq(mps_cond_release(cond), 0);
  child_expect_exit(pid, 0);
  cr_assert_null(mps_semaphore_open(cond_name));
  cr_assert_eq(errno, EPROTO);
  mps_cond_close(cond);
  cr_assert_eq(mps_unlink(cond_name), 0);
  assert_no_segments_left();
}

Test(cond, bad_arguments, .timeout = 10)
{
  cr_assert_eq(mps_cond_acquire(NULL, 0), -EINVAL);
  cr_assert_eq(mps_cond_release(NULL), -EINVAL);
  cr_assert_eq(mps_cond_wait(NULL, 0), -EINVAL);
  cr_assert_eq(mps_cond_wait_for(NULL, flag_is, NULL, 0), -EINVAL);
  cr_assert_eq(mps_cond_notify(NULL, 1), -EINVAL);
  cr_assert_eq(mps_cond_notify_all(NULL), -EINVAL);
  cr_assert_eq(mps_cond_close(NULL), 0);
  cr_assert_null(mps_cond_open("."));
  cr_assert_eq(errno, EINVAL);
  cond = mps_cond_new(NULL);
  cr_assert_eq(mps_cond_acquire(cond, 0), 0);
  cr_assert_eq(mps_cond_wait(cond, 0.0 / 0.0), -EINVAL);
  cr_assert_eq(mps_cond_wait_for(cond, NULL, NULL, 1), -EINVAL);
  cr_assert_eq(mps_cond_release(cond), 0);
  mps_cond_close(cond);
}

/* 50 rounds: 4 waiters; one of them, chosen at random, is killed at a
 * random stage (just forked, about to wait or holding the lock, or
 * waiting). notify_all must then wake exactly the live waiters, all of
 * which return; no round may hang (each child's wait is bounded and the
 * test has its own timeout). */
#define ROUNDS 50

static void drain(int fd)
{
  char buf[16];
  int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  while (read(fd, buf, sizeof(buf)) > 0)
    ;
  fcntl(fd, F_SETFL, fl);
}

#define WAITERS 4

Test(cond, stress_random_kill_50_rounds, .timeout = 60)
{
  alarm(50); /* no hang, even if Criterion's own timeout did not fire */
  setup(NULL);
  unsigned seed0 = (unsigned)getpid(), seed = seed0;
  for (int round = 1; round <= ROUNDS; round++) {
    int victim = rand_r(&seed) % WAITERS, stage = rand_r(&seed) % 3;
    pid_t pids[WAITERS];
    for (int i = 0; i < WAITERS; i++) {
      pids[i] = child_run(wait_for_flag, &round);
      if (i == victim && stage == 0) {
        kill(pids[i], SIGKILL);
        child_expect_signal(pids[i], SIGKILL);
        drain(ready[0]); /* it may have said ready before it died */
        continue;
      }
      pipe_get(ready[0]);
      if (i == victim && stage == 1) {
        kill(pids[i], SIGKILL); /* holding the lock, or just inside wait */
        continue;
      }
      cr_assert_geq(mps_cond_acquire(cond, MPS_FOREVER), 0);
      cr_assert_eq(mps_cond_release(cond), 0);
      if (i == victim)
        kill(pids[i], SIGKILL);
    }
    if (stage != 0)
      child_expect_signal(pids[victim], SIGKILL);
    cr_assert_geq(mps_cond_acquire(cond, MPS_FOREVER), 0, "seed %u round %d", seed0, round);
    sh->flag = round;
    cr_assert_eq(mps_cond_notify_all(cond), WAITERS - 1, "seed %u round %d stage %d", seed0, round,
                 stage);
    cr_assert_eq(mps_cond_release(cond), 0);
    for (int i = 0; i < WAITERS; i++)
      if (i != victim)
        child_expect_exit(pids[i], 0);
  }
  teardown();
}

Test(cond, example_condition_counter, .timeout = 60)
{
  char out[4096];
  int status = run_example("condition_counter", (const char *[]){NULL}, out, sizeof(out));
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x: %s", status, out);
  cr_assert_not_null(strstr(out, "3 waiters saw the counter reach 5\n"), "%s", out);
}

/* ---- a full waiter table ------------------------------------------------ */

static mps_semaphore *parked;

static void *park(void *arg)
{
  (void)arg;
  if (mps_cond_acquire(cond, MPS_FOREVER) != 0)
    return (void *)1;
  /* Released while we hold the lock: the parent's acquire below succeeds
   * only once our wait has taken its slot and let the lock go. */
  if (mps_semaphore_release(parked) != 0)
    return (void *)2;
  int r = mps_cond_wait(cond, MPS_FOREVER);
  mps_cond_release(cond);
  return r == 0 ? NULL : (void *)3;
}

Test(cond, a_full_waiter_table_is_eusers_not_enomem, .timeout = 30)
{
  cond = mps_cond_new(NULL);
  parked = mps_semaphore_new(0);
  cr_assert(cond && parked);
  pthread_t t[MPS_COND_MAX_WAITERS];
  for (int i = 0; i < MPS_COND_MAX_WAITERS; i++) {
    cr_assert_eq(pthread_create(&t[i], NULL, park, NULL), 0);
    cr_assert_eq(mps_semaphore_acquire(parked, MPS_FOREVER), 0);
  }
  cr_assert_eq(mps_cond_acquire(cond, MPS_FOREVER), 0);
  cr_assert_eq(mps_cond_wait(cond, 0), -EUSERS);
  cr_assert_str_eq(mps_err_name(-EUSERS), "EUSERS");
  cr_assert_eq(mps_cond_notify_all(cond), MPS_COND_MAX_WAITERS);
  cr_assert_eq(mps_cond_release(cond), 0);
  for (int i = 0; i < MPS_COND_MAX_WAITERS; i++) {
    void *r;
    cr_assert_eq(pthread_join(t[i], &r), 0);
    cr_assert_null(r);
  }
  mps_semaphore_close(parked);
  mps_cond_close(cond);
}

/* ---- over an RLock (Python's default Condition) -------------------------- */

static int rlock_waiter(void *arg)
{
  (void)arg;
  if (mps_cond_acquire(cond, MPS_FOREVER) != 0 || mps_cond_acquire(cond, MPS_FOREVER) != 0)
    return 1;
  int two = 1;
  int r = mps_cond_wait_for(cond, flag_is, &two, 20.0);
  if (r != 0)
    return 2;
  /* Both levels came back: two releases succeed, a third does not. */
  if (mps_cond_release(cond) != 0 || mps_cond_release(cond) != 0)
    return 3;
  return mps_cond_release(cond) == -EPERM ? 0 : 4;
}

static void rlock_round(mps_rlock *rl)
{
  cond = mps_cond_new_rlock(rl);
  cr_assert_not_null(cond);
  shv = mps_value_new_sized(sizeof(struct shared), false);
  sh = mps_value_ptr(shv);
  pid_t pid = child_run(rlock_waiter, NULL);
  wait_until_blocked(pid);
  /* The waiter held the lock two levels deep: we get it only if the wait
   * released both. */
  cr_assert_eq(mps_cond_acquire(cond, 5.0), 0, "the wait released every level");
  sh->flag = 1;
  cr_assert_eq(mps_cond_notify(cond, 1), 1);
  cr_assert_eq(mps_cond_release(cond), 0);
  child_expect_exit(pid, 0);
  mps_cond_close(cond);
  mps_value_close(shv);
}

Test(cond, over_an_rlock_held_twice_wait_releases_every_level, .timeout = 30)
{
  rlock_round(NULL); /* its own recursive lock */
  mps_rlock *rl = mps_rlock_new();
  cr_assert_not_null(rl);
  rlock_round(rl); /* a borrowed RLock */
  cr_assert_eq(mps_rlock_acquire(rl, 0), 0, "and it is free again");
  cr_assert_eq(mps_rlock_release(rl), 0);
  mps_rlock_close(rl);
}
