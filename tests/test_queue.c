/* Queue: order for each kind, every error, blocking and wake-ups across
 * processes, task_done/join, shutdown, named queues used by an exec'd
 * process, batch calls, and 4 producers x 4 consumers delivering every
 * message exactly once. The SIGKILL torture is in test_queue_torture.c. */
#include "helpers.h"
#include "queue_internal.h" /* white-box: offsets of the shared structs */

#include <math.h>
#include <stdint.h>

#define PEER_ENV "MPS_TEST_QUEUE_PEER"

static mps_queue *q;

static mps_queue *make(size_t maxsize, size_t max_msg, mps_order order)
{
  mps_queue_opts o = {.maxsize = maxsize, .max_msg = max_msg, .order = order};
  mps_queue *r = mps_queue_new(&o);
  cr_assert_not_null(r, "mps_queue_new: %s", strerror(errno));
  return r;
}

static void put_int(mps_queue *qq, int v) { cr_assert_eq(mps_queue_put(qq, &v, sizeof(v), 0), 0); }

static int get_int(mps_queue *qq)
{
  int v = -1;
  ssize_t n = mps_queue_get(qq, &v, sizeof(v), 0);
  cr_assert_eq(n, (ssize_t)sizeof(v), "get: %zd", n);
  return v;
}

/* An exec'd copy of this program, before Criterion starts: opens the named
 * queue given in the environment, gets one number, puts it back doubled and
 * marks the task done. */
__attribute__((constructor)) static void queue_peer(void)
{
  const char *name = getenv(PEER_ENV);
  if (name == NULL)
    return;
  mps_queue *pq = mps_queue_open(name);
  if (pq == NULL)
    _exit(10);
  int v;
  if (mps_queue_get(pq, &v, sizeof(v), 10.0) != sizeof(v))
    _exit(11);
  v *= 2;
  if (mps_queue_put(pq, &v, sizeof(v), 10.0) != 0 || mps_queue_task_done(pq) != 0)
    _exit(12);
  mps_queue_close(pq);
  _exit(0);
}

Test(queue, fifo_order_and_lengths, .timeout = 10)
{
  q = make(8, 16, MPS_FIFO);
  cr_assert(mps_queue_empty(q));
  for (int round = 0; round < 3; round++) { /* wraps the ring */
    for (int i = 0; i < 8; i++)
      put_int(q, round * 10 + i);
    cr_assert(mps_queue_full(q));
    cr_assert_eq(mps_queue_qsize(q), 8);
    for (int i = 0; i < 8; i++)
      cr_assert_eq(get_int(q), round * 10 + i);
  }
  cr_assert_eq(mps_queue_put(q, "", 0, 0), 0, "empty messages are messages");
  cr_assert_eq(mps_queue_put(q, "0123456789abcdef", 16, 0), 0);
  char buf[16];
  cr_assert_eq(mps_queue_get(q, NULL, 0, 0), 0);
  cr_assert_eq(mps_queue_get(q, buf, sizeof(buf), 0), 16);
  cr_assert_arr_eq(buf, "0123456789abcdef", 16);
  cr_assert(mps_queue_empty(q));
  mps_queue_close(q);
}

Test(queue, lifo_order, .timeout = 10)
{
  q = make(5, 8, MPS_LIFO);
  for (int i = 0; i < 5; i++)
    put_int(q, i);
  cr_assert_eq(get_int(q), 4);
  cr_assert_eq(get_int(q), 3);
  put_int(q, 9);
  cr_assert_eq(get_int(q), 9);
  for (int i = 2; i >= 0; i--)
    cr_assert_eq(get_int(q), i);
  cr_assert_eq(mps_queue_get(q, NULL, 0, 0), -EAGAIN);
  mps_queue_close(q);
}

Test(queue, priority_smallest_first_fifo_among_equals, .timeout = 10)
{
  enum { N = 300 };
  q = make(N, 8, MPS_PRIORITY);
  int prio[N];
  srand(42);
  for (int i = 0; i < N; i++) {
    prio[i] = rand() % 7 - 3;
    int msg[2] = {prio[i], i};
    cr_assert_eq(mps_queue_put_prio(q, prio[i], msg, sizeof(msg), 0), 0);
  }
  int last_prio = INT32_MIN, last_seq = -1;
  for (int i = 0; i < N; i++) {
    int msg[2];
    cr_assert_eq(mps_queue_get(q, msg, sizeof(msg), 0), (ssize_t)sizeof(msg));
    cr_assert_eq(prio[msg[1]], msg[0]);
    cr_assert_geq(msg[0], last_prio, "smallest first");
    if (msg[0] == last_prio)
      cr_assert_gt(msg[1], last_seq, "FIFO among equal priorities");
    last_prio = msg[0];
    last_seq = msg[1];
  }
  cr_assert(mps_queue_empty(q));
  /* put without a priority is priority 0, interleaved with others */
  put_int(q, 1);
  cr_assert_eq(mps_queue_put_prio(q, -1, &(int){2}, sizeof(int), 0), 0);
  put_int(q, 3);
  cr_assert_eq(mps_queue_put_prio(q, 5, &(int){4}, sizeof(int), 0), 0);
  cr_assert_eq(get_int(q), 2);
  cr_assert_eq(get_int(q), 1);
  cr_assert_eq(get_int(q), 3);
  cr_assert_eq(get_int(q), 4);
  mps_queue_close(q);
}

Test(queue, errors, .timeout = 10)
{
  q = make(2, 4, MPS_FIFO);
  char buf[8];
  cr_assert_eq(mps_queue_put(q, "12345", 5, 0), -EMSGSIZE);
  cr_assert(mps_queue_empty(q), "nothing queued");
  cr_assert_eq(mps_queue_get(q, buf, sizeof(buf), 0), -EAGAIN);
  double t0 = test_now();
  cr_assert_eq(mps_queue_get(q, buf, sizeof(buf), 0.05), -ETIMEDOUT);
  cr_assert_geq(test_now() - t0, 0.05);
  cr_assert_eq(mps_queue_put(q, "abcd", 4, 0), 0);
  cr_assert_eq(mps_queue_get(q, buf, 3, 0), -EMSGSIZE);
  cr_assert_eq(mps_queue_qsize(q), 1, "the message stays queued");
  cr_assert_eq(mps_queue_put(q, "ef", 2, 0), 0);
  cr_assert_eq(mps_queue_put(q, "gh", 2, 0), -EAGAIN);
  t0 = test_now();
  cr_assert_eq(mps_queue_put(q, "gh", 2, 0.05), -ETIMEDOUT);
  cr_assert_geq(test_now() - t0, 0.05);
  cr_assert_eq(mps_queue_get(q, buf, 4, 0), 4);
  cr_assert_arr_eq(buf, "abcd", 4);
  cr_assert_eq(mps_queue_put(q, "x", 1, NAN), -EINVAL);
  cr_assert_eq(mps_queue_get(q, buf, 4, NAN), -EINVAL);
  cr_assert_eq(mps_queue_join(q, NAN), -EINVAL);
  cr_assert_eq(mps_queue_put(q, NULL, 1, 0), -EINVAL);
  cr_assert_eq(mps_queue_get(q, NULL, 4, 0), -EINVAL);
  cr_assert_eq(mps_queue_put(NULL, "x", 1, 0), -EINVAL);
  cr_assert_eq(mps_queue_put_prio(NULL, 1, "x", 1, 0), -EINVAL);
  cr_assert_eq(mps_queue_get(NULL, buf, 4, 0), -EINVAL);
  cr_assert_eq(mps_queue_put_many(NULL, NULL, NULL, 0, 0), -EINVAL);
  cr_assert_eq(mps_queue_get_many(q, buf, 4, NULL, 1, 0), -EINVAL);
  cr_assert_eq(mps_queue_task_done(NULL), -EINVAL);
  cr_assert_eq(mps_queue_join(NULL, 0), -EINVAL);
  cr_assert_eq(mps_queue_shutdown(NULL), -EINVAL);
  cr_assert_eq(mps_queue_qsize(NULL), 0);
  cr_assert(!mps_queue_empty(NULL), "NULL is nothing, not an empty queue");
  cr_assert(!mps_queue_full(NULL));
  cr_assert_eq(mps_queue_close(NULL), 0);
  mps_queue_close(q);

  mps_queue_opts bad[] = {
      {.maxsize = MPS_QUEUE_MAXSIZE_MAX + 1, .max_msg = 8, .order = MPS_FIFO},
      {.maxsize = 8, .max_msg = 8, .order = (mps_order)7},
      {.maxsize = 1 << 20, .max_msg = (size_t)1 << 30, .order = MPS_FIFO},
      {.maxsize = 8, .max_msg = 8, .reserved = {[3] = 1}},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    errno = 0;
    cr_assert_null(mps_queue_new(&bad[i]), "opts %zu", i);
    cr_assert_eq(errno, EINVAL, "opts %zu", i);
  }
  q = mps_queue_new(NULL);
  cr_assert_not_null(q);
  cr_assert_eq(mps_queue_maxsize(q), MPS_QUEUE_DEFAULT_MAXSIZE);
  cr_assert_eq(mps_queue_max_msg(q), MPS_QUEUE_DEFAULT_MAX_MSG);
  mps_queue_close(q);
}

Test(queue, task_done_and_join, .timeout = 10)
{
  q = make(4, 8, MPS_FIFO);
  cr_assert_eq(mps_queue_join(q, 0), 0, "nothing was put");
  cr_assert_eq(mps_queue_task_done(q), -EINVAL);
  put_int(q, 1);
  put_int(q, 2);
  cr_assert_eq(mps_queue_join(q, 0), -EAGAIN);
  double t0 = test_now();
  cr_assert_eq(mps_queue_join(q, 0.05), -ETIMEDOUT);
  cr_assert_geq(test_now() - t0, 0.05);
  get_int(q);
  cr_assert_eq(mps_queue_task_done(q), 0);
  cr_assert_eq(mps_queue_join(q, 0), -EAGAIN, "one task left");
  get_int(q);
  cr_assert_eq(mps_queue_task_done(q), 0);
  cr_assert_eq(mps_queue_join(q, 0), 0);
  cr_assert_eq(mps_queue_task_done(q), -EINVAL, "more task_done than puts");
  mps_queue_close(q);
}

/* ---- across processes --------------------------------------------------- */

static int sync_fds[2];

static void wait_child(void)
{
  char c;
  cr_assert_eq(read(sync_fds[0], &c, 1), 1);
}

static int blocked_getter(void *arg)
{
  (void)arg;
  if (write(sync_fds[1], "r", 1) != 1)
    return 9;
  int v = 0;
  ssize_t n = mps_queue_get(q, &v, sizeof(v), 20.0);
  if (n != sizeof(v))
    return 1;
  return v == 77 ? 0 : 2;
}

Test(queue, blocked_getter_woken_by_put, .timeout = 30)
{
  q = make(4, 8, MPS_FIFO);
  cr_assert_eq(pipe(sync_fds), 0);
  pid_t pid = child_run(blocked_getter, NULL);
  wait_child();
  wait_until_blocked(pid); /* asleep in the kernel, past its spin */
  put_int(q, 77);
  child_expect_exit(pid, 0);
  cr_assert(mps_queue_empty(q));
  mps_queue_close(q);
}

static int blocked_putter(void *arg)
{
  (void)arg;
  if (write(sync_fds[1], "r", 1) != 1)
    return 9;
  int v = 5;
  return mps_queue_put(q, &v, sizeof(v), 20.0) == 0 ? 0 : 1;
}

Test(queue, blocked_putter_woken_by_get, .timeout = 30)
{
  q = make(1, 8, MPS_FIFO);
  put_int(q, 4);
  cr_assert_eq(pipe(sync_fds), 0);
  pid_t pid = child_run(blocked_putter, NULL);
  wait_child();
  wait_until_blocked(pid);
  cr_assert_eq(get_int(q), 4);
  child_expect_exit(pid, 0);
  cr_assert_eq(get_int(q), 5);
  mps_queue_close(q);
}

static int shutdown_waiter(void *arg)
{
  bool getter = *(bool *)arg;
  if (write(sync_fds[1], "r", 1) != 1)
    return 9;
  int v = 0;
  int r =
      getter ? (int)mps_queue_get(q, &v, sizeof(v), 20.0) : mps_queue_put(q, &v, sizeof(v), 20.0);
  return r == -EPIPE ? 0 : 1;
}

Test(queue, shutdown_wakes_blocked_getters_and_putters, .timeout = 30)
{
  bool getter = true, putter = false;
  q = make(1, 8, MPS_FIFO);
  mps_queue *full = make(1, 8, MPS_FIFO);
  cr_assert_eq(pipe(sync_fds), 0);
  pid_t g[2] = {child_run(shutdown_waiter, &getter), child_run(shutdown_waiter, &getter)};
  wait_child();
  wait_child();
  wait_until_blocked(g[0]);
  wait_until_blocked(g[1]);
  cr_assert_eq(mps_queue_shutdown(q), 0);
  child_expect_exit(g[0], 0);
  child_expect_exit(g[1], 0);
  mps_queue_close(q);

  q = full;
  put_int(q, 1);
  pid_t p = child_run(shutdown_waiter, &putter);
  wait_child();
  wait_until_blocked(p);
  cr_assert_eq(mps_queue_shutdown(q), 0);
  child_expect_exit(p, 0);
  mps_queue_close(q);
}

Test(queue, get_drains_after_shutdown, .timeout = 10)
{
  q = make(4, 8, MPS_FIFO);
  put_int(q, 1);
  put_int(q, 2);
  cr_assert_eq(mps_queue_shutdown(q), 0);
  cr_assert_eq(mps_queue_put(q, "x", 1, 0), -EPIPE);
  cr_assert_eq(get_int(q), 1);
  cr_assert_eq(get_int(q), 2);
  cr_assert_eq(mps_queue_get(q, NULL, 0, MPS_FOREVER), -EPIPE, "empty and shut down");
  cr_assert_eq(mps_queue_task_done(q), 0);
  cr_assert_eq(mps_queue_task_done(q), 0);
  cr_assert_eq(mps_queue_join(q, 0), 0);
  mps_queue_close(q);
}

static int worker(void *arg)
{
  (void)arg;
  for (;;) {
    int v;
    ssize_t n = mps_queue_get(q, &v, sizeof(v), 20.0);
    if (n == -EPIPE)
      return 0;
    if (n != sizeof(v) || mps_queue_task_done(q) != 0)
      return 1;
  }
}

Test(queue, join_waits_for_task_done_in_other_processes, .timeout = 30)
{
  q = make(4, 8, MPS_FIFO);
  pid_t w[3];
  for (int i = 0; i < 3; i++)
    w[i] = child_run(worker, NULL);
  for (int i = 0; i < 50; i++)
    cr_assert_eq(mps_queue_put(q, &i, sizeof(i), 20.0), 0);
  cr_assert_eq(mps_queue_join(q, 20.0), 0);
  cr_assert(mps_queue_empty(q));
  cr_assert_eq(mps_queue_task_done(q), -EINVAL, "every put was marked done");
  mps_queue_shutdown(q);
  for (int i = 0; i < 3; i++)
    child_expect_exit(w[i], 0);
  mps_queue_close(q);
}

Test(queue, named_queue_used_by_an_execd_process, .timeout = 30)
{
  char name[64];
  test_name(name, "queue");
  mps_queue_opts o = {.maxsize = 4, .max_msg = 8, .order = MPS_FIFO};
  mps_queue *a = mps_queue_create(name, &o);
  cr_assert_not_null(a, "%s", strerror(errno));
  cr_assert_null(mps_queue_create(name, &o));
  cr_assert_eq(errno, EEXIST);
  cr_assert_null(mps_lock_open(name));
  cr_assert_eq(errno, EPROTO, "a queue is not a lock");
  put_int(a, 21);
  fflush(NULL);
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    setenv(PEER_ENV, name, 1);
    execl("/proc/self/exe", "test_queue", (char *)NULL);
    _exit(127);
  }
  child_expect_exit(pid, 0);
  mps_queue *b = mps_queue_open(name);
  cr_assert_not_null(b);
  cr_assert_eq(mps_queue_maxsize(b), 4);
  cr_assert_eq(get_int(b), 42);
  /* two puts (ours and the peer's), one task_done (the peer's) */
  cr_assert_eq(mps_queue_join(b, 0), -EAGAIN);
  cr_assert_eq(mps_queue_task_done(b), 0);
  cr_assert_eq(mps_queue_join(b, 0), 0);
  mps_queue_close(a);
  mps_queue_close(b);
  cr_assert_eq(mps_unlink(name), 0);
  cr_assert_null(mps_queue_open(name));
  cr_assert_eq(errno, ENOENT);
  cr_assert_null(mps_queue_open("a/b"));
  cr_assert_eq(errno, EINVAL);
  cr_assert_null(mps_queue_create(NULL, NULL));
  cr_assert_eq(errno, EINVAL);
  assert_no_segments_left();
}

Test(queue, batch_calls, .timeout = 10)
{
  q = make(4, 8, MPS_FIFO);
  const char *m[] = {"a", "bb", "ccc", "dddd", "eeeee", "f"};
  size_t lens[] = {1, 2, 3, 4, 5, 1};
  cr_assert_eq(mps_queue_put_many(q, (const void *const *)m, lens, 0, 0), 0);
  cr_assert_eq(mps_queue_put_many(q, (const void *const *)m, lens, 6, 0), 4, "as many as fit");
  cr_assert_eq(mps_queue_put_many(q, (const void *const *)m, lens, 6, 0), -EAGAIN);
  char buf[16];
  size_t got[8];
  cr_assert_eq(mps_queue_get_many(q, buf, 0, got, 8, 0), -EMSGSIZE, "the first does not fit");
  cr_assert_eq(mps_queue_get_many(q, buf, 4, got, 8, 0), 2, "stops at the first that does not fit");
  cr_assert_eq(got[0], 1);
  cr_assert_eq(got[1], 2);
  cr_assert_arr_eq(buf, "abb", 3);
  cr_assert_eq(mps_queue_get_many(q, buf, sizeof(buf), got, 8, 0), 2);
  cr_assert_arr_eq(buf, "cccdddd", 7);
  size_t big[] = {1, 9};
  cr_assert_eq(mps_queue_put_many(q, (const void *const *)m, big, 2, 0), -EMSGSIZE);
  cr_assert(mps_queue_empty(q), "nothing queued");
  mps_queue_close(q);

  for (int order = MPS_LIFO; order <= MPS_PRIORITY; order++) {
    q = make(8, 8, (mps_order)order);
    cr_assert_eq(mps_queue_put_many(q, (const void *const *)m, lens, 3, 0), 3);
    cr_assert_eq(mps_queue_get_many(q, buf, sizeof(buf), got, 8, 0), 3);
    const char *want = order == MPS_LIFO ? "cccbba" : "abbccc";
    cr_assert_arr_eq(buf, want, 6, "order %d", order);
    mps_queue_close(q);
  }
}

/* ---- 4 producers x 4 consumers ------------------------------------------ */

#define NPROD    4
#define NCONS    4
#define PER_PROD 100000

static uint8_t *seen; /* one counter per message, in shared memory */

static int producer(void *arg)
{
  uint32_t id = (uint32_t)(uintptr_t)arg;
  for (uint32_t i = 0; i < PER_PROD; i++) {
    uint32_t msg = id * PER_PROD + i;
    if (mps_queue_put(q, &msg, sizeof(msg), 20.0) != 0)
      return 1;
  }
  return 0;
}

static int consumer(void *arg)
{
  (void)arg;
  uint32_t last[NPROD];
  memset(last, 0xff, sizeof(last));
  for (;;) {
    uint32_t msg;
    ssize_t n = mps_queue_get(q, &msg, sizeof(msg), 20.0);
    if (n == -EPIPE)
      return 0;
    if (n != sizeof(msg) || msg >= NPROD * PER_PROD)
      return 1;
    uint32_t p = msg / PER_PROD, i = msg % PER_PROD;
    if (last[p] != UINT32_MAX && i <= last[p])
      return 2; /* FIFO: one producer's messages arrive in order */
    last[p] = i;
    __atomic_fetch_add(&seen[msg], 1, __ATOMIC_RELAXED);
  }
}

Test(queue, four_producers_four_consumers_exactly_once, .timeout = 60)
{
  q = make(1024, 8, MPS_FIFO);
  mps_array *a = mps_array_new(MPS_UINT8, NPROD * PER_PROD, false);
  cr_assert_not_null(a);
  seen = mps_array_data(a);
  pid_t c[NCONS], p[NPROD];
  for (int i = 0; i < NCONS; i++)
    c[i] = child_run(consumer, NULL);
  for (int i = 0; i < NPROD; i++)
    p[i] = child_run(producer, (void *)(uintptr_t)i);
  for (int i = 0; i < NPROD; i++)
    child_expect_exit(p[i], 0);
  mps_queue_shutdown(q); /* consumers drain what is left, then get -EPIPE */
  for (int i = 0; i < NCONS; i++)
    child_expect_exit(c[i], 0);
  for (size_t i = 0; i < NPROD * PER_PROD; i++)
    cr_assert_eq(seen[i], 1, "message %zu delivered %d times", i, seen[i]);
  mps_array_close(a);
  mps_queue_close(q);
}

/* ---- the examples ------------------------------------------------------- */

static int count_lines(const char *out, const char *what)
{
  int n = 0;
  for (const char *s = out; (s = strstr(s, what)) != NULL; s++)
    n++;
  return n;
}

Test(queue_examples, worker_queue, .timeout = 30)
{
  char out[8192];
  int status = run_example("worker_queue", (const char *[]){NULL}, out, sizeof(out));
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x: %s", status, out);
  cr_assert_eq(count_lines(out, ": working on item "), 20, "%s", out);
  const char *done = strstr(out, "main done\n");
  cr_assert_not_null(done, "%s", out);
  cr_assert_null(strstr(done, "working"), "every item was done before join returned");
}

Test(queue_examples, producer_consumer, .timeout = 30)
{
  char out[4096];
  int status =
      run_example("producer_consumer", (const char *[]){"3", "2", "50000", NULL}, out, sizeof(out));
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x: %s", status, out);
  cr_assert_not_null(strstr(out, "150000 messages in"), "%s", out);
  cr_assert_not_null(strstr(out, "every message delivered once"), "%s", out);
}

Test(queue_examples, priority_jobs, .timeout = 30)
{
  char out[4096];
  int status = run_example("priority_jobs", (const char *[]){NULL}, out, sizeof(out));
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x: %s", status, out);
  cr_assert_str_eq(out, "running: stop the runaway process\n"
                        "running: page the on-call engineer\n"
                        "running: restart the failed database\n"
                        "running: rebuild the search index\n"
                        "running: send the weekly report\n"
                        "running: rotate old logs\n"
                        "all jobs done: yes\n");
}

/* ---- damaged segments and dead waiters ---------------------------------- */

#include <fcntl.h>
#include <sys/mman.h>

/* Maps the named segment's file directly, as a forger would. */
static uint64_t *map_raw(const char *name, size_t *size)
{
  int fd = shm_open(name, O_RDWR, 0);
  cr_assert_geq(fd, 0);
  *size = (size_t)lseek(fd, 0, SEEK_END);
  void *p = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  cr_assert_neq(p, MAP_FAILED);
  return p;
}

Test(queue, forged_segments_are_refused, .timeout = 10)
{
  char name[64];
  test_name(name, "queue-forged");
  mps_queue_opts o = {.maxsize = 4, .max_msg = 8, .order = MPS_PRIORITY};
  mps_queue *a = mps_queue_create(name, &o);
  cr_assert_not_null(a);
  size_t size;
  uint64_t *raw = map_raw(name, &size);
  const size_t maxsize = offsetof(struct mps__queue_shm, maxsize) / 8;
  const size_t max_msg = offsetof(struct mps__queue_shm, max_msg) / 8;
  const size_t tail = offsetof(struct mps__queue_shm, tail) / 8;
  cr_assert_eq(raw[maxsize], 4);
  cr_assert_eq(raw[max_msg], 8);
  raw[maxsize] = 1u << 30;
  cr_assert_null(mps_queue_open(name));
  cr_assert_eq(errno, EPROTO, "a maxsize that does not match the file");
  raw[maxsize] = 4;
  raw[max_msg] = 4096;
  cr_assert_null(mps_queue_open(name));
  cr_assert_eq(errno, EPROTO);
  raw[max_msg] = 8;
  mps_queue *b = mps_queue_open(name);
  cr_assert_not_null(b, "the repaired configuration is accepted");
  /* Counters claiming more messages than fit: refused, not followed. */
  put_int(a, 1);
  cr_assert_eq(raw[tail], 1, "the tail counter");
  raw[tail] = 1000;
  int v;
  cr_assert_eq(mps_queue_get(b, &v, sizeof(v), 0), -EPROTO);
  munmap(raw, size);
  mps_queue_close(a);
  mps_queue_close(b);
  mps_unlink(name);
  assert_no_segments_left();
}

static int block_in_join(void *arg)
{
  (void)arg;
  if (write(sync_fds[1], "r", 1) != 1)
    return 9;
  if (mps_queue_join(q, MPS_FOREVER) < 0)
    return 2;
  return 1; /* never reached: killed while waiting */
}

static int block_in_get(void *arg)
{
  (void)arg;
  if (write(sync_fds[1], "r", 1) != 1)
    return 9;
  int v;
  if (mps_queue_get(q, &v, sizeof(v), MPS_FOREVER) < 0)
    return 2;
  return 1;
}

Test(queue, waiters_killed_while_blocked_cost_nothing, .timeout = 30)
{
  q = make(4, 8, MPS_FIFO);
  cr_assert_eq(pipe(sync_fds), 0);
  put_int(q, 1);
  pid_t j = child_run(block_in_join, NULL);
  wait_child();
  kill(j, SIGKILL);
  child_expect_signal(j, SIGKILL);
  cr_assert_eq(get_int(q), 1);
  cr_assert_eq(mps_queue_task_done(q), 0);
  cr_assert_eq(mps_queue_join(q, 5.0), 0, "join still works");
  pid_t g = child_run(block_in_get, NULL);
  wait_child();
  kill(g, SIGKILL);
  child_expect_signal(g, SIGKILL);
  cr_assert_eq(pipe(sync_fds), 0);
  pid_t g2 = child_run(blocked_getter, NULL); /* expects 77 */
  wait_child();
  put_int(q, 77);
  child_expect_exit(g2, 0);
  mps_queue_close(q);
}
