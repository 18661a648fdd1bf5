/* Producers and consumers over one queue, with sequence numbers.
 *
 *   producer_consumer [producers] [consumers] [messages per producer]
 *
 * Each producer puts (its id, a sequence number); each consumer checks that
 * one producer's messages reach it in order and counts them. When the
 * producers are done the main process shuts the queue down: the consumers
 * drain what is left and stop. Prints the message rate; exits 0 when every
 * message arrived exactly once.
 */
#include <mpshare.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct msg {
  uint32_t producer;
  uint32_t seq;
};

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int produce(mps_queue *q, uint32_t id, uint32_t n)
{
  for (uint32_t i = 0; i < n; i++) {
    struct msg m = {id, i};
    int err = mps_queue_put(q, &m, sizeof(m), MPS_FOREVER);
    if (err < 0) {
      fprintf(stderr, "producer %u: put: %s\n", id, mps_strerror(err));
      return 1;
    }
  }
  return 0;
}

/* counts[c] is the number of messages consumer c got. */
static int consume(mps_queue *q, int c, int producers, long *counts)
{
  uint32_t *next = calloc((size_t)producers, sizeof(*next));
  for (;;) {
    struct msg m;
    ssize_t n = mps_queue_get(q, &m, sizeof(m), MPS_FOREVER);
    if (n == -EPIPE)
      break; /* shut down and drained */
    if (n != sizeof(m) || m.producer >= (uint32_t)producers || m.seq < next[m.producer]) {
      fprintf(stderr, "consumer %d: bad or out-of-order message\n", c);
      return 1;
    }
    next[m.producer] = m.seq + 1;
    counts[c]++;
  }
  free(next);
  return 0;
}

int main(int argc, char **argv)
{
  int producers = argc > 1 ? atoi(argv[1]) : 2;
  int consumers = argc > 2 ? atoi(argv[2]) : 2;
  uint32_t n = argc > 3 ? (uint32_t)atol(argv[3]) : 1000000;
  if (producers < 1 || consumers < 1 || producers > 64 || consumers > 64) {
    fprintf(stderr, "usage: %s [producers] [consumers] [messages per producer]\n", argv[0]);
    return 2;
  }
  mps_queue *q = mps_queue_new(&(mps_queue_opts){.maxsize = 1024, .max_msg = sizeof(struct msg)});
  mps_array *counts = mps_array_new(MPS_LONG, (size_t)consumers, false);
  if (q == NULL || counts == NULL) {
    perror("mpshare");
    return 1;
  }
  double t0 = now();
  pid_t pids[128];
  int np = 0;
  for (int c = 0; c < consumers; c++)
    if ((pids[np++] = fork()) == 0)
      _exit(consume(q, c, producers, mps_array_data(counts)));
  for (int p = 0; p < producers; p++)
    if ((pids[np++] = fork()) == 0)
      _exit(produce(q, (uint32_t)p, n));
  int failed = 0, status;
  for (int i = consumers; i < np; i++) /* the producers first */
    failed |= waitpid(pids[i], &status, 0) < 0 || status != 0;
  mps_queue_shutdown(q);
  for (int i = 0; i < consumers; i++)
    failed |= waitpid(pids[i], &status, 0) < 0 || status != 0;
  double secs = now() - t0;

  long total = 0, *got = mps_array_data(counts);
  for (int c = 0; c < consumers; c++)
    total += got[c];
  printf("%d producers, %d consumers: %ld messages in %.3f s, %.0f messages/s\n", producers,
         consumers, total, secs, total / secs);
  if (failed || total != (long)producers * n) {
    printf("FAILED: expected %ld messages\n", (long)producers * n);
    return 1;
  }
  printf("every message delivered once, in order per producer\n");
  mps_array_close(counts);
  mps_queue_close(q);
  return 0;
}
