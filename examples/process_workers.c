/* Processes like Python's multiprocessing.Process: four workers each sum a
 * slice of 1..N into a shared array and return their index as exit code; a
 * daemon "watchdog" runs alongside and is killed automatically when this
 * program exits, without being joined.
 *
 *   process_workers
 */
#include <mpshare.h>

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#define WORKERS 4
#define N       1000000L

static long *sums;

static int worker(void *arg)
{
  long i = (long)(intptr_t)arg;
  long sum = 0;
  for (long k = i * (N / WORKERS) + 1; k <= (i + 1) * (N / WORKERS); k++)
    sum += k;
  sums[i] = sum; /* each worker writes only its own slot: no lock needed */
  return (int)i;
}

static int watchdog(void *arg)
{
  (void)arg;
  pause(); /* a daemon: it ends when its parent does */
  return 0;
}

int main(void)
{
  mps_array *a = mps_array_new(MPS_LONG, WORKERS, false);
  if (a == NULL) {
    perror("mps_array_new");
    return 1;
  }
  sums = mps_array_data(a);

  mps_process *dog =
      mps_process_new(watchdog, NULL, &(mps_process_opts){.name = "watchdog", .daemon = true});
  if (dog == NULL || mps_process_start(dog) != 0)
    return 1;

  mps_process *p[WORKERS];
  for (long i = 0; i < WORKERS; i++) {
    p[i] = mps_process_new(worker, (void *)(intptr_t)i, NULL);
    if (p[i] == NULL || mps_process_start(p[i]) != 0)
      return 1;
  }
  int failures = 0;
  long total = 0;
  for (int i = 0; i < WORKERS; i++) {
    int code = -1;
    if (mps_process_join(p[i], MPS_FOREVER) < 0 || mps_process_exitcode(p[i], &code) < 0)
      code = -1;
    printf("%s (pid %d) exited with %d\n", mps_process_name(p[i]), (int)mps_process_pid(p[i]),
           code);
    failures += code != i;
    total += sums[i];
    mps_process_free(p[i]);
  }
  printf("sum of 1..%ld = %ld (expected %ld)\n", N, total, N * (N + 1) / 2);
  printf("%s (pid %d) alive: %s\n", mps_process_name(dog), (int)mps_process_pid(dog),
         mps_process_is_alive(dog) ? "yes" : "no");
  mps_array_close(a);
  /* The daemon is still running: drop its handle without waiting;
   * returning from main kills it. */
  mps_process_detach(dog);
  return failures == 0 && total == N * (N + 1) / 2 ? 0 : 1;
}
