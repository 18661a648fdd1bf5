/* The increment/decrement pattern (2 processes, one adds 1 and one
 * subtracts 1, N times each under a lock) timed for an mpshare Value's lock
 * and for the raw pthread mutexes a user would otherwise write, alternating
 * in the same run. Prints ns per locked operation and the ratio to the raw
 * robust process-shared mutex: wall clock of the median and of the best
 * round (on a shared machine, load only ever adds time), and the CPU time
 * of both processes in the median round.
 *
 *   lock_bench [iterations] [rounds]
 *   lock_bench --one [iterations]
 *
 * --one runs each loop once in this process, uncontended: for an
 * instruction count (valgrind --tool=callgrind, where the
 * inclusive cost of raw_loop and mps_loop divided by the iterations is
 * the cost of one locked update), which is repeatable where wall clock
 * on a shared machine is not.
 */
#include <mpshare.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
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

__attribute__((noinline)) static void raw_loop(struct raw *r, long n, int step)
{
  for (long i = 0; i < n; i++) {
    if (pthread_mutex_lock(&r->m) == EOWNERDEAD)
      pthread_mutex_consistent(&r->m);
    r->counter += step;
    pthread_mutex_unlock(&r->m);
  }
}

__attribute__((noinline)) static void mps_loop(mps_value *v, long n, int step)
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

static double cpu_children(void)
{
  struct rusage ru;
  getrusage(RUSAGE_CHILDREN, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

/* One timed run of kind k: wall-clock ns per locked operation, and the
 * CPU time both processes used per operation in *cpu (less sensitive to
 * other load than wall clock); -1 if the counter did not end at 0. */
static double run(enum kind k, long n, double *cpu)
{
  struct raw *r = k == MPS_VALUE ? NULL : raw_new(k == RAW_ROBUST);
  mps_value *v = k == MPS_VALUE ? mps_value_new(MPS_LONG, true) : NULL;
  double c0 = cpu_children(), t0 = now();
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
  *cpu = (cpu_children() - c0) * 1e9 / (2.0 * n);
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

/* Each loop once, in this process: prints ns per uncontended locked op. */
static int run_one(long n)
{
  struct raw *r = raw_new(true);
  mps_value *v = mps_value_new(MPS_LONG, true);
  if (v == NULL)
    return 1;
  double t0 = now();
  raw_loop(r, n, 1);
  double t1 = now();
  mps_loop(v, n, 1);
  double t2 = now();
  printf("one process, %ld locked ops: raw robust %.1f ns/op, mpshare Value %.1f ns/op (%.2fx)\n",
         n, (t1 - t0) * 1e9 / n, (t2 - t1) * 1e9 / n, (t2 - t1) / (t1 - t0));
  int ok = r->counter == n && *(long *)mps_value_ptr(v) == n;
  munmap(r, 4096);
  mps_value_close(v);
  return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
  if (argc > 1 && strcmp(argv[1], "--one") == 0)
    return run_one(argc > 2 ? atol(argv[2]) : 1000000);
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  int rounds = argc > 2 ? atoi(argv[2]) : 5;
  if (n < 1 || rounds < 1 || rounds > 100)
    return 2;
  double t[KINDS][100], cpu[KINDS][100];
  for (int i = 0; i < rounds; i++)
    for (int k = 0; k < KINDS; k++)
      if ((t[k][i] = run((enum kind)k, n, &cpu[k][i])) < 0) {
        fprintf(stderr, "%s: the counter did not end at 0\n", names[k]);
        return 1;
      }
  printf("increment/decrement, 2 processes x %ld locked ops, %d rounds; ns per locked op\n", n,
         rounds);
  printf("%-26s %14s %14s %14s\n", "lock", "wall median", "wall best", "CPU median");
  double base[3] = {0, 0, 0};
  for (int k = 0; k < KINDS; k++) {
    qsort(t[k], (size_t)rounds, sizeof(double), cmp);
    qsort(cpu[k], (size_t)rounds, sizeof(double), cmp);
    double v[3] = {t[k][rounds / 2], t[k][0], cpu[k][rounds / 2]};
    printf("%-26s", names[k]);
    for (int j = 0; j < 3; j++) {
      if (k == RAW_ROBUST)
        base[j] = v[j];
      printf(" %6.1f (%4.2fx)", v[j], v[j] / base[j]);
    }
    printf("\n");
  }
  return 0;
}
