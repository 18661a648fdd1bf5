/* A Semaphore(3) lets at most 3 of 8 processes into a section at once.
 *
 * Each worker counts itself in and out of the section and records the
 * highest count it saw. To make sure the section really fills up, the first
 * workers in stay until an Event says three were inside together. Prints
 * the highest number inside at once, and exits 0 if it is 3.
 */
#include <mpshare.h>

#include <stdatomic.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#define WORKERS 8
#define SLOTS   3

struct counts {
  atomic_int inside;
  atomic_int highest;
};

static int worker(mps_semaphore *sem, mps_event *full, struct counts *c)
{
  if (mps_semaphore_acquire(sem, 30) != 0)
    return 1;
  int now = atomic_fetch_add(&c->inside, 1) + 1;
  int high = atomic_load(&c->highest);
  while (now > high && !atomic_compare_exchange_weak(&c->highest, &high, now))
    ;
  if (now == SLOTS)
    mps_event_set(full);
  int r = mps_event_wait(full, 30); /* hold the unit until the pool was full */
  atomic_fetch_sub(&c->inside, 1);
  mps_semaphore_release(sem);
  return r == 0 ? 0 : 2;
}

int main(void)
{
  mps_semaphore *sem = mps_semaphore_new(SLOTS);
  mps_event *full = mps_event_new();
  mps_value *v = mps_value_new_sized(sizeof(struct counts), false);
  if (sem == NULL || full == NULL || v == NULL) {
    perror("mpshare");
    return 1;
  }
  struct counts *c = mps_value_ptr(v);
  pid_t pids[WORKERS];
  for (int i = 0; i < WORKERS; i++)
    if ((pids[i] = fork()) == 0)
      _exit(worker(sem, full, c));
  int failed = 0;
  for (int i = 0; i < WORKERS; i++) {
    int status;
    waitpid(pids[i], &status, 0);
    failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  int highest = atomic_load(&c->highest);
  printf("highest inside at once: %d\n", highest);
  mps_value_close(v);
  mps_event_close(full);
  mps_semaphore_close(sem);
  return failed == 0 && highest == SLOTS ? 0 : 1;
}
