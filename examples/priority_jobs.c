/* A priority queue of jobs: the most urgent job (smallest priority) runs
 * first, and jobs of equal priority run in the order they were submitted.
 *
 *   priority_jobs
 *
 * The main process submits jobs, then starts a worker that runs them one by
 * one and marks each done; the main process waits for all of them with
 * join().
 */
#include <mpshare.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct job {
  int prio;
  const char *what;
};

static const struct job jobs[] = {
    {5, "rebuild the search index"}, {1, "page the on-call engineer"},
    {9, "rotate old logs"},          {1, "restart the failed database"},
    {5, "send the weekly report"},   {0, "stop the runaway process"},
};

static int worker(mps_queue *q)
{
  char what[128];
  for (;;) {
    ssize_t n = mps_queue_get(q, what, sizeof(what) - 1, MPS_FOREVER);
    if (n < 0)
      return n == -EPIPE ? 0 : 1;
    what[n] = '\0';
    printf("running: %s\n", what);
    fflush(stdout);
    mps_queue_task_done(q);
  }
}

int main(void)
{
  mps_queue_opts o = {.maxsize = 64, .max_msg = 128, .order = MPS_PRIORITY};
  mps_queue *q = mps_queue_new(&o);
  if (q == NULL) {
    perror("mps_queue_new");
    return 1;
  }
  for (size_t i = 0; i < sizeof(jobs) / sizeof(jobs[0]); i++) {
    int err = mps_queue_put_prio(q, jobs[i].prio, jobs[i].what, strlen(jobs[i].what), 0);
    if (err < 0) {
      fprintf(stderr, "put: %s\n", mps_strerror(err));
      return 1;
    }
  }
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0)
    _exit(worker(q));
  int err = mps_queue_join(q, 30.0); /* every job ran and was marked done */
  mps_queue_shutdown(q);             /* the worker's next get returns -EPIPE */
  int status;
  waitpid(pid, &status, 0);
  printf("all jobs done: %s\n", err == 0 ? "yes" : mps_strerror(err));
  mps_queue_close(q);
  return err == 0 && status == 0 ? 0 : 1;
}
