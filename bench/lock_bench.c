/* The increment/decrement pattern (2 processes, one adds 1 and one
 * subtracts 1, N times each under a lock) timed for an mpshare Value's lock
 * and for the raw pthread mutexes a user would otherwise write, alternating
 * in the same run. Prints ns per locked operation and the ratio to the raw
 * robust process-shared mutex.
 *
 *   lock_bench [iterations] [rounds]
 */
#include <mpshare.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct raw {
  pthread_mutex_t m;
  long counter; /* on the mutex's cache line, as a hand-written struct has it */
};

enum kind { RAW_ROBUST, RAW_PLAIN, MPS_VALUE, KINDS };
static const char *names[KINDS] = {"raw robust pshared mutex", "raw plain pshared mutex",
                                   "mpshare Value + get_lock"};

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void raw_loop(struct raw *r, long n, int step)
{
  for (long i = 0; i < n; i++) {
    if (pthread_mutex_lock(&r->m) == EOWNERDEAD)
      pthread_mutex_consistent(&r->m);
    r->counter += step;
    pthread_mutex_unlock(&r->m);
  }
}

static void mps_loop(mps_value *v, long n, int step)
{
  long *counter = mps_value_ptr(v);
  mps_lock *l = mps_value_get_lock(v);
  for (long i = 0; i < n; i++) {
    if (mps_lock_acquire(l, MPS_FOREVER) < 0)
      abort();
    *counter += step;
    mps_lock_release(l);
  }
}

static struct raw *raw_new(bool robust)
{
  struct raw *r = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  if (robust)
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&r->m, &a);
  return r;
}

/* One timed run of kind k: ns per locked operation, or -1 if the counter
 * did not end at 0. */
static double run(enum kind k, long n)
{
  struct raw *r = k == MPS_VALUE ? NULL : raw_new(k == RAW_ROBUST);
  mps_value *v = k == MPS_VALUE ? mps_value_new(MPS_LONG, true) : NULL;
  double t0 = now();
  for (int c = 0; c < 2; c++) {
    if (fork() == 0) {
      if (r)
        raw_loop(r, n, c ? -1 : 1);
      else
        mps_loop(v, n, c ? -1 : 1);
      _exit(0);
    }
  }
  while (wait(NULL) > 0)
    ;
  double ns = (now() - t0) * 1e9 / (2.0 * n);
  long end = r ? r->counter : *(long *)mps_value_ptr(v);
  if (r)
    munmap(r, 4096);
  mps_value_close(v);
  return end == 0 ? ns : -1;
}

static int cmp(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  int rounds = argc > 2 ? atoi(argv[2]) : 5;
  if (n < 1 || rounds < 1 || rounds > 100)
    return 2;
  double t[KINDS][100];
  for (int i = 0; i < rounds; i++)
    for (int k = 0; k < KINDS; k++)
      if ((t[k][i] = run((enum kind)k, n)) < 0) {
        fprintf(stderr, "%s: the counter did not end at 0\n", names[k]);
        return 1;
      }
  printf("increment/decrement, 2 processes x %ld locked ops, median of %d rounds\n", n, rounds);
  printf("%-28s %12s %12s\n", "lock", "ns/op", "vs robust");
  double base = 0;
  for (int k = 0; k < KINDS; k++) {
    qsort(t[k], (size_t)rounds, sizeof(double), cmp);
    double med = t[k][rounds / 2];
    if (k == RAW_ROBUST)
      base = med;
    printf("%-28s %12.1f %11.2fx\n", names[k], med, med / base);
  }
  return 0;
}
