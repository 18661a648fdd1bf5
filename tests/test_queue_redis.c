/* Remote queues (redis:// names) against a real redis-server started by
 * each test on a free loopback port: the local queue's semantics, leases
 * and redelivery with killed and stopped consumers, and the faults (bad
 * URL, foreign key, wrong password, refused connection, server killed and
 * restarted mid-run). */
#include "redis_helpers.h"

#include <mpshare.h>
#include <pthread.h>
#include <stdatomic.h>

TestSuite(queue_redis, .init = redis_up, .fini = redis_down, .timeout = 60);

static mps_queue *make(const char *url, size_t maxsize, size_t max_msg)
{
  mps_queue_opts o = {.maxsize = maxsize, .max_msg = max_msg};
  mps_queue *q = mps_queue_create(url, &o);
  cr_assert_not_null(q, "create %s: %s", url, strerror(errno));
  return q;
}

static void put_int(mps_queue *q, int v) { cr_assert_eq(mps_queue_put(q, &v, sizeof(v), 5), 0); }

static int get_int(mps_queue *q, double timeout)
{
  int v;
  ssize_t n = mps_queue_get(q, &v, sizeof(v), timeout);
  cr_assert_eq(n, (ssize_t)sizeof(v), "get: %s", mps_strerror((int)n));
  return v;
}

Test(queue_redis_url, bad_urls_are_einval)
{
  static const char *bad[] = {
      "redis://",
      "redis://host",
      "redis://host/",
      "redis://:1/q",
      "redis://h:0/q",
      "redis://h:65536/q",
      "redis://h:x/q",
      "redis://h/0/",
      "redis://h/a/b/c",
      "redis://h/x/q",
      "redis://h/q?lease=abc",
      "redis://h/q?lease=0",
      "redis://h/q?foo=1",
      "redis://h/q?lease=1&lease=2",
      "redis://h/q?password=%zz",
      "redis://h/.",
      "redis://h/q?",
      "redis://[::1/q",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    errno = 0;
    cr_expect_null(mps_queue_open(bad[i]), "%s", bad[i]);
    int e = errno;
    if (e != ENOTSUP) /* a build without hiredis refuses every redis:// name */
      cr_expect_eq(e, EINVAL, "%s: %s", bad[i], strerror(e));
    int r = mps_unlink(bad[i]);
    cr_expect(r == -EINVAL || r == -ENOTSUP, "unlink %s: %d", bad[i], r);
  }
}

Test(queue_redis, fifo_sizes_and_limits)
{
  char url[256];
  mps_queue *q = make(rurl(url, "fifo", ""), 4, 16);
  cr_expect(mps_queue_empty(q));
  for (int i = 0; i < 4; i++)
    put_int(q, i);
  cr_expect_eq(mps_queue_qsize(q), 4);
  cr_expect(mps_queue_full(q));
  int v = 9;
  cr_expect_eq(mps_queue_put(q, &v, sizeof(v), 0), -EAGAIN);
  double t0 = test_now();
  cr_expect_eq(mps_queue_put(q, &v, sizeof(v), 0.2), -ETIMEDOUT);
  cr_expect_geq(test_now() - t0, 0.19);
  char big[17] = {0};
  cr_expect_eq(mps_queue_put(q, big, 17, 0), -EMSGSIZE);
  char small[2];
  cr_expect_eq(mps_queue_get(q, small, sizeof(small), 0), -EMSGSIZE);
  for (int i = 0; i < 4; i++)
    cr_expect_eq(get_int(q, 0), i);
  cr_expect_eq(mps_queue_qsize(q), 0);
  cr_expect_eq(mps_queue_get(q, &v, sizeof(v), 0), -EAGAIN);
  t0 = test_now();
  cr_expect_eq(mps_queue_get(q, &v, sizeof(v), 0.2), -ETIMEDOUT);
  cr_expect_geq(test_now() - t0, 0.19);
  cr_expect_eq(mps_queue_put(q, NULL, 0, 0), 0); /* empty message */
  cr_expect_eq(mps_queue_get(q, NULL, 0, 0), 0);
  for (int i = 0; i < 5; i++)
    cr_expect_eq(mps_queue_task_done(q), 0);
  cr_expect_eq(mps_queue_task_done(q), -EINVAL);
  cr_expect_eq(mps_queue_join(q, 1), 0);
  mps_queue_close(q);
  cr_expect_eq(mps_unlink(url), 0);
  cr_expect_eq(mps_unlink(url), -ENOENT);
}

Test(queue_redis, create_open_unlink)
{
  char url[256];
  mps_queue *q = make(rurl(url, "names", "?lease=2"), 8, 100);
  cr_expect_null(mps_queue_create(url, NULL));
  cr_expect_eq(errno, EEXIST);
  mps_queue *o = mps_queue_open(url);
  cr_assert_not_null(o, "%s", strerror(errno));
  cr_expect_eq(mps_queue_maxsize(o), 8);
  cr_expect_eq(mps_queue_max_msg(o), 100);
  put_int(q, 7);
  cr_expect_eq(get_int(o, 1), 7);
  char id[64];
  cr_expect_gt(mps_queue_msg_id(o, 0, id, sizeof(id)), 0);
  cr_expect_eq(mps_queue_redelivered(o, 0), 0);
  cr_expect_eq(mps_queue_msg_id(o, 1, id, sizeof(id)), -EINVAL);
  cr_expect_eq(mps_unlink(url), 0);
  cr_expect_null(mps_queue_open(url));
  cr_expect_eq(errno, ENOENT);
  cr_expect_eq(mps_queue_put(q, id, 1, 0), -ENOENT);
  mps_queue_close(q);
  mps_queue_close(o);

  mps_queue_opts lifo = {.order = MPS_LIFO};
  cr_expect_null(mps_queue_create(rurl(url, "lifo", ""), &lifo));
  cr_expect_eq(errno, EINVAL);
  mps_queue_opts prio = {.order = MPS_PRIORITY};
  cr_expect_null(mps_queue_create(url, &prio));
  cr_expect_eq(errno, EINVAL);
}

Test(queue_redis, foreign_key_is_eproto)
{
  char url[256], cmd[300], reply[64];
  rurl(url, "foreign", "");
  snprintf(cmd, sizeof(cmd), "SET %s hello", strrchr(url, '/') + 1);
  cr_assert_eq(redis_raw(srv.port, cmd, reply, sizeof(reply)), 0);
  cr_assert_str_eq(reply, "+OK");
  cr_expect_null(mps_queue_open(url));
  cr_expect_eq(errno, EPROTO);
  cr_expect_null(mps_queue_create(url, NULL));
  cr_expect_eq(errno, EPROTO);
  cr_expect_eq(mps_unlink(url), -EPROTO);
  cr_expect_null(mps_queue_open(rurl(url, "missing", "")));
  cr_expect_eq(errno, ENOENT);
}

Test(queue_redis, batches)
{
  char url[256];
  mps_queue *q = make(rurl(url, "batch", ""), 10, 8);
  const void *msgs[12];
  size_t lens[12];
  char data[12][16];
  for (int i = 0; i < 12; i++) {
    snprintf(data[i], sizeof(data[i]), "m%d", i % 100); /* two digits: no truncation */
    msgs[i] = data[i];
    lens[i] = strlen(data[i]);
  }
  cr_expect_eq(mps_queue_put_many(q, msgs, lens, 12, 0), 10); /* as many as fit */
  char buf[64];
  size_t got[12];
  /* 15 bytes of buffer hold m0..m6 (7 x 2 bytes) and not m7. */
  cr_expect_eq(mps_queue_get_many(q, buf, 15, got, 12, 0), 7);
  cr_expect_eq(memcmp(buf, "m0m1m2m3m4m5m6", 14), 0);
  cr_expect_eq(mps_queue_get_many(q, buf, sizeof(buf), got, 12, 0), 3);
  cr_expect_eq(memcmp(buf, "m7m8m9", 6), 0);
  char id0[64], id2[64];
  cr_expect_gt(mps_queue_msg_id(q, 0, id0, sizeof(id0)), 0);
  cr_expect_gt(mps_queue_msg_id(q, 2, id2, sizeof(id2)), 0);
  cr_expect_str_neq(id0, id2);
  for (int i = 0; i < 10; i++)
    cr_expect_eq(mps_queue_task_done(q), 0);
  cr_expect_eq(mps_queue_join(q, 2), 0);
  mps_queue_close(q);
  mps_unlink(url);
}

/* ---- several processes ---------------------------------------------------- */

#define N_MSGS 400

static char shared_url[256];

static int producer(void *arg)
{
  int base = *(int *)arg;
  mps_queue *q = mps_queue_open(shared_url);
  if (q == NULL)
    return 10;
  for (int i = 0; i < N_MSGS / 2; i++) {
    int v = base + i;
    if (mps_queue_put(q, &v, sizeof(v), 10) != 0)
      return 11;
  }
  mps_queue_close(q);
  return 0;
}

static int consumer(void *arg)
{
  mps_value *seen = arg;
  mps_queue *q = mps_queue_open(shared_url);
  if (q == NULL)
    return 10;
  for (;;) {
    int v;
    ssize_t n = mps_queue_get(q, &v, sizeof(v), 10);
    if (n == -EPIPE)
      break;
    if (n != sizeof(v) || v < 0 || v >= N_MSGS)
      return 11;
    atomic_fetch_add((_Atomic int *)mps_value_ptr(seen) + v, 1);
    if (mps_queue_task_done(q) != 0)
      return 12;
  }
  mps_queue_close(q);
  return 0;
}

Test(queue_redis, two_to_two_processes_join)
{
  mps_queue *q = make(rurl(shared_url, "p2p", ""), 16, 16);
  mps_value *seen = mps_value_new_sized(sizeof(_Atomic int) * N_MSGS, false);
  cr_assert_not_null(seen);
  int base[2] = {0, N_MSGS / 2};
  pid_t p[4] = {child_run(producer, &base[0]), child_run(producer, &base[1]),
                child_run(consumer, seen), child_run(consumer, seen)};
  child_expect_exit(p[0], 0);
  child_expect_exit(p[1], 0);
  cr_expect_eq(mps_queue_join(q, 20), 0);
  cr_expect_eq(mps_queue_shutdown(q), 0);
  int v = 0;
  cr_expect_eq(mps_queue_put(q, &v, sizeof(v), 0), -EPIPE);
  child_expect_exit(p[2], 0);
  child_expect_exit(p[3], 0);
  _Atomic int *s = mps_value_ptr(seen);
  for (int i = 0; i < N_MSGS; i++)
    cr_expect_eq(s[i], 1, "message %d seen %d times", i, (int)s[i]);
  mps_value_close(seen);
  mps_queue_close(q);
  mps_unlink(shared_url);
}

static int blocked_getter(void *arg)
{
  (void)arg;
  mps_queue *q = mps_queue_open(shared_url);
  int v;
  ssize_t n = mps_queue_get(q, &v, sizeof(v), 20);
  ssize_t n2 = mps_queue_get(q, &v, sizeof(v), 20);
  mps_queue_close(q);
  return n == sizeof(v) && v == 42 && n2 == -EPIPE ? 0 : 1;
}

Test(queue_redis, shutdown_drains_then_epipe_and_wakes_getters)
{
  mps_queue *q = make(rurl(shared_url, "shut", ""), 4, 16);
  pid_t c = child_run(blocked_getter, NULL);
  put_int(q, 42);
  /* The child took the 42 (qsize back to 0 with one unfinished) and is
   * then blocked in its second get. */
  while (mps_queue_qsize(q) != 0)
    sched_yield();
  cr_expect_eq(mps_queue_shutdown(q), 0);
  child_expect_exit(c, 0);
  int v = 1;
  cr_expect_eq(mps_queue_put(q, &v, sizeof(v), 0), -EPIPE);
  mps_queue_close(q);
  mps_unlink(shared_url);
}

Test(queue_redis, shutdown_lets_gets_drain)
{
  char url[256];
  mps_queue *q = make(rurl(url, "drain", ""), 4, 16);
  put_int(q, 1);
  put_int(q, 2);
  cr_expect_eq(mps_queue_shutdown(q), 0);
  cr_expect_eq(get_int(q, 0), 1);
  cr_expect_eq(get_int(q, 0), 2);
  int v;
  cr_expect_eq(mps_queue_get(q, &v, sizeof(v), MPS_FOREVER), -EPIPE);
  mps_queue_close(q);
  mps_unlink(url);
}

/* ---- leases: killed, stopped and slow consumers ----------------------------- */

struct holder {
  int ready[2]; /* the holder writes a byte once it got the message */
  double work;  /* seconds it works before task_done (0: never) */
};

static int hold_message(void *arg)
{
  struct holder *h = arg;
  close(h->ready[0]);
  mps_queue *q = mps_queue_open(shared_url);
  int v;
  if (q == NULL || mps_queue_get(q, &v, sizeof(v), 10) != sizeof(v))
    return 10;
  pipe_put(h->ready[1]);
  if (h->work == 0)
    for (;;)
      pause(); /* killed here, between get and task_done */
  struct timespec t = {(time_t)h->work, (long)((h->work - (int)h->work) * 1e9)};
  nanosleep(&t, NULL); /* working on the message, holding its lease */
  int r = mps_queue_task_done(q);
  mps_queue_close(q);
  return r == 0 ? 0 : 11;
}

static pid_t start_holder(struct holder *h)
{
  cr_assert_eq(pipe(h->ready), 0);
  pid_t c = child_run(hold_message, h);
  close(h->ready[1]);
  pipe_get(h->ready[0]);
  close(h->ready[0]);
  return c;
}

Test(queue_redis, consumer_killed_between_get_and_task_done)
{
  mps_queue *q = make(rurl(shared_url, "killed", "?lease=0.5"), 8, 16);
  put_int(q, 5);
  struct holder h = {.work = 0};
  pid_t c = start_holder(&h);
  cr_expect_eq(mps_queue_join(q, 0.2), -ETIMEDOUT);
  kill(c, SIGKILL);
  child_expect_signal(c, SIGKILL);
  /* Another consumer gets it again once the lease ran out, as a
   * redelivery of the same message. */
  mps_queue *o = mps_queue_open(shared_url);
  cr_assert_not_null(o);
  double t0 = test_now();
  cr_expect_eq(get_int(o, 5), 5);
  cr_expect_lt(test_now() - t0, 2.0);
  cr_expect_eq(mps_queue_redelivered(o, 0), 1);
  cr_expect_eq(mps_queue_task_done(o), 0);
  cr_expect_eq(mps_queue_join(q, 5), 0);
  mps_queue_close(o);
  mps_queue_close(q);
  mps_unlink(shared_url);
}

Test(queue_redis, stopped_consumer_loses_its_lease)
{
  /* SIGSTOP stands for a host that vanished: its renewer stops too. */
  mps_queue *q = make(rurl(shared_url, "stopped", "?lease=0.3"), 8, 16);
  put_int(q, 6);
  struct holder h = {.work = 0};
  pid_t c = start_holder(&h);
  kill(c, SIGSTOP);
  cr_expect_eq(get_int(q, 5), 6);
  cr_expect_eq(mps_queue_redelivered(q, 0), 1);
  cr_expect_eq(mps_queue_task_done(q), 0);
  cr_expect_eq(mps_queue_join(q, 5), 0);
  kill(c, SIGKILL);
  child_expect_signal(c, SIGKILL);
  mps_queue_close(q);
  mps_unlink(shared_url);
}

Test(queue_redis, live_consumer_renews_its_lease)
{
  /* The holder works 4 leases long; its renewer keeps the message. */
  mps_queue *q = make(rurl(shared_url, "renew", "?lease=0.3"), 8, 16);
  put_int(q, 7);
  struct holder h = {.work = 1.2};
  pid_t c = start_holder(&h);
  int v;
  cr_expect_eq(mps_queue_get(q, &v, sizeof(v), 0.9), -ETIMEDOUT);
  child_expect_exit(c, 0);
  cr_expect_eq(mps_queue_join(q, 5), 0);
  cr_expect_eq(mps_queue_get(q, &v, sizeof(v), 0), -EAGAIN);
  mps_queue_close(q);
  mps_unlink(shared_url);
}

static int use_inherited(void *arg)
{
  mps_queue *q = arg; /* opened by the parent before fork */
  int v = 0;
  if (mps_queue_get(q, &v, sizeof(v), 5) != sizeof(v) || mps_queue_task_done(q) != 0)
    return 10;
  return v == 8 ? 0 : 11;
}

Test(queue_redis, handle_inherited_through_fork)
{
  mps_queue *q = make(rurl(shared_url, "fork", ""), 8, 16);
  put_int(q, 8);
  child_expect_exit(child_run(use_inherited, q), 0);
  cr_expect_eq(mps_queue_join(q, 5), 0);
  put_int(q, 9); /* the parent's connection still works */
  cr_expect_eq(get_int(q, 1), 9);
  mps_queue_close(q);
  mps_unlink(shared_url);
}

/* ---- faults ------------------------------------------------------------------ */

Test(queue_redis, refused_connection)
{
  char url[256];
  snprintf(url, sizeof(url), "redis://127.0.0.1:%d/refused", free_port());
  double t0 = test_now();
  cr_expect_null(mps_queue_open(url));
  cr_expect_eq(errno, ECONNREFUSED);
  cr_expect_null(mps_queue_create(url, NULL));
  cr_expect_eq(errno, ECONNREFUSED);
  cr_expect_eq(mps_unlink(url), -ECONNREFUSED);
  cr_expect_lt(test_now() - t0, 1.0);
}

Test(queue_redis, connection_lost_mid_call_then_reconnects)
{
  mps_queue *q = make(rurl(shared_url, "lost", ""), 8, 16);
  put_int(q, 1);
  cr_expect_eq(get_int(q, 1), 1);
  redis_kill(&srv, SIGKILL);
  int v = 2;
  int r = mps_queue_put(q, &v, sizeof(v), 1);
  cr_expect(r == -ECONNRESET || r == -ECONNREFUSED, "put to a dead server: %d", r);
  cr_expect_eq(mps_queue_put(q, &v, sizeof(v), 1), -ECONNREFUSED);
  redis_start(&srv); /* empty again: appendonly is off */
  mps_queue_close(q);
  q = make(shared_url, 8, 16); /* the queue is gone with the data */
  put_int(q, 3);
  cr_expect_eq(get_int(q, 1), 3);
  mps_queue_close(q);
}

Test(queue_redis, get_blocked_when_server_dies)
{
  mps_queue *q = make(rurl(shared_url, "blockdie", ""), 8, 16);
  pid_t c = fork();
  cr_assert(c >= 0);
  if (c == 0) { /* kill the server while the parent waits in get */
    struct timespec t = {0, 300000000};
    nanosleep(&t, NULL);
    kill(srv.pid, SIGKILL);
    _exit(0);
  }
  int v;
  double t0 = test_now();
  ssize_t n = mps_queue_get(q, &v, sizeof(v), 10);
  cr_expect(n == -ECONNRESET || n == -ECONNREFUSED, "get: %zd", n);
  cr_expect_lt(test_now() - t0, 3.0);
  child_expect_exit(c, 0);
  child_wait(srv.pid);
  srv.pid = 0;
  redis_start(&srv);
  mps_queue_close(q);
}

Test(queue_redis_auth, wrong_password_is_eacces, .init = NULL, .fini = redis_down, .timeout = 30)
{
  redis_up_with("--requirepass s3cret");
  char url[256];
  cr_expect_null(mps_queue_create(rurl(url, "auth", "?password=nope"), NULL));
  cr_expect_eq(errno, EACCES);
  cr_expect_null(mps_queue_create(rurl(url, "auth", ""), NULL));
  cr_expect_eq(errno, EACCES);
  mps_queue *q = mps_queue_create(rurl(url, "auth", "?password=s3%63ret"), NULL);
  cr_assert_not_null(q, "%s", strerror(errno));
  put_int(q, 1);
  cr_expect_eq(get_int(q, 1), 1);
  mps_queue_close(q);
  cr_expect_eq(mps_unlink(url), 0);
}

/* ---- the server killed and restarted mid-run ---------------------------------- */

#define N_DURABLE 600

struct durable {
  _Atomic int seen[N_DURABLE];
  _Atomic int got;
};

static int durable_producer(void *arg)
{
  (void)arg;
  mps_queue *q = NULL;
  for (int i = 0; i < N_DURABLE; i++) {
    /* Retry until the put is acknowledged: a failed put may also have
     * been queued, so the consumer may see i twice, never zero times. */
    for (int tries = 0;; tries++) {
      if (tries > 2000)
        return 10;
      if (q == NULL)
        q = mps_queue_open(shared_url);
      if (q != NULL && mps_queue_put(q, &i, sizeof(i), 1) == 0)
        break;
      struct timespec t = {0, 5000000};
      nanosleep(&t, NULL); /* the server is restarting */
    }
  }
  mps_queue_close(q);
  return 0;
}

static int durable_consumer(void *arg)
{
  struct durable *d = arg;
  mps_queue *q = NULL;
  for (int fails = 0; fails < 2000;) {
    if (q == NULL && (q = mps_queue_open(shared_url)) == NULL) {
      fails++;
      struct timespec t = {0, 5000000};
      nanosleep(&t, NULL);
      continue;
    }
    int v;
    ssize_t n = mps_queue_get(q, &v, sizeof(v), 1);
    if (n == -EPIPE)
      return 0;
    if (n == sizeof(v) && v >= 0 && v < N_DURABLE) {
      atomic_fetch_add(&d->seen[v], 1);
      atomic_fetch_add(&d->got, 1);
      mps_queue_task_done(q); /* lost if the server dies now: redelivered */
    } else if (n != -ETIMEDOUT) {
      fails++;
      struct timespec t = {0, 5000000};
      nanosleep(&t, NULL);
    }
  }
  return 10;
}

Test(queue_redis_durable, server_killed_and_restarted_loses_nothing_acknowledged, .init = NULL,
     .fini = redis_down, .timeout = 90)
{
  redis_up_with("--appendonly yes --appendfsync always");
  mps_queue *q = make(rurl(shared_url, "durable", "?lease=1"), 64, 16);
  mps_value *v = mps_value_new_sized(sizeof(struct durable), false);
  struct durable *d = mps_value_ptr(v);
  pid_t p = child_run(durable_producer, NULL);
  pid_t c = child_run(durable_consumer, d);
  while (atomic_load(&d->got) < N_DURABLE / 3)
    sched_yield();
  redis_kill(&srv, SIGKILL);
  redis_start(&srv); /* same port and directory: it reads its AOF back */
  child_expect_exit(p, 0);
  /* Every put was acknowledged: each message must come out, at least once. */
  for (int i = 0; i < N_DURABLE; i++)
    while (atomic_load(&d->seen[i]) == 0)
      sched_yield();
  int jr = mps_queue_join(q, 20);
  cr_expect_eq(jr, 0, "join: %s, qsize %zu", mps_strerror(jr), mps_queue_qsize(q));
  cr_expect_eq(mps_queue_shutdown(q), 0);
  child_expect_exit(c, 0);
  int dups = 0;
  for (int i = 0; i < N_DURABLE; i++)
    dups += atomic_load(&d->seen[i]) - 1;
  cr_log_info("server restart: %d of %d messages delivered twice", dups, N_DURABLE);
  mps_value_close(v);
  mps_queue_close(q);
}

Test(queue_redis, prefetch_and_hand_back_at_close)
{
  char url[256], purl[300];
  mps_queue *q = make(rurl(url, "prefetch", ""), 16, 16);
  snprintf(purl, sizeof(purl), "%s?prefetch=8", url);
  mps_queue *a = mps_queue_open(purl);
  cr_assert_not_null(a);
  for (int i = 0; i < 8; i++)
    put_int(q, i);
  cr_expect_eq(get_int(a, 1), 0);
  cr_expect_eq(mps_queue_qsize(q), 0); /* the other 7 are leased to a */
  int v;
  cr_expect_eq(mps_queue_get(q, &v, sizeof(v), 0), -EAGAIN);
  cr_expect_eq(mps_queue_task_done(a), 0);
  mps_queue_close(a); /* hands back the 7 it never got */
  for (int i = 1; i < 8; i++) {
    cr_expect_eq(get_int(q, 2), i);
    cr_expect_eq(mps_queue_task_done(q), 0);
  }
  cr_expect_eq(mps_queue_join(q, 2), 0);
  mps_queue_close(q);
  mps_unlink(url);
}

Test(queue_redis, batch_acknowledgements_go_together)
{
  char url[256];
  mps_queue *q = make(rurl(url, "acks", ""), 16, 16);
  for (int i = 0; i < 4; i++)
    put_int(q, i);
  char buf[64];
  size_t lens[4];
  cr_expect_eq(mps_queue_get_many(q, buf, sizeof(buf), lens, 4, 1), 4);
  for (int i = 0; i < 3; i++)
    cr_expect_eq(mps_queue_task_done(q), 0);
  cr_expect_eq(mps_queue_join(q, 0), -EAGAIN); /* the 4th is not done */
  cr_expect_eq(mps_queue_task_done(q), 0);
  cr_expect_eq(mps_queue_join(q, 2), 0);
  mps_queue_close(q);
  mps_unlink(url);
}

Test(queue_redis, server_that_stops_answering_times_out)
{
  mps_queue *q = make(rurl(shared_url, "silent", ""), 8, 16);
  put_int(q, 1);
  kill(srv.pid, SIGSTOP); /* the host is there, the server does not answer */
  int v = 2;
  double t0 = test_now();
  cr_expect_eq(mps_queue_put(q, &v, sizeof(v), 0.3), -ETIMEDOUT);
  cr_expect_lt(test_now() - t0, 1.5);
  t0 = test_now();
  cr_expect_eq(mps_queue_get(q, &v, sizeof(v), 0.3), -ETIMEDOUT);
  cr_expect_lt(test_now() - t0, 1.5);
  kill(srv.pid, SIGCONT);
  /* The handle connects again; the first message is still there. */
  int r = mps_queue_get(q, &v, sizeof(v), 5);
  cr_expect_eq(r, (int)sizeof(v), "get after the server answers again: %d", r);
  cr_expect_eq(v, 1);
  mps_queue_close(q);
  mps_unlink(shared_url);
}

struct thread_arg {
  mps_queue *q;
  int got;
};

static void *thread_getter(void *arg)
{
  struct thread_arg *a = arg;
  int v;
  while (mps_queue_get(a->q, &v, sizeof(v), 5) == sizeof(v)) {
    a->got++;
    if (mps_queue_task_done(a->q) != 0)
      break;
  }
  return NULL;
}

Test(queue_redis, one_handle_two_threads)
{
  mps_queue *q = make(rurl(shared_url, "threads", ""), 64, 16);
  struct thread_arg a[2] = {{q, 0}, {q, 0}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    cr_assert_eq(pthread_create(&t[i], NULL, thread_getter, &a[i]), 0);
  for (int i = 0; i < 200; i++)
    put_int(q, i); /* from this thread while the two others get */
  cr_expect_eq(mps_queue_join(q, 20), 0);
  cr_expect_eq(mps_queue_shutdown(q), 0);
  for (int i = 0; i < 2; i++)
    pthread_join(t[i], NULL);
  cr_expect_eq(a[0].got + a[1].got, 200);
  mps_queue_close(q);
  mps_unlink(shared_url);
}
