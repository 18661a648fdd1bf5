/* Workers block on an Event until the parent sets it: a starting gun.
 *
 * The parent writes the start time into a shared value before it sets the
 * event; each worker checks, once released, that the value is there, so a
 * worker that ran early would be caught. Exits 0 if all 4 started after
 * the event was set.
 */
#include <mpshare.h>

#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#define WORKERS 4

static int worker(mps_event *go, mps_value *stamp)
{
  if (mps_event_wait(go, 30) != 0)
    return 1;
  return *(long *)mps_value_ptr(stamp) == 42 ? 0 : 2;
}

int main(void)
{
  mps_event *go = mps_event_new();
  mps_value *stamp = mps_value_new(MPS_LONG, false);
  if (go == NULL || stamp == NULL) {
    perror("mpshare");
    return 1;
  }
  pid_t pids[WORKERS];
  for (int i = 0; i < WORKERS; i++)
    if ((pids[i] = fork()) == 0)
      _exit(worker(go, stamp));
  *(long *)mps_value_ptr(stamp) = 42; /* what the workers may rely on */
  mps_event_set(go);
  int ok = 0;
  for (int i = 0; i < WORKERS; i++) {
    int status;
    waitpid(pids[i], &status, 0);
    ok += WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  printf("%d workers started after the event was set\n", ok);
  mps_value_close(stamp);
  mps_event_close(go);
  return ok == WORKERS ? 0 : 1;
}
