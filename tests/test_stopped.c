/* Timeouts are honoured whoever else is stopped: a process stopped by
 * SIGSTOP while it holds an object's internal mutex (in the middle of a
 * queue copy, or holding an event's, semaphore's, barrier's or condition's
 * lock) delays calls with a timeout until that timeout and no longer; so
 * does an owner word forged to name a live unrelated process. And a call
 * re-entered from a signal handler while the same thread is inside a call
 * on the same queue gets -EDEADLK and leaves the outer call's lock alone.
 *
 * White-box where it must be: the tests reach an object's mutex through
 * its handle (which starts with its mps__seg) and the private layout that
 * events, semaphores, barriers and conditions share with a Lock, their
 * mutex first after the segment header. The queue is stopped for real
 * inside mps_queue_put, by a fault in the caller's buffer: LIFO and
 * priority queues copy under their mutex; the FIFO core copies outside
 * any lock, and there every call is only checked to keep its timeout. */
#define _GNU_SOURCE
#include "helpers.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>

#include "internal.h"

/* Generous for a loaded 2-CPU machine, far below "until resumed". */
#define SLACK 0.25

#define EXPECT_WITHIN(call, want, least, most)                                                     \
  do {                                                                                             \
    double t0_ = test_now();                                                                       \
    long r_ = (long)(call);                                                                        \
    double dt_ = test_now() - t0_;                                                                 \
    cr_expect_eq(r_, (long)(want), "%s = %ld (%s), expected %ld", #call, r_,                       \
                 mps_strerror((int)r_), (long)(want));                                             \
    cr_expect(dt_ >= (least) && dt_ < (most), "%s took %.4f s", #call, dt_);                       \
  } while (0)

/* Only bounded: the call returns within `most` seconds, whatever it says. */
#define EXPECT_TIMELY(call, most)                                                                  \
  do {                                                                                             \
    double t0_ = test_now();                                                                       \
    long r_ = (long)(call);                                                                        \
    double dt_ = test_now() - t0_;                                                                 \
    cr_expect(r_ >= 0 || r_ == -EAGAIN || r_ == -ETIMEDOUT, "%s = %ld", #call, r_);                \
    cr_expect(dt_ < (most), "%s took %.4f s", #call, dt_);                                         \
  } while (0)

/* The mutex right after the segment header (events, semaphores, barriers,
 * conditions with their own lock: the same place as a Lock's). */
static pthread_mutex_t *first_mutex(void *handle)
{
  struct mps__hdr *h = ((mps__seg *)handle)->hdr;
  return &((struct mps__lock_shm *)h)->mu.m;
}

static int hold_and_stop(void *mu)
{
  if (pthread_mutex_lock(mu) != 0)
    return 1;
  raise(SIGSTOP);
  return pthread_mutex_unlock(mu) == 0 ? 0 : 2;
}

/* A child that holds mu and is stopped, for real, when this returns. */
static pid_t stopped_holder(pthread_mutex_t *mu)
{
  pid_t pid = child_run(hold_and_stop, mu);
  child_wait_stopped(pid);
  return pid;
}

static void resume(pid_t pid)
{
  cr_assert_eq(kill(pid, SIGCONT), 0);
  child_expect_exit(pid, 0);
}

Test(stopped, semaphore_acquire_keeps_its_timeout, .timeout = 20)
{
  mps_semaphore *s = mps_semaphore_new(1);
  cr_assert_not_null(s);
  pid_t pid = stopped_holder(first_mutex(s));
  EXPECT_WITHIN(mps_semaphore_acquire(s, 0), -EAGAIN, 0, 0.02);
  EXPECT_WITHIN(mps_semaphore_acquire(s, 0.1), -ETIMEDOUT, 0.1, 0.1 + SLACK);
  resume(pid);
  cr_expect_eq(mps_semaphore_value(s), 1, "a timed-out acquire took nothing");
  cr_expect_eq(mps_semaphore_acquire(s, 0), 0);
  mps_semaphore_close(s);
}

Test(stopped, event_wait_keeps_its_timeout, .timeout = 20)
{
  mps_event *e = mps_event_new();
  cr_assert_not_null(e);
  pid_t pid = stopped_holder(first_mutex(e));
  EXPECT_WITHIN(mps_event_wait(e, 0), -EAGAIN, 0, 0.02);
  EXPECT_WITHIN(mps_event_wait(e, 0.1), -ETIMEDOUT, 0.1, 0.1 + SLACK);
  resume(pid);
  cr_assert_eq(mps_event_set(e), 0);
  pid = stopped_holder(first_mutex(e));
  /* A set event needs no lock to be seen. */
  EXPECT_WITHIN(mps_event_wait(e, 0.1), 0, 0, 0.02);
  resume(pid);
  mps_event_close(e);
}

Test(stopped, barrier_wait_keeps_its_timeout, .timeout = 20)
{
  mps_barrier *b = mps_barrier_new(2);
  cr_assert_not_null(b);
  pid_t pid = stopped_holder(first_mutex(b));
  EXPECT_WITHIN(mps_barrier_wait(b, 0.1), -ETIMEDOUT, 0.1, 0.1 + SLACK);
  resume(pid);
  /* It never got in: it did not arrive, and broke nothing. */
  cr_expect_eq(mps_barrier_n_waiting(b), 0);
  cr_expect(!mps_barrier_broken(b));
  mps_barrier_close(b);
}

static mps_barrier *shared_barrier;

static int barrier_waiter(void *arg)
{
  (void)arg;
  double t0 = test_now();
  int r = mps_barrier_wait(shared_barrier, 0.3);
  double dt = test_now() - t0;
  return r == -ETIMEDOUT && dt < 0.3 + SLACK ? 0 : 1;
}

/* A waiter already asleep whose deadline passes while a stopped process
 * holds the mutex: it returns in time, without the mutex, and breaks the
 * round it was in. */
Test(stopped, barrier_waiter_times_out_without_the_mutex, .timeout = 20)
{
  shared_barrier = mps_barrier_new(3);
  cr_assert_not_null(shared_barrier);
  pid_t waiter = child_run(barrier_waiter, NULL);
  wait_until_blocked(waiter);
  pid_t pid = stopped_holder(first_mutex(shared_barrier));
  child_expect_exit(waiter, 0);
  cr_expect(mps_barrier_broken(shared_barrier));
  resume(pid);
  cr_expect_eq(mps_barrier_wait(shared_barrier, 0), -EPIPE);
  mps_barrier_close(shared_barrier);
}

static int cond_hold_and_stop(void *c)
{
  if (mps_cond_acquire(c, MPS_FOREVER) != 0)
    return 1;
  raise(SIGSTOP);
  return mps_cond_release(c) == 0 ? 0 : 2;
}

Test(stopped, cond_acquire_keeps_its_timeout, .timeout = 20)
{
  mps_cond *c = mps_cond_new(NULL);
  cr_assert_not_null(c);
  pid_t pid = child_run(cond_hold_and_stop, c);
  child_wait_stopped(pid);
  EXPECT_WITHIN(mps_cond_acquire(c, 0), -EAGAIN, 0, 0.02);
  EXPECT_WITHIN(mps_cond_acquire(c, 0.1), -ETIMEDOUT, 0.1, 0.1 + SLACK);
  resume(pid);
  cr_expect_eq(mps_cond_acquire(c, 0), 0);
  cr_expect_eq(mps_cond_release(c), 0);
  mps_cond_close(c);
}

/* ---- a queue stopped inside mps_queue_put ------------------------------ */

#define BIG 3000
static unsigned char *fault_page; /* PROT_NONE until the handler runs */
static mps_queue *fq;
static long reentered = 1;
static enum { STOP, REENTER_PUT, REENTER_GET } on_fault;

/* Runs inside the library's memcpy, with the queue's mutex held. */
static void on_segv(int sig)
{
  (void)sig;
  if (on_fault == STOP) {
    raise(SIGSTOP);
  } else if (on_fault == REENTER_PUT) {
    reentered = mps_queue_put(fq, "x", 1, 0);
  } else {
    char c;
    reentered = mps_queue_get(fq, &c, 1, 0);
  }
  mprotect(fault_page, 4096, PROT_READ | PROT_WRITE);
}

/* A message that starts on a readable page and runs onto fault_page. */
static unsigned char *faulting_message(void)
{
  unsigned char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  cr_assert_neq(p, MAP_FAILED);
  for (int i = 0; i < 8192; i++)
    p[i] = (unsigned char)(i * 7);
  fault_page = p + 4096;
  cr_assert_eq(mprotect(fault_page, 4096, PROT_NONE), 0);
  struct sigaction sa = {.sa_handler = on_segv};
  sigemptyset(&sa.sa_mask);
  cr_assert_eq(sigaction(SIGSEGV, &sa, NULL), 0);
  return p + 4096 - 100;
}

static int put_and_stop(void *arg)
{
  (void)arg;
  on_fault = STOP;
  unsigned char *msg = faulting_message();
  return mps_queue_put(fq, msg, BIG, MPS_FOREVER) == 0 ? 0 : 1;
}

static pid_t stopped_put(mps_order order)
{
  mps_queue_opts o = {.maxsize = 4, .max_msg = 4096, .order = order};
  fq = mps_queue_new(&o);
  cr_assert_not_null(fq);
  pid_t pid = child_run(put_and_stop, NULL);
  child_wait_stopped(pid);
  return pid;
}

static void expect_big_message(void)
{
  unsigned char buf[4096];
  ssize_t n;
  do /* a FIFO may hand out a later "y" first */
    n = mps_queue_get(fq, buf, sizeof(buf), 1.0);
  while (n == 1);
  cr_assert_eq(n, BIG, "the stopped put completed: %zd", n);
  for (int i = 0; i < BIG; i++)
    cr_assert_eq(buf[i], (unsigned char)((4096 - 100 + i) * 7));
}

/* LIFO and priority queues copy under the queue's mutex. */
static void stopped_inside_put(mps_order order)
{
  pid_t pid = stopped_put(order);
  unsigned char buf[4096];
  EXPECT_WITHIN(mps_queue_put(fq, "y", 1, 0), -EAGAIN, 0, 0.02);
  EXPECT_WITHIN(mps_queue_put(fq, "y", 1, 0.1), -ETIMEDOUT, 0.1, 0.1 + SLACK);
  EXPECT_WITHIN(mps_queue_get(fq, buf, sizeof(buf), 0), -EAGAIN, 0, 0.02);
  EXPECT_WITHIN(mps_queue_get(fq, buf, sizeof(buf), 0.1), -ETIMEDOUT, 0.1, 0.1 + SLACK);
  EXPECT_WITHIN(mps_queue_join(fq, 0.1), -ETIMEDOUT, 0.1, 0.1 + SLACK);
  resume(pid);
  expect_big_message();
  cr_expect(mps_queue_empty(fq));
  mps_queue_close(fq);
}

/* The FIFO core copies outside any lock: a stopped put holds one slot,
 * and every other call still keeps its timeout, whatever it returns. */
Test(stopped, fifo_calls_keep_their_timeouts, .timeout = 20)
{
  pid_t pid = stopped_put(MPS_FIFO);
  unsigned char buf[4096];
  EXPECT_TIMELY(mps_queue_put(fq, "y", 1, 0), 0.02);
  EXPECT_TIMELY(mps_queue_put(fq, "y", 1, 0.1), 0.1 + SLACK);
  EXPECT_TIMELY(mps_queue_get(fq, buf, sizeof(buf), 0), 0.02);
  EXPECT_TIMELY(mps_queue_get(fq, buf, sizeof(buf), 0.1), 0.1 + SLACK);
  EXPECT_TIMELY(mps_queue_join(fq, 0.1), 0.1 + SLACK);
  resume(pid);
  expect_big_message();
  mps_queue_close(fq);
}

Test(stopped, lifo_calls_keep_their_timeouts, .timeout = 20) { stopped_inside_put(MPS_LIFO); }

Test(stopped, priority_calls_keep_their_timeouts, .timeout = 20)
{
  stopped_inside_put(MPS_PRIORITY);
}

/* ---- a forged owner word naming a live, unrelated process ---------------- */

static int sleeper(void *arg)
{
  (void)arg;
  pause();
  return 0;
}

Test(stopped, forged_live_owner_costs_only_the_timeout, .timeout = 20)
{
  mps_semaphore *s = mps_semaphore_new(1);
  cr_assert_not_null(s);
  pid_t other = child_run(sleeper, NULL);
  pthread_mutex_t *mu = first_mutex(s);
  __atomic_store_n(&mu->__data.__lock, other, __ATOMIC_SEQ_CST);
  EXPECT_WITHIN(mps_semaphore_acquire(s, 0), -EAGAIN, 0, 0.02);
  EXPECT_WITHIN(mps_semaphore_acquire(s, 0.1), -ETIMEDOUT, 0.1, 0.1 + SLACK);
  __atomic_store_n(&mu->__data.__lock, 0, __ATOMIC_SEQ_CST);
  cr_expect_eq(mps_semaphore_acquire(s, 0), 0);
  kill(other, SIGKILL);
  child_expect_signal(other, SIGKILL);
  mps_semaphore_close(s);
}

/* ---- re-entry from a signal handler ---------------------------------------- */

Test(stopped, put_reentered_from_a_handler_gets_edeadlk, .timeout = 20)
{
  mps_queue_opts o = {.maxsize = 4, .max_msg = 4096, .order = MPS_LIFO};
  fq = mps_queue_new(&o);
  cr_assert_not_null(fq);
  on_fault = REENTER_PUT;
  unsigned char *msg = faulting_message();
  cr_assert_eq(mps_queue_put(fq, msg, BIG, 1.0), 0);
  cr_expect_eq(reentered, -EDEADLK);
  cr_expect_eq(mps_queue_qsize(fq), 1, "only the outer put went in");
  unsigned char buf[4096];
  cr_expect_eq(mps_queue_get(fq, buf, sizeof(buf), 0), BIG);
  cr_expect_eq(mps_queue_put(fq, "z", 1, 0), 0, "the lock was left in order");
  mps_queue_close(fq);
}

Test(stopped, get_reentered_from_a_handler_gets_edeadlk, .timeout = 20)
{
  mps_queue_opts o = {.maxsize = 4, .max_msg = 4096, .order = MPS_PRIORITY};
  fq = mps_queue_new(&o);
  cr_assert_not_null(fq);
  unsigned char msg[BIG];
  memset(msg, 'm', sizeof(msg));
  cr_assert_eq(mps_queue_put(fq, msg, sizeof(msg), 0), 0);
  cr_assert_eq(mps_queue_put(fq, "x", 1, 0), 0);
  on_fault = REENTER_GET;
  unsigned char *buf = faulting_message();
  cr_assert_eq(mps_queue_get(fq, buf, BIG, 1.0), BIG);
  cr_expect_eq(reentered, -EDEADLK);
  cr_expect_eq(mps_queue_qsize(fq), 1, "the inner get took nothing");
  char c;
  cr_expect_eq(mps_queue_get(fq, &c, 1, 0), 1);
  mps_queue_close(fq);
}
