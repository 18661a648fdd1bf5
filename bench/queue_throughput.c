/* Queue throughput: P producers -> C consumers moving 64-byte messages
 * through a 1024-message channel, for mpshare's queue (FIFO single and
 * batch calls, LIFO, priority) and its peers: Boost.Interprocess
 * message_queue (bench/boost_mq, a C++ program run for its row when it
 * was built), a pipe, a SOCK_SEQPACKET socketpair and a POSIX message
 * queue. Two hand-written shared-memory rings show what the hardware
 * allows: a ring under one process-shared (non-robust) mutex with two
 * condition variables that signals only when someone waits, the usual C
 * design, and, for 1 -> 1, a lock-free single-producer ring that polls
 * without ever sleeping (the cost of moving cache lines between cores, a
 * bound no blocking queue reaches). Shapes: 1 -> 1, 2 -> 2, 1 -> 4,
 * 4 -> 1, and 1 -> 1 and 2 -> 2 again with one busy-looping process per
 * CPU (an oversubscribed machine). Kinds alternate within each round, so
 * that a machine busy with something else disturbs them alike; the median
 * round counts. Prints messages/second, the ratio mpshare/peer, and a
 * summary of the ratios to Boost with their targets.
 *
 *   queue_throughput [messages] [rounds]
 */
#include <mpshare.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <mqueue.h>
#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG   64
#define CAP   1024
#define BATCH 32
#define STOP  UINT64_MAX

enum kind {
  MPS_SINGLE,
  MPS_BATCH,
  MPS_LIFO_Q,
  MPS_PRIO_Q,
  BOOST,
  PIPE,
  SEQPACKET,
  POSIX_MQ,
  RING_CONDVAR,
  RING_SPIN,
  KINDS
};
static const char *names[KINDS] = {"mpshare queue",
                                   "mpshare queue, batch of 32",
                                   "mpshare LIFO queue",
                                   "mpshare priority queue",
                                   "Boost.Interprocess message_queue",
                                   "pipe",
                                   "seqpacket socketpair",
                                   "POSIX mq",
                                   "mutex+condvar ring (C)",
                                   "spinning SPSC ring (bound)"};

static char boost_prog[PATH_MAX]; /* "" when it was not built */

/* The two reference rings. `waiting` counts sleepers so that a signal is
 * sent only when someone sleeps, as a tuned hand-written ring does. */
struct ring {
  pthread_mutex_t mu;
  pthread_cond_t not_empty, not_full;
  int waiting;
  alignas(64) _Atomic uint64_t head;
  alignas(64) _Atomic uint64_t tail;
  alignas(64) char slot[CAP][MSG];
};

struct chan {
  enum kind kind;
  mps_queue *q;
  int fd[2];
  mqd_t mq;
  struct ring *r;
};

static struct ring *ring_new(void)
{
  struct ring *r =
      mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (r == MAP_FAILED)
    return NULL;
  pthread_mutexattr_t ma;
  pthread_condattr_t ca;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
  pthread_condattr_init(&ca);
  pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
  pthread_mutex_init(&r->mu, &ma);
  pthread_cond_init(&r->not_empty, &ca);
  pthread_cond_init(&r->not_full, &ca);
  return r;
}

static void ring_put(struct ring *r, const char *m)
{
  pthread_mutex_lock(&r->mu);
  while (r->tail - r->head == CAP) {
    r->waiting++;
    pthread_cond_wait(&r->not_full, &r->mu);
    r->waiting--;
  }
  memcpy(r->slot[r->tail % CAP], m, MSG);
  r->tail++;
  if (r->waiting)
    pthread_cond_broadcast(&r->not_empty);
  pthread_mutex_unlock(&r->mu);
}

static void ring_get(struct ring *r, char *m)
{
  pthread_mutex_lock(&r->mu);
  while (r->tail == r->head) {
    r->waiting++;
    pthread_cond_wait(&r->not_empty, &r->mu);
    r->waiting--;
  }
  memcpy(m, r->slot[r->head % CAP], MSG);
  r->head++;
  if (r->waiting)
    pthread_cond_broadcast(&r->not_full);
  pthread_mutex_unlock(&r->mu);
}

/* Single producer, single consumer, no lock and no sleep. */
static void spin_put(struct ring *r, const char *m)
{
  uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
  while (t - atomic_load_explicit(&r->head, memory_order_acquire) == CAP)
    ;
  memcpy(r->slot[t % CAP], m, MSG);
  atomic_store_explicit(&r->tail, t + 1, memory_order_release);
}

static void spin_get(struct ring *r, char *m)
{
  uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
  while (atomic_load_explicit(&r->tail, memory_order_acquire) == h)
    ;
  memcpy(m, r->slot[h % CAP], MSG);
  atomic_store_explicit(&r->head, h + 1, memory_order_release);
}

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int chan_open(struct chan *c, enum kind k)
{
  c->kind = k;
  switch (k) {
  case MPS_SINGLE:
  case MPS_BATCH:
  case MPS_LIFO_Q:
  case MPS_PRIO_Q: {
    mps_order o = k == MPS_LIFO_Q ? MPS_LIFO : k == MPS_PRIO_Q ? MPS_PRIORITY : MPS_FIFO;
    c->q = mps_queue_new(&(mps_queue_opts){.maxsize = CAP, .max_msg = MSG, .order = o});
    return c->q ? 0 : -1;
  }
  case PIPE:
    return pipe(c->fd);
  case SEQPACKET:
    return socketpair(AF_UNIX, SOCK_SEQPACKET, 0, c->fd);
  case RING_CONDVAR:
  case RING_SPIN:
    c->r = ring_new();
    return c->r ? 0 : -1;
  default: {
    char name[64];
    snprintf(name, sizeof(name), "/mps-bench-%d", (int)getpid());
    struct mq_attr a = {.mq_maxmsg = CAP, .mq_msgsize = MSG};
    c->mq = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &a);
    if (c->mq == (mqd_t)-1) { /* above msg_max without privileges */
      a.mq_maxmsg = 10;
      c->mq = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &a);
    }
    mq_unlink(name);
    return c->mq == (mqd_t)-1 ? -1 : 0;
  }
  }
}

static bool is_mps(enum kind k) { return k <= MPS_PRIO_Q; }

static void chan_close(struct chan *c)
{
  if (is_mps(c->kind))
    mps_queue_close(c->q);
  else if (c->kind == POSIX_MQ)
    mq_close(c->mq);
  else if (c->kind >= RING_CONDVAR)
    munmap(c->r, sizeof(*c->r));
  else {
    close(c->fd[0]);
    close(c->fd[1]);
  }
}

static void send1(struct chan *c, const char *m)
{
  int ok;
  switch (c->kind) {
  case MPS_SINGLE:
  case MPS_BATCH:
  case MPS_LIFO_Q:
  case MPS_PRIO_Q:
    ok = mps_queue_put(c->q, m, MSG, MPS_FOREVER) == 0;
    break;
  case PIPE:
  case SEQPACKET:
    ok = write(c->fd[1], m, MSG) == MSG;
    break;
  case RING_CONDVAR:
    ring_put(c->r, m);
    ok = 1;
    break;
  case RING_SPIN:
    spin_put(c->r, m);
    ok = 1;
    break;
  default:
    ok = mq_send(c->mq, m, MSG, 0) == 0;
  }
  if (!ok)
    _exit(3);
}

static void produce(struct chan *c, uint64_t n)
{
  char m[BATCH][MSG] = {{0}};
  const void *ptrs[BATCH];
  size_t lens[BATCH];
  for (int i = 0; i < BATCH; i++) {
    ptrs[i] = m[i];
    lens[i] = MSG;
  }
  for (uint64_t i = 0; i < n;) {
    if (c->kind == MPS_BATCH) {
      size_t k = n - i < BATCH ? (size_t)(n - i) : BATCH;
      for (size_t j = 0; j < k; j++)
        memcpy(m[j], &(uint64_t){i + j}, 8);
      ssize_t r = mps_queue_put_many(c->q, ptrs, lens, k, MPS_FOREVER);
      if (r <= 0)
        _exit(3);
      i += (uint64_t)r;
      continue;
    }
    memcpy(m[0], &i, 8);
    send1(c, m[0]);
    i++;
  }
}

/* Receives until a STOP message; returns how many others it got. */
static uint64_t consume(struct chan *c)
{
  char buf[BATCH * MSG];
  size_t lens[BATCH];
  uint64_t got = 0;
  for (;;) {
    ssize_t n = 1;
    switch (c->kind) {
    case MPS_SINGLE:
    case MPS_LIFO_Q:
    case MPS_PRIO_Q:
      n = mps_queue_get(c->q, buf, MSG, MPS_FOREVER);
      n = n == MSG ? 1 : n;
      break;
    case MPS_BATCH:
      n = mps_queue_get_many(c->q, buf, sizeof(buf), lens, BATCH, MPS_FOREVER);
      break;
    case PIPE:
    case SEQPACKET:
      n = read(c->fd[0], buf, MSG) == MSG ? 1 : -1;
      break;
    case RING_CONDVAR:
      ring_get(c->r, buf);
      break;
    case RING_SPIN:
      spin_get(c->r, buf);
      break;
    default:
      n = mq_receive(c->mq, buf, MSG, NULL) == MSG ? 1 : -1;
    }
    if (n == -EPIPE)
      return got; /* mpshare: shut down and drained */
    if (n <= 0)
      _exit(4);
    for (ssize_t i = 0; i < n; i++) {
      uint64_t id;
      memcpy(&id, buf + i * MSG, 8);
      if (id == STOP)
        return got;
      got++;
    }
  }
}

/* Boost's row: its own program, run in this round like the others. */
static double run_boost(int np, int nc, uint64_t n)
{
  char cmd[PATH_MAX + 64];
  snprintf(cmd, sizeof(cmd), "'%s' %d %d %llu", boost_prog, np, nc, (unsigned long long)n);
  FILE *p = popen(cmd, "r");
  double rate = 0;
  if (p == NULL)
    return 0;
  if (fscanf(p, "%lf", &rate) != 1)
    rate = 0;
  pclose(p);
  return rate;
}

/* Messages per second for one run of kind k with p producers, c consumers. */
static double run(enum kind k, int np, int nc, uint64_t n)
{
  struct chan c;
  if (k == BOOST)
    return boost_prog[0] ? run_boost(np, nc, n) : 0;
  if (chan_open(&c, k) < 0)
    return 0;
  pid_t pids[8];
  double t0 = now();
  for (int i = 0; i < nc; i++)
    if ((pids[i] = fork()) == 0)
      _exit(consume(&c) > 0 ? 0 : 5);
  for (int i = 0; i < np; i++)
    if ((pids[nc + i] = fork()) == 0) {
      produce(&c, n / (uint64_t)np);
      _exit(0);
    }
  int status, bad = 0;
  for (int i = nc; i < nc + np; i++)
    bad |= waitpid(pids[i], &status, 0) < 0 || status != 0;
  /* A queue is shut down (a batch get could take two STOPs at once);
   * the others get one STOP message per consumer. */
  char stop[MSG];
  memset(stop, 0xff, sizeof(stop));
  if (is_mps(k))
    (void)mps_queue_shutdown(c.q);
  else
    for (int i = 0; i < nc; i++)
      send1(&c, stop);
  for (int i = 0; i < nc; i++)
    bad |= waitpid(pids[i], &status, 0) < 0 || status != 0;
  double secs = now() - t0;
  chan_close(&c);
  return bad ? 0 : (double)(n / (uint64_t)np * (uint64_t)np) / secs;
}

/* One process per CPU that only burns it, for the oversubscribed shapes. */
static int busy_start(pid_t *pids, int max)
{
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  int n = ncpu < 1 ? 1 : ncpu > max ? max : (int)ncpu;
  for (int i = 0; i < n; i++)
    if ((pids[i] = fork()) == 0)
      for (volatile unsigned long x = 0;; x++)
        ;
  return n;
}

static void busy_stop(pid_t *pids, int n)
{
  for (int i = 0; i < n; i++) {
    kill(pids[i], SIGKILL);
    waitpid(pids[i], NULL, 0);
  }
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

struct shape {
  int np, nc;
  bool busy;
  unsigned kinds; /* bit k: kind k runs in this shape */
};

#define K(k)      (1u << (k))
#define MPS_KINDS (K(MPS_SINGLE) | K(MPS_BATCH) | K(BOOST))
static const struct shape shapes[] = {
    {1, 1, false, ~0u},
    {2, 2, false, ~0u & ~K(RING_SPIN)}, /* the spinning ring: 1 -> 1 only */
    {1, 4, false, MPS_KINDS | K(PIPE)},
    {4, 1, false, MPS_KINDS | K(PIPE)},
    {1, 1, true, MPS_KINDS | K(PIPE) | K(RING_CONDVAR)},
    {2, 2, true, MPS_KINDS | K(PIPE) | K(RING_CONDVAR)},
};
#define SHAPES (int)(sizeof(shapes) / sizeof(shapes[0]))

static double med[SHAPES][KINDS];

static void measure(int s, uint64_t n, int rounds)
{
  double v[KINDS][50] = {{0}};
  for (int r = 0; r < rounds; r++) {
    pid_t busy[64];
    int nbusy = shapes[s].busy ? busy_start(busy, 64) : 0;
    for (int k = 0; k < KINDS; k++)
      if (shapes[s].kinds & K(k)) /* slow peers move fewer messages */
        v[k][r] =
            run((enum kind)k, shapes[s].np, shapes[s].nc,
                k == POSIX_MQ || k == SEQPACKET || (shapes[s].busy && k != MPS_BATCH) ? n / 4 : n);
    busy_stop(busy, nbusy);
  }
  for (int k = 0; k < KINDS; k++) {
    qsort(v[k], (size_t)rounds, sizeof(double), cmp_double);
    med[s][k] = v[k][rounds / 2];
  }
}

static void print_shape(int s)
{
  printf("\n%d -> %d%-26s %12s %18s\n", shapes[s].np, shapes[s].nc,
         shapes[s].busy ? ", a busy loop per CPU" : "", "msgs/s", "mpshare single/it");
  for (int k = 0; k < KINDS; k++) {
    if (!(shapes[s].kinds & K(k)))
      continue;
    if (med[s][k] > 0)
      printf("       %-32s %12.0f %18.2f\n", names[k], med[s][k], med[s][MPS_SINGLE] / med[s][k]);
    else
      printf("       %-32s %12s\n", names[k],
             k == BOOST && !boost_prog[0] ? "not built" : "failed");
  }
}

/* The ratios the queue is held to, from the medians above. */
static void print_summary(void)
{
  static const struct {
    int shape;
    enum kind mine, peer;
    const char *what, *target;
    double min, max;
  } rows[] = {
      {0, MPS_SINGLE, BOOST, "1 -> 1 put/get / Boost", ">= 1.5", 1.5, 0},
      {1, MPS_SINGLE, BOOST, "2 -> 2 put/get / Boost", ">= 1.5", 1.5, 0},
      {0, MPS_BATCH, BOOST, "1 -> 1 batch of 32 / Boost single", ">= 3", 3, 0},
      {1, MPS_BATCH, BOOST, "2 -> 2 batch of 32 / Boost single", ">= 3", 3, 0},
      {2, MPS_SINGLE, BOOST, "1 -> 4 put/get / Boost", ">= 1", 1, 0},
      {3, MPS_SINGLE, BOOST, "4 -> 1 put/get / Boost", ">= 1", 1, 0},
      {4, MPS_SINGLE, BOOST, "1 -> 1 busy loops, put/get / Boost", ">= 1", 1, 0},
      {5, MPS_SINGLE, BOOST, "2 -> 2 busy loops, put/get / Boost", ">= 1", 1, 0},
  };
  printf("\nSummary (ratios of medians, same run)%-14s %8s %8s\n", "", "ratio", "target");
  for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
    double a = med[rows[i].shape][rows[i].mine], b = med[rows[i].shape][rows[i].peer];
    if (a > 0 && b > 0)
      printf("       %-44s %7.2fx %8s%s\n", rows[i].what, a / b, rows[i].target,
             a / b >= rows[i].min ? "" : "  (missed)");
    else
      printf("       %-44s %8s %8s\n", rows[i].what, b > 0 ? "failed" : "no Boost", rows[i].target);
  }
}

/* bench/boost_mq next to this program (or next to the libtool wrapper
 * that runs it from bench/.libs). */
static void find_boost(const char *argv0)
{
  char self[PATH_MAX];
  snprintf(self, sizeof(self), "%s", argv0);
  const char *dir = dirname(self);
  snprintf(boost_prog, sizeof(boost_prog), "%s/boost_mq", dir);
  if (access(boost_prog, X_OK) == 0)
    return;
  snprintf(boost_prog, sizeof(boost_prog), "%s/../boost_mq", dir);
  if (access(boost_prog, X_OK) != 0)
    boost_prog[0] = '\0';
}

int main(int argc, char **argv)
{
  uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
  int rounds = argc > 2 ? atoi(argv[2]) : 3;
  if (n < 100 || rounds < 1 || rounds > 50)
    return 2;
  find_boost(argv[0]);
  printf("%d-byte messages, capacity %d, %llu messages per run (a quarter for the slow\n"
         "peers and in the busy shapes), median of %d rounds\n",
         MSG, CAP, (unsigned long long)n, rounds);
  for (int s = 0; s < SHAPES; s++) {
    measure(s, n, rounds);
    print_shape(s);
    fflush(stdout);
  }
  print_summary();
  return 0;
}
