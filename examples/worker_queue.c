/* The classic worker pattern: daemon workers loop on get() and
 * task_done(); the main process puts the work, join()s the queue and
 * leaves; the daemon workers end with it.
 *
 *   worker_queue
 *
 * Like Python's
 *     for i in range(10): Process(target=worker, daemon=True).start()
 *     for item in range(20): q.put(item)
 *     q.join(); print("main done")
 */
#include <mpshare.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#define WORKERS 10
#define ITEMS   20

static mps_queue *q;

static int worker(void *arg)
{
  int id = (int)(intptr_t)arg;
  for (;;) {
    int item;
    if (mps_queue_get(q, &item, sizeof(item), MPS_FOREVER) != sizeof(item))
      return 1;
    printf("worker %d: working on item %d\n", id, item);
    fflush(stdout);
    mps_queue_task_done(q);
  }
}

int main(void)
{
  q = mps_queue_new(&(mps_queue_opts){.maxsize = 8, .max_msg = sizeof(int)});
  if (q == NULL) {
    perror("mps_queue_new");
    return 1;
  }
  mps_process *workers[WORKERS];
  for (int i = 0; i < WORKERS; i++) {
    /* daemon: killed by the kernel when this process exits, even by a crash */
    workers[i] = mps_process_new(worker, (void *)(intptr_t)i, &(mps_process_opts){.daemon = true});
    fflush(stdout);
    int err = workers[i] ? mps_process_start(workers[i]) : -errno;
    if (err < 0) {
      fprintf(stderr, "starting a worker: %s\n", mps_strerror(err));
      return 1;
    }
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
  for (int i = 0; i < WORKERS; i++)
    mps_process_detach(workers[i]); /* the handles; the daemons go on */
  mps_queue_close(q);
  return 0; /* the daemon workers are killed as we exit */
}
