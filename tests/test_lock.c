/* Lock and RLock: mutual exclusion across processes, timeouts, owner death
 * (including a waiter already blocked when the owner dies), bad input. */
#include <stdatomic.h>

#include "helpers.h"

#define PROCS 4
#define ITERS 20000

static mps_lock *lock;
static long *counter;

static int add_many(void *arg)
{
  (void)arg;
  for (int i = 0; i < ITERS; i++) {
    if (mps_lock_acquire(lock, MPS_FOREVER) != 0)
      return 1;
    long v = *counter; /* a deliberately non-atomic read-modify-write */
    *counter = v + 1;
    if (mps_lock_release(lock) != 0)
      return 2;
  }
  return 0;
}

Test(lock, n_processes_times_m_increments_are_exact, .timeout = 60)
{
  lock = mps_lock_new();
  mps_value *v = mps_value_new(MPS_LONG, false);
  cr_assert_not_null(lock);
  cr_assert_not_null(v);
  counter = mps_value_ptr(v);
  pid_t pids[PROCS];
  for (int i = 0; i < PROCS; i++)
    pids[i] = child_run(add_many, NULL);
  for (int i = 0; i < PROCS; i++)
    child_expect_exit(pids[i], 0);
  cr_assert_eq(*counter, (long)PROCS * ITERS);
  mps_value_close(v);
  cr_assert_eq(mps_lock_close(lock), 0);
}

static int hold_and_die(void *arg)
{
  int how = *(int *)arg;
  if (mps_lock_acquire(lock, MPS_FOREVER) != 0)
    return 1;
  if (how == SIGKILL)
    raise(SIGKILL);
  _exit(how); /* exits holding the lock */
}

static void owner_dies(int how)
{
  lock = mps_lock_new();
  cr_assert_not_null(lock);
  pid_t pid = child_run(hold_and_die, &how);
  if (how == SIGKILL)
    child_expect_signal(pid, SIGKILL);
  else
    child_expect_exit(pid, how);
  cr_assert_eq(mps_lock_acquire(lock, 5.0), MPS_OWNER_DIED);
  cr_assert_eq(mps_lock_release(lock), 0);
  /* Consistent again: the next acquire is a plain one. */
  cr_assert_eq(mps_lock_acquire(lock, 0), 0);
  cr_assert_eq(mps_lock_release(lock), 0);
  mps_lock_close(lock);
}

Test(lock, owner_killed_gives_owner_died, .timeout = 20) { owner_dies(SIGKILL); }
Test(lock, owner_exited_gives_owner_died, .timeout = 20) { owner_dies(7); }

static int pipe_fds[2];

static int acquire_blocked(void *arg)
{
  (void)arg;
  char c = 'w';
  if (write(pipe_fds[1], &c, 1) != 1)
    return 3;
  int r = mps_lock_acquire(lock, 20.0);
  if (r != MPS_OWNER_DIED)
    return 1;
  return mps_lock_release(lock) == 0 ? 0 : 2;
}

Test(lock, waiter_blocked_when_owner_dies_gets_owner_died, .timeout = 30)
{
  lock = mps_lock_new();
  cr_assert_not_null(lock);
  cr_assert_eq(pipe(pipe_fds), 0);
  int how = SIGKILL;
  /* The parent holds nothing; child A holds the lock until killed, child B
   * is blocked in acquire at that moment. */
  pid_t holder = fork();
  cr_assert(holder >= 0);
  if (holder == 0) {
    if (mps_lock_acquire(lock, MPS_FOREVER) != 0)
      _exit(1);
    char c = 'h';
    if (write(pipe_fds[1], &c, 1) != 1)
      _exit(2);
    pause();
    _exit(0);
  }
  char c;
  cr_assert_eq(read(pipe_fds[0], &c, 1), 1); /* holder has it */
  pid_t waiter = child_run(acquire_blocked, &how);
  cr_assert_eq(read(pipe_fds[0], &c, 1), 1); /* waiter is about to block */
  wait_until_blocked(waiter);                /* ... and now it is asleep */
  kill(holder, SIGKILL);
  child_expect_signal(holder, SIGKILL);
  child_expect_exit(waiter, 0);
  cr_assert_eq(mps_lock_acquire(lock, 0), 0);
  mps_lock_release(lock);
  mps_lock_close(lock);
}

static int hold_until_told(void *arg)
{
  int *fds = arg;
  if (mps_lock_acquire(lock, MPS_FOREVER) != 0)
    return 1;
  char c = 'h';
  if (write(fds[1], &c, 1) != 1)
    return 2;
  if (read(fds[2], &c, 1) != 1) /* wait for the parent's go */
    return 3;
  return mps_lock_release(lock) == 0 ? 0 : 4;
}

Test(lock, timeouts, .timeout = 20)
{
  lock = mps_lock_new();
  int a[2], b[2];
  cr_assert_eq(pipe(a), 0);
  cr_assert_eq(pipe(b), 0);
  int fds[3] = {a[0], a[1], b[0]};
  pid_t pid = child_run(hold_until_told, fds);
  char c;
  cr_assert_eq(read(a[0], &c, 1), 1);
  cr_assert_eq(mps_lock_acquire(lock, 0), -EAGAIN);
  double t0 = test_now();
  cr_assert_eq(mps_lock_acquire(lock, 0.05), -ETIMEDOUT);
  cr_assert_geq(test_now() - t0, 0.05);
  cr_assert_eq(write(b[1], "g", 1), 1);
  child_expect_exit(pid, 0);
  cr_assert_eq(mps_lock_acquire(lock, 0.05), 0);
  mps_lock_release(lock);
  mps_lock_close(lock);
}

static int release_foreign(void *arg)
{
  (void)arg;
  return mps_lock_release(lock) == -EPERM ? 0 : 1;
}

Test(lock, release_by_non_owner_is_eperm, .timeout = 20)
{
  lock = mps_lock_new();
  cr_assert_eq(mps_lock_release(lock), -EPERM); /* nobody holds it */
  cr_assert_eq(mps_lock_acquire(lock, MPS_FOREVER), 0);
  child_expect_exit(child_run(release_foreign, NULL), 0);
  cr_assert_eq(mps_lock_acquire(lock, MPS_FOREVER), -EDEADLK);
  cr_assert_eq(mps_lock_release(lock), 0);
  mps_lock_close(lock);
}

Test(lock, bad_arguments, .timeout = 10)
{
  cr_assert_eq(mps_lock_acquire(NULL, 0), -EINVAL);
  cr_assert_eq(mps_lock_release(NULL), -EINVAL);
  cr_assert_eq(mps_lock_close(NULL), 0);
  lock = mps_lock_new();
  cr_assert_eq(mps_lock_acquire(lock, 0.0 / 0.0), -EINVAL);
  mps_lock_close(lock);
  cr_assert_eq(mps_rlock_acquire(NULL, 1), -EINVAL);
  cr_assert_eq(mps_rlock_release(NULL), -EINVAL);
  errno = 0;
  cr_assert_null(mps_lock_create(NULL));
  cr_assert_eq(errno, EINVAL);
  cr_assert_null(mps_lock_open("a/b"));
  cr_assert_eq(errno, EINVAL);
}

Test(lock, with_lock_releases_on_break_and_return, .timeout = 10)
{
  lock = mps_lock_new();
  int ran = 0;
  for (int i = 0; i < 3; i++) {
    int rc = -1;
    MPS_WITH_LOCK(lock, rc)
    {
      ran++;
      cr_assert_eq(rc, 0);
      cr_assert_eq(mps_lock_acquire(lock, 0), -EDEADLK);
      if (i == 1)
        break;
    }
    cr_assert_eq(rc, 0);
    cr_assert_eq(mps_lock_acquire(lock, 0), 0, "released after the block");
    cr_assert_eq(mps_lock_release(lock), 0);
  }
  cr_assert_eq(ran, 3);
  mps_lock_close(lock);
}

Test(lock, with_lock_reports_a_failed_acquire_and_skips_the_block, .timeout = 10)
{
  int rc = 1, ran = 0;
  MPS_WITH_LOCK(NULL, rc) ran++;
  cr_assert_eq(rc, -EINVAL, "a raw value's NULL lock is reported");
  lock = mps_lock_new();
  cr_assert_eq(mps_lock_acquire(lock, 0), 0);
  MPS_WITH_LOCK(lock, rc) ran++;
  cr_assert_eq(rc, -EDEADLK, "a lock this thread holds is reported");
  cr_assert_eq(ran, 0);
  cr_assert_eq(mps_lock_release(lock), 0, "the failed block did not release our lock");
  cr_assert_eq(mps_lock_release(lock), -EPERM);
  mps_lock_close(lock);
}

static int die_holding(void *arg) { return mps_lock_acquire(arg, MPS_FOREVER) == 0 ? 0 : 1; }

Test(lock, with_lock_shows_owner_died_to_the_block, .timeout = 10)
{
  lock = mps_lock_new();
  child_expect_exit(child_run(die_holding, lock), 0);
  int rc = -1, seen = -1;
  MPS_WITH_LOCK(lock, rc) seen = rc;
  cr_assert_eq(rc, MPS_OWNER_DIED);
  cr_assert_eq(seen, MPS_OWNER_DIED, "the block sees that the data may be half-updated");
  cr_assert_eq(mps_lock_acquire(lock, 0), 0, "released after the block");
  cr_assert_eq(mps_lock_release(lock), 0);
  mps_lock_close(lock);
}

Test(lock, named_lock_shared_by_name, .timeout = 20)
{
  char name[64];
  test_name(name, "lock");
  mps_lock *a = mps_lock_create(name);
  cr_assert_not_null(a, "%s", strerror(errno));
  cr_assert_null(mps_lock_create(name));
  cr_assert_eq(errno, EEXIST);
  mps_lock *b = mps_lock_open(name);
  cr_assert_not_null(b);
  cr_assert_eq(mps_lock_acquire(a, 0), 0);
  cr_assert_eq(mps_lock_acquire(b, 0), -EDEADLK, "the same lock through two mappings");
  cr_assert_eq(mps_lock_release(b), 0, "owner is the thread, not the handle");
  cr_assert_null(mps_rlock_open(name));
  cr_assert_eq(errno, EPROTO, "a Lock is not an RLock");
  mps_lock_close(a);
  mps_lock_close(b);
  cr_assert_eq(mps_unlink(name), 0);
  cr_assert_eq(mps_unlink(name), -ENOENT);
  cr_assert_null(mps_lock_open(name));
  cr_assert_eq(errno, ENOENT);
  assert_no_segments_left();
}

static mps_rlock *rlock;

static int rlock_try(void *arg)
{
  (void)arg;
  if (mps_rlock_acquire(rlock, 0) != -EAGAIN)
    return 1;
  return mps_rlock_release(rlock) == -EPERM ? 0 : 2;
}

Test(rlock, recursion_and_ownership, .timeout = 20)
{
  rlock = mps_rlock_new();
  cr_assert_not_null(rlock);
  for (int i = 0; i < 5; i++)
    cr_assert_eq(mps_rlock_acquire(rlock, 0), 0);
  child_expect_exit(child_run(rlock_try, NULL), 0);
  for (int i = 0; i < 5; i++)
    cr_assert_eq(mps_rlock_release(rlock), 0);
  cr_assert_eq(mps_rlock_release(rlock), -EPERM);
  mps_rlock_close(rlock);
}

static int rlock_die_nested(void *arg)
{
  (void)arg;
  if (mps_rlock_acquire(rlock, MPS_FOREVER) != 0 || mps_rlock_acquire(rlock, MPS_FOREVER) != 0)
    return 1;
  raise(SIGKILL);
  return 0;
}

Test(rlock, owner_killed_with_nested_holds, .timeout = 20)
{
  rlock = mps_rlock_new();
  child_expect_signal(child_run(rlock_die_nested, NULL), SIGKILL);
  cr_assert_eq(mps_rlock_acquire(rlock, 5), MPS_OWNER_DIED);
  cr_assert_eq(mps_rlock_release(rlock), 0, "one release undoes the recovered hold");
  cr_assert_eq(mps_rlock_release(rlock), -EPERM);
  mps_rlock_close(rlock);
}

/* ---- random kills: after every SIGKILL the survivors keep going -------- */

#define HAMMERS 4
#define KILLS   1000

static _Atomic long *progress;

static int hammer(void *arg)
{
  (void)arg;
  for (;;) {
    int r = mps_lock_acquire(lock, MPS_FOREVER);
    if (r < 0)
      return 1;
    (*progress)++;
    mps_lock_release(lock);
  }
}

/* Polls until the survivors made `need` more acquisitions; a lock that
 * strands its waiters fails here instead of hanging the suite. Progress is
 * counted one acquisition at a time: only 30 s without a single one fails,
 * so a loaded machine that is merely slow does not (need acquisitions in
 * 10 s once failed at load 21). */
static void expect_progress(long need)
{
  long from = atomic_load(progress), seen = from;
  double since = test_now();
  struct timespec pause = {0, 100 * 1000};
  while (seen < from + need) {
    nanosleep(&pause, NULL);
    long now = atomic_load(progress);
    if (now != seen) {
      seen = now;
      since = test_now();
    }
    cr_assert(test_now() - since < 30.0, "no acquisition in 30 s: a waiter is stranded");
  }
}

Test(lock, random_kills_never_strand_a_waiter, .timeout = 120)
{
  lock = mps_lock_new();
  mps_value *v = mps_value_new(MPS_LONG, false);
  progress = mps_value_ptr(v);
  pid_t pids[HAMMERS];
  for (int i = 0; i < HAMMERS; i++)
    pids[i] = child_run(hammer, NULL);
  srand(77);
  for (int k = 0; k < KILLS; k++) {
    expect_progress(50);
    int i = rand() % HAMMERS;
    struct timespec at = {0, (rand() % 200) * 1000};
    nanosleep(&at, NULL);   /* a random moment, not an ordering */
    kill(pids[i], SIGKILL); /* holding the lock, waiting, or just woken */
    child_expect_signal(pids[i], SIGKILL);
    pids[i] = child_run(hammer, NULL);
  }
  expect_progress(50);
  for (int i = 0; i < HAMMERS; i++) {
    kill(pids[i], SIGKILL);
    child_expect_signal(pids[i], SIGKILL);
  }
  mps_value_close(v);
  mps_lock_close(lock);
}
