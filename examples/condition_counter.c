/* Waiters sleep until a shared counter reaches a target; a modifier raises
 * it step by step and wakes them all after each step.
 *
 * The condition uses the counter's own lock (mps_value_get_lock), so the
 * predicate is always read under the lock that guards the counter. Exits 0
 * if all 3 waiters saw the counter reach 5.
 */
#include <mpshare.h>

#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAITERS 3
#define TARGET  5

static long *counter;

static int reached(void *arg)
{
  (void)arg;
  return *counter >= TARGET;
}

static int waiter(mps_cond *c)
{
  if (mps_cond_acquire(c, MPS_FOREVER) != 0)
    return 1;
  int r = mps_cond_wait_for(c, reached, NULL, 30);
  long seen = *counter;
  mps_cond_release(c);
  return r == 0 && seen >= TARGET ? 0 : 2;
}

int main(void)
{
  mps_value *v = mps_value_new(MPS_LONG, true);
  mps_cond *c = v ? mps_cond_new(mps_value_get_lock(v)) : NULL;
  if (c == NULL) {
    perror("mpshare");
    return 1;
  }
  counter = mps_value_ptr(v);
  pid_t pids[WAITERS];
  for (int i = 0; i < WAITERS; i++)
    if ((pids[i] = fork()) == 0)
      _exit(waiter(c));
  for (int step = 0; step < TARGET; step++) {
    if (mps_cond_acquire(c, MPS_FOREVER) < 0)
      return 1;
    ++*counter;
    mps_cond_notify_all(c);
    mps_cond_release(c);
  }
  int ok = 0;
  for (int i = 0; i < WAITERS; i++) {
    int status;
    waitpid(pids[i], &status, 0);
    ok += WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  printf("%d waiters saw the counter reach %d\n", ok, TARGET);
  mps_cond_close(c);
  mps_value_close(v);
  return ok == WAITERS ? 0 : 1;
}
