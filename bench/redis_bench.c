/* redis_bench: the remote queue (a redis:// name) on loopback, 64-byte
 * messages, P producers -> C consumers in separate processes, against
 *   - Python's remote queue: a queue.Queue served by multiprocessing.managers
 *     over TCP (bench/redis_peer.py, run with python3 in the same run);
 *   - the raw bound: the same stream commands sent by hand through hiredis,
 *     pipelined: producers XADD (one per round trip, or 32 per round trip),
 *     consumers XREADGROUP COUNT 1 or 32 and XACK what they read, the XACK
 *     pipelined with the next XREADGROUP, so one round trip per read.
 * mpshare rows: put/get + task_done one by one (also with consumers that
 * prefetch 32 messages per round trip), and put_many/get_many of 32 +
 * task_done. The queue holds 1024 messages. A private redis-server
 * ($MPS_REDIS_SERVER, else redis-server on PATH) is started on a free
 * loopback port in a temporary directory, without persistence, and stopped
 * at the end. Kinds alternate within each round; the median of 3 rounds
 * counts. Prints messages/second and the ratios.
 *
 *   bench/redis_bench [messages]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mpshare.h>

#define MSG    64
#define BATCH  32
#define ROUNDS 3

enum kind { MPS_SINGLE, MPS_PREFETCH, MPS_BATCH, RAW_SINGLE, RAW_BATCH, KINDS };
static const char *names[KINDS] = {
    "mpshare remote queue, put/get", "mpshare remote queue, put/get, consumers ?prefetch=32",
    "mpshare remote queue, batch of 32", "raw hiredis XADD/XREADGROUP, 1 per round trip",
    "raw hiredis XADD/XREADGROUP, 32 per round trip"};

static int port;
static pid_t server;
static char dir[64] = "/tmp/mps-redis-bench-XXXXXX";

static double now(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int free_port(void)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t l = sizeof(a);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, l) < 0 ||
      getsockname(fd, (struct sockaddr *)&a, &l) < 0)
    return -1;
  close(fd);
  return ntohs(a.sin_port);
}

static int server_start(void)
{
  const char *bin = getenv("MPS_REDIS_SERVER");
  if (bin == NULL || *bin == '\0')
    bin = "redis-server";
  if (mkdtemp(dir) == NULL || (port = free_port()) < 0)
    return -1;
  char p[16];
  snprintf(p, sizeof(p), "%d", port);
  server = fork();
  if (server == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    execlp(bin, bin, "--port", p, "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly",
           "no", "--daemonize", "no", "--logfile", "/dev/null", (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 1000; i++) { /* up within 10 s */
    redisContext *c = redisConnect("127.0.0.1", port);
    if (c != NULL && !c->err) {
      redisReply *r = redisCommand(c, "PING");
      bool ok = r != NULL && r->type == REDIS_REPLY_STATUS;
      freeReplyObject(r);
      redisFree(c);
      if (ok)
        return 0;
    } else if (c != NULL) {
      redisFree(c);
    }
    struct timespec t = {0, 10000000};
    nanosleep(&t, NULL);
  }
  return -1;
}

static void server_stop(void)
{
  if (server > 0) {
    kill(server, SIGKILL);
    waitpid(server, NULL, 0);
  }
  rmdir(dir);
}

/* ---- one side of a run ------------------------------------------------------ */

static char url[256];

static int mps_producer(long n, bool batch)
{
  mps_queue *q = mps_queue_open(url);
  char msg[BATCH][MSG];
  memset(msg, 'x', sizeof(msg));
  const void *m[BATCH];
  size_t lens[BATCH];
  for (int i = 0; i < BATCH; i++)
    m[i] = msg[i], lens[i] = MSG;
  for (long sent = 0; q != NULL && sent < n;) {
    ssize_t k = batch ? mps_queue_put_many(
                            q, m, lens, (size_t)(n - sent < BATCH ? n - sent : BATCH), MPS_FOREVER)
                      : (mps_queue_put(q, msg[0], MSG, MPS_FOREVER) == 0 ? 1 : -1);
    if (k < 0)
      return 1;
    sent += k;
  }
  mps_queue_close(q);
  return q == NULL;
}

static int mps_consumer(long n, bool batch, bool prefetch)
{
  char u[300];
  snprintf(u, sizeof(u), "%s%s", url, prefetch ? "?prefetch=32" : "");
  mps_queue *q = mps_queue_open(u);
  char buf[BATCH * MSG];
  size_t lens[BATCH];
  for (long got = 0; q != NULL && got < n;) {
    size_t want = batch ? (size_t)(n - got < BATCH ? n - got : BATCH) : 1;
    ssize_t k = mps_queue_get_many(q, buf, sizeof(buf), lens, want, MPS_FOREVER);
    if (k < 0)
      return 1;
    for (ssize_t i = 0; i < k; i++)
      if (mps_queue_task_done(q) != 0)
        return 1;
    got += k;
  }
  mps_queue_close(q);
  return q == NULL;
}

static const char *stream_key(void) { return strrchr(url, '/') + 1; }

static int raw_producer(long n, bool batch)
{
  redisContext *c = redisConnect("127.0.0.1", port);
  if (c == NULL || c->err)
    return 1;
  char msg[MSG];
  memset(msg, 'x', sizeof(msg));
  long per = batch ? BATCH : 1;
  for (long sent = 0; sent < n; sent += per) {
    for (long i = 0; i < per; i++)
      redisAppendCommand(c, "XADD %s * m %b", stream_key(), msg, (size_t)MSG);
    for (long i = 0; i < per; i++) {
      void *r;
      if (redisGetReply(c, &r) != REDIS_OK)
        return 1;
      freeReplyObject(r);
    }
  }
  redisFree(c);
  return 0;
}

static int raw_consumer(long n, bool batch, int who)
{
  redisContext *c = redisConnect("127.0.0.1", port);
  if (c == NULL || c->err)
    return 1;
  char name[32], ids[BATCH][48];
  snprintf(name, sizeof(name), "c%d", who);
  size_t acks = 0;
  for (long got = 0; got < n;) {
    long want = batch ? (n - got < BATCH ? n - got : BATCH) : 1;
    for (size_t i = 0; i < acks; i++) /* last round's, pipelined with this read */
      redisAppendCommand(c, "XACK %s g %s", stream_key(), ids[i]);
    redisAppendCommand(c, "XREADGROUP GROUP g %s COUNT %ld BLOCK 1000 STREAMS %s >", name, want,
                       stream_key());
    for (size_t i = 0; i < acks; i++) {
      void *r;
      if (redisGetReply(c, &r) != REDIS_OK)
        return 1;
      freeReplyObject(r);
    }
    redisReply *r;
    if (redisGetReply(c, (void **)&r) != REDIS_OK)
      return 1;
    acks = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
      redisReply *e = r->element[0]->element[1];
      for (size_t i = 0; i < e->elements && i < BATCH; i++)
        snprintf(ids[acks++], sizeof(ids[0]), "%s", e->element[i]->element[0]->str);
    }
    got += (long)acks;
    freeReplyObject(r);
  }
  redisFree(c);
  return 0;
}

/* ---- a run ----------------------------------------------------------------- */

static int raw_setup(void)
{
  redisContext *c = redisConnect("127.0.0.1", port);
  if (c == NULL || c->err)
    return -1;
  redisReply *r = redisCommand(c, "DEL %s", stream_key());
  freeReplyObject(r);
  r = redisCommand(c, "XGROUP CREATE %s g $ MKSTREAM", stream_key());
  int ok = r != NULL && r->type == REDIS_REPLY_STATUS;
  freeReplyObject(r);
  redisFree(c);
  return ok ? 0 : -1;
}

static double run(enum kind k, long n, int np, int nc, int round)
{
  snprintf(url, sizeof(url), "redis://127.0.0.1:%d/bench-%d-%d-%d-%d", port, (int)k, np, nc, round);
  bool batch = k == MPS_BATCH || k == RAW_BATCH;
  mps_queue_opts o = {.maxsize = 1024, .max_msg = MSG};
  mps_queue *q = k <= MPS_BATCH ? mps_queue_create(url, &o) : NULL;
  if (k <= MPS_BATCH ? q == NULL : raw_setup() < 0)
    return -1;
  int go[2];
  if (pipe(go) < 0)
    return -1;
  pid_t pids[8];
  int np_nc = np + nc;
  for (int i = 0; i < np_nc; i++) {
    pids[i] = fork();
    if (pids[i] == 0) {
      char c;
      close(go[1]);
      if (read(go[0], &c, 1) != 0) /* EOF: start */
        _exit(2);
      bool prod = i < np;
      long share = prod ? n / np : n / nc;
      int r = k <= MPS_BATCH ? (prod ? mps_producer(share, batch)
                                     : mps_consumer(share, batch, k == MPS_PREFETCH))
                             : (prod ? raw_producer(share, batch) : raw_consumer(share, batch, i));
      _exit(r);
    }
  }
  close(go[0]);
  double t0 = now();
  close(go[1]);
  int bad = 0;
  for (int i = 0; i < np_nc; i++) {
    int st;
    waitpid(pids[i], &st, 0);
    bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
  }
  double rate = (double)n / (now() - t0);
  mps_queue_close(q);
  if (k <= MPS_BATCH)
    (void)mps_unlink(url);
  return bad ? -1 : rate;
}

static double peer(long n, int np, int nc)
{
  const char *script = getenv("MPS_BENCH_REDIS_PEER");
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "python3 '%s' %ld %d %d 2>/dev/null",
           script ? script : "bench/redis_peer.py", n, np, nc);
  FILE *f = popen(cmd, "r");
  double r = -1;
  if (f == NULL)
    return -1;
  if (fscanf(f, "%lf", &r) != 1)
    r = -1;
  return pclose(f) == 0 ? r : -1;
}

static int cmp(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
  long n = argc > 1 ? atol(argv[1]) : 64000;
  n = n / (2 * BATCH) * (2 * BATCH);
  long n_py = n / 8; /* the Python peer is slow: fewer messages, same rate */
  if (n <= 0 || server_start() < 0) {
    fprintf(stderr, "redis_bench: cannot start redis-server (set MPS_REDIS_SERVER)\n");
    server_stop();
    return 1;
  }
  printf("remote queue on loopback, %d-byte messages, %ld per run (Python: %ld), median of %d\n",
         MSG, n, n_py, ROUNDS);
  printf("\n| P->C | kind | messages/s |\n|---|---|---|\n");
  double res[2][KINDS + 1][ROUNDS];
  for (int s = 0; s < 2; s++) {
    int p = s + 1;
    for (int r = 0; r < ROUNDS; r++) {
      for (int k = 0; k < KINDS; k++)
        res[s][k][r] = run((enum kind)k, n, p, p, r);
      res[s][KINDS][r] = peer(n_py, p, p);
    }
    double med[KINDS + 1];
    for (int k = 0; k <= KINDS; k++) {
      qsort(res[s][k], ROUNDS, sizeof(double), cmp);
      med[k] = res[s][k][ROUNDS / 2];
      printf("| %d->%d | %s | %.0f |\n", p, p,
             k < KINDS ? names[k] : "Python multiprocessing.managers Queue over TCP", med[k]);
    }
    if (med[KINDS] > 0)
      printf("| %d->%d | ratio: mpshare put/get / Python manager | %.1fx (prefetch: %.1fx) |\n", p,
             p, med[MPS_SINGLE] / med[KINDS], med[MPS_PREFETCH] / med[KINDS]);
    else
      printf("| %d->%d | Python manager | not run (python3) |\n", p, p);
    printf("| %d->%d | ratio: mpshare put/get / raw 1 per round trip | %.2fx |\n", p, p,
           med[MPS_SINGLE] / med[RAW_SINGLE]);
    printf("| %d->%d | ratio: mpshare batch / raw 32 per round trip | %.2fx |\n", p, p,
           med[MPS_BATCH] / med[RAW_BATCH]);
  }
  server_stop();
  return 0;
}
