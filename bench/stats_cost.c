/* One round of the counters' cost benchmark: the lock and queue loops that
 * the live counters touch, timed once each. Built twice from this file,
 * against the library with counters (stats_cost_on) and without
 * (stats_cost_off, MPS_WITHOUT_STATS), both linked the same way;
 * bench/stats_cost.sh alternates them and compares medians and bests.
 *
 *   stats_cost_on|off [lock ops] [queue messages]
 *   stats_cost_on|off --loop lock|queue N
 *
 * Prints "lock_ns <ns per locked op, 2 processes>", "lock1_ns <CPU ns per
 * acquire/release, 1 process>", "queue1_ns <CPU ns per put and get, 1
 * process>", "queue11 <msgs/s>", "queue11_ns <CPU ns of both processes
 * per message>" and "queue22 <msgs/s>". With --loop, runs
 * one loop in one process, N times, inside counted_loop(): acquire and
 * release of an uncontended Value lock, or a put and a get of one 64-byte
 * message through a 1024-slot FIFO queue. stats_cost.sh counts the
 * instructions of counted_loop under callgrind: unlike time, they do not
 * depend on what else the machine runs.
 */
#include <mpshare.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int reap_all(void)
{
  int status, bad = 0;
  while (wait(&status) > 0)
    bad |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
  return bad;
}

/* 2 processes, one adding 1 and one subtracting 1, n times each under a
 * Value's lock (as bench/lock_bench). ns per locked op, or -1. */
static double lock_round(long n)
{
  mps_value *v = mps_value_new(MPS_LONG, true);
  double t0 = now();
  for (int c = 0; c < 2; c++)
    if (fork() == 0) {
      long *x = mps_value_ptr(v);
      mps_lock *l = mps_value_get_lock(v);
      for (long i = 0; i < n; i++) {
        if (mps_lock_acquire(l, MPS_FOREVER) < 0)
          _exit(1);
        *x += c ? -1 : 1;
        if (mps_lock_release(l) < 0)
          _exit(1);
      }
      _exit(0);
    }
  int bad = reap_all();
  double ns = (now() - t0) * 1e9 / (2.0 * (double)n);
  bad |= *(long *)mps_value_ptr(v) != 0;
  mps_value_close(v);
  return bad ? -1 : ns;
}

static double cpu_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One process, n acquire/release pairs on a Value's lock that nobody else
 * wants: the shortest path the counters are on. ns of this thread's CPU
 * time per pair, which other load on the machine barely disturbs. */
static double lock_alone(long n)
{
  mps_value *v = mps_value_new(MPS_LONG, true);
  long *x = mps_value_ptr(v);
  mps_lock *l = mps_value_get_lock(v);
  double t0 = cpu_now();
  for (long i = 0; i < n; i++) {
    if (mps_lock_acquire(l, MPS_FOREVER) < 0)
      return -1;
    ++*x;
    if (mps_lock_release(l) < 0)
      return -1;
  }
  double ns = (cpu_now() - t0) * 1e9 / (double)n;
  mps_value_close(v);
  return ns;
}

/* One process, n puts each followed by a get of one 64-byte message
 * through a 1024-slot FIFO queue: the queue's calls without another
 * process's cache misses, in this thread's CPU ns per pair (as
 * lock_alone). */
static double queue_alone(long n)
{
  mps_queue_opts o = {.maxsize = 1024, .max_msg = 64};
  mps_queue *q = mps_queue_new(&o);
  char msg[64] = {0};
  if (q == NULL)
    return -1;
  double t0 = cpu_now();
  for (long i = 0; i < n; i++)
    if (mps_queue_put(q, msg, sizeof(msg), MPS_FOREVER) < 0 ||
        mps_queue_get(q, msg, sizeof(msg), MPS_FOREVER) < 0)
      return -1;
  double ns = (cpu_now() - t0) * 1e9 / (double)n;
  mps_queue_close(q);
  return ns;
}

/* CPU seconds used by the reaped children so far. */
static double children_cpu(void)
{
  struct rusage ru;
  getrusage(RUSAGE_CHILDREN, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
         ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e-6;
}

static double queue_cpu_ns; /* of the last queue_round: CPU ns per message */

/* np producers -> np consumers, n 64-byte messages through a 1024-slot
 * queue. msgs/s, or -1; the CPU time it took in queue_cpu_ns. */
static double queue_round(int np, long n)
{
  double cpu0 = children_cpu();
  mps_queue_opts o = {.maxsize = 1024, .max_msg = 64};
  mps_queue *q = mps_queue_new(&o);
  long each = n / np;
  double t0 = now();
  for (int c = 0; c < 2 * np; c++)
    if (fork() == 0) {
      char msg[64] = {0};
      for (long i = 0; i < each; i++) {
        if (c < np ? mps_queue_put(q, msg, sizeof(msg), MPS_FOREVER) < 0
                   : mps_queue_get(q, msg, sizeof(msg), MPS_FOREVER) < 0)
          _exit(1);
      }
      _exit(0);
    }
  int bad = reap_all();
  double rate = (double)(each * np) / (now() - t0);
  queue_cpu_ns = (children_cpu() - cpu0) * 1e9 / (double)(each * np);
  mps_queue_close(q);
  return bad ? -1 : rate;
}

/* The --loop body: n iterations of one loop (see the top). 0, or 1 if a
 * call failed. Not inlined: callgrind counts this function's calls only. */
static __attribute__((noinline)) int counted_loop(bool queue, mps_lock *l, long *x, mps_queue *q,
                                                  long n)
{
  char msg[64] = {0};
  int bad = 0;
  for (long i = 0; i < n; i++) {
    if (queue) {
      bad |= mps_queue_put(q, msg, sizeof(msg), MPS_FOREVER) < 0;
      bad |= mps_queue_get(q, msg, sizeof(msg), MPS_FOREVER) != (ssize_t)sizeof(msg);
    } else {
      bad |= mps_lock_acquire(l, MPS_FOREVER) < 0;
      ++*x;
      bad |= mps_lock_release(l) < 0;
    }
  }
  return bad;
}

/* --loop lock|queue N: the objects are made (and a first call made on
 * each, which takes the queue's token) outside counted_loop. */
static int run_loop(const char *what, long n)
{
  bool queue = strcmp(what, "queue") == 0;
  if (n < 1 || (!queue && strcmp(what, "lock") != 0))
    return 2;
  mps_queue_opts o = {.maxsize = 1024, .max_msg = 64};
  mps_queue *q = queue ? mps_queue_new(&o) : NULL;
  mps_value *v = queue ? NULL : mps_value_new(MPS_LONG, true);
  if (q == NULL && v == NULL)
    return 1;
  mps_lock *l = queue ? NULL : mps_value_get_lock(v);
  long *x = queue ? NULL : mps_value_ptr(v);
  char msg[64] = {0};
  int bad = queue ? mps_queue_put(q, msg, sizeof(msg), MPS_FOREVER) < 0 ||
                        mps_queue_get(q, msg, sizeof(msg), MPS_FOREVER) < 0
                  : mps_lock_acquire(l, MPS_FOREVER) < 0 || mps_lock_release(l) < 0;
  bad = bad || counted_loop(queue, l, x, q, n);
  if (queue)
    mps_queue_close(q);
  else
    mps_value_close(v);
  return bad;
}

int main(int argc, char **argv)
{
  if (argc == 4 && strcmp(argv[1], "--loop") == 0)
    return run_loop(argv[2], atol(argv[3]));
  long ops = argc > 1 ? atol(argv[1]) : 1000000;
  long msgs = argc > 2 ? atol(argv[2]) : 1000000;
  if (ops < 1 || msgs < 2)
    return 2;
  printf("lock_ns %.2f\n", lock_round(ops));
  printf("lock1_ns %.2f\n", lock_alone(ops));
  printf("queue1_ns %.2f\n", queue_alone(msgs));
  printf("queue11 %.0f\n", queue_round(1, msgs));
  printf("queue11_ns %.1f\n", queue_cpu_ns);
  printf("queue22 %.0f\n", queue_round(2, msgs));
  return 0;
}
