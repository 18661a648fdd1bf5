/* The classic worker pattern: daemon workers loop on get() and
 * task_done(); the main process puts the work, join()s the queue and
 * leaves; the daemon workers end with it.
 *
 *   worker_queue
 *
 * The workers are made daemons with fork() and prctl(PR_SET_PDEATHSIG):
 * the kernel kills them when the main process exits, even by a crash.
 */
#include <mpshare.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

#define WORKERS 10
#define ITEMS 20

static void worker(mps_queue *q, int id)
{
  for (;;) {
    int item;
    if (mps_queue_get(q, &item, sizeof(item), MPS_FOREVER) != sizeof(item))
      _exit(1);
    printf("worker %d: working on item %d\n", id, item);
    fflush(stdout);
    mps_queue_task_done(q);
  }
}

/* Forks a worker that dies with its parent. */
static pid_t start_daemon(mps_queue *q, int id)
{
  pid_t parent = getpid();
  fflush(stdout);
  pid_t pid = fork();
  if (pid != 0)
    return pid;
  /* If the parent died before prctl, getppid() has already changed. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
    _exit(1);
  worker(q, id);
  _exit(0);
}

int main(void)
{
  mps_queue *q = mps_queue_new(&(mps_queue_opts){.maxsize = 8, .max_msg = sizeof(int)});
  if (q == NULL) {
    perror("mps_queue_new");
    return 1;
  }
  for (int i = 0; i < WORKERS; i++)
    if (start_daemon(q, i) < 0) {
      perror("fork");
      return 1;
    }
  for (int item = 0; item < ITEMS; item++) {
    int err = mps_queue_put(q, &item, sizeof(item), MPS_FOREVER);
    if (err < 0) {
      fprintf(stderr, "put: %s\n", mps_strerror(err));
      return 1;
    }
  }
  int err = mps_queue_join(q, MPS_FOREVER); /* until every item is task_done */
  if (err < 0) {
    fprintf(stderr, "join: %s\n", mps_strerror(err));
    return 1;
  }
  printf("main done\n");
  return 0; /* the daemon workers are killed as we exit */
}
