/* Remote queue: an mps_queue held by a Redis server (redis:// names), on a
 * stream with one consumer group.
 *
 * Server layout, for a queue NAME: the hash NAME holds the configuration
 * (magic "mpshare-queue-1", maxsize, max_msg, order, lease, shut); the
 * stream NAME:stream holds the messages (one field "m") and the consumer
 * group "mps". Every handle is a consumer of the group, named
 * host:pid:serial, registered when the handle is made (XINFO CONSUMERS
 * lists the handles) and removed by close if it holds no message. A
 * message put and never got is in the stream after the group's
 * last-delivered id; a message got is in the group's pending list (leased
 * to the consumer that got it) until task_done acknowledges it, which also
 * deletes it. So qsize = XLEN - pending, and the unfinished tasks, which
 * join waits for, are XLEN. Calls that check and change are one Lua script
 * each, atomic on the server: put checks the room and adds; the get script
 * reclaims expired leases, reads new messages and sees a shutdown. A get
 * runs that script at least every 0.1 s; in between it reads new messages
 * with one plain XREADGROUP (blocking, for a get that waits, on a
 * connection of its own so that other threads' calls go on).
 *
 * Crash semantics (at least once): a message got stays leased to its
 * consumer until its task_done. A thread of the handle renews the leases
 * it holds (XCLAIM to itself) every lease/3 seconds. A consumer that dies,
 * loses its host, or holds a message longer than the lease without
 * renewing loses it: the next get script of any consumer takes it over
 * (XAUTOCLAIM) and it is delivered again, with the same id and marked
 * redelivered. A put that returned 0 is on the server (and on its disk
 * with appendfsync always). A call that failed on the connection may or
 * may not have run on the server: a failed put may have queued its
 * messages; a failed get may have leased messages that the handle never
 * saw, which it does not renew, so they are delivered again after the
 * lease. task_done sends its acknowledgement without waiting for the
 * answer, together with the others of a batch; one that is lost leaves
 * the message to be delivered again.
 *
 * Messages a get took from the server but did not hand out (they did not
 * fit in the caller's buffer, or were prefetched) stay in the handle,
 * leased to it, and come first next time; close hands them back.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redis_conn.h"

#define MAGIC  "mpshare-queue-1"
#define ID_MAX 48
/* A get runs the full get script (expired leases, shutdown) at least this
 * often; in between it reads new messages with one XREADGROUP, and a
 * blocked get wakes this often (the server wakes it at once for a new
 * message). */
#define GET_SLICE 0.1
/* A put waiting for room and join poll the server, backing off to this. */
#define POLL_MAX_NS (20 * 1000 * 1000L)
#define POLL_MIN_NS (500 * 1000L)

/* Checks that KEYS[1] is one of our queues; m[2] is maxsize, m[3] shut. */
#define LUA_CHECK                                                                                  \
  "local m = redis.call('HMGET', KEYS[1], 'magic', 'maxsize', 'shut') "                            \
  "if m[1] ~= '" MAGIC "' then "                                                                   \
  "  if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('EPROTO mpshare queue') " \
  "end "                                                                                           \
  "  return redis.error_reply('ENOENT mpshare queue') end "

enum { S_CREATE, S_OPEN, S_PUT, S_GET, S_ACK, S_STATE, S_SHUT, S_RENEW, NSCRIPTS };

static const char *const scripts[NSCRIPTS] = {
    [S_CREATE] = "local t = redis.call('TYPE', KEYS[1])['ok'] "
                 "if t ~= 'none' then "
                 "  if t == 'hash' and redis.call('HGET', KEYS[1], 'magic') == '" MAGIC "' then "
                 "    return redis.error_reply('EEXIST mpshare queue') end "
                 "  return redis.error_reply('EPROTO mpshare queue') end "
                 "if redis.call('EXISTS', KEYS[2]) == 1 then return redis.error_reply('EPROTO "
                 "mpshare queue') end "
                 "redis.call('XGROUP', 'CREATE', KEYS[2], 'mps', '$', 'MKSTREAM') "
                 "redis.call('XGROUP', 'CREATECONSUMER', KEYS[2], 'mps', ARGV[5]) "
                 "redis.call('HSET', KEYS[1], 'magic', '" MAGIC "', 'maxsize', ARGV[1], "
                 "  'max_msg', ARGV[2], 'order', ARGV[3], 'lease', ARGV[4], 'shut', '0') "
                 "return 1",
    [S_OPEN] =
        LUA_CHECK "if redis.call('TYPE', KEYS[2])['ok'] ~= 'stream' then return "
                  "redis.error_reply('EPROTO mpshare queue') end "
                  "redis.call('XGROUP', 'CREATECONSUMER', KEYS[2], 'mps', ARGV[1]) "
                  "return redis.call('HMGET', KEYS[1], 'maxsize', 'max_msg', 'order', 'lease')",
    [S_PUT] = LUA_CHECK "if m[3] == '1' then return redis.error_reply('EPIPE mpshare queue') end "
                        "local room = tonumber(m[2]) - redis.call('XLEN', KEYS[2]) "
                        "  + redis.call('XPENDING', KEYS[2], 'mps')[1] "
                        "if room > #ARGV then room = #ARGV end "
                        "for i = 1, room do redis.call('XADD', KEYS[2], '*', 'm', ARGV[i]) end "
                        "if room < 0 then return 0 end "
                        "return room",
    /* Expired leases first (they are older), then new messages. Reply:
     * {'', id, payload, redelivered, ...} */
    [S_GET] = LUA_CHECK
    "local n = tonumber(ARGV[2]) "
    "local out = {''} "
    "local c = redis.call('XAUTOCLAIM', KEYS[2], 'mps', ARGV[1], ARGV[3], '0-0', 'COUNT', n) "
    "for _, e in ipairs(c[2]) do if type(e[2]) == 'table' then "
    "  out[#out+1] = e[1]; out[#out+1] = e[2][2]; out[#out+1] = 1 end end "
    "local k = (#out - 1) / 3 "
    "if k < n then "
    "  local r = redis.call('XREADGROUP', 'GROUP', 'mps', ARGV[1], 'COUNT', n - k, "
    "    'STREAMS', KEYS[2], '>') "
    "  if r then for _, e in ipairs(r[1][2]) do "
    "    out[#out+1] = e[1]; out[#out+1] = e[2][2]; out[#out+1] = 0 end end end "
    "if #out == 1 and m[3] == '1' then return redis.error_reply('EPIPE mpshare queue') end "
    "return out",
    /* Acknowledges and deletes ARGV (at most 64 ids); an id acknowledged
     * before (a message delivered twice) is already gone. */
    [S_ACK] = "local n = redis.call('XACK', KEYS[2], 'mps', unpack(ARGV)) "
              "redis.call('XDEL', KEYS[2], unpack(ARGV)) "
              "return n",
    [S_STATE] = LUA_CHECK "local len = redis.call('XLEN', KEYS[2]) "
                          "local q = len - redis.call('XPENDING', KEYS[2], 'mps')[1] "
                          "local shut = 0 if m[3] == '1' then shut = 1 end "
                          "return {q, len, shut}",
    [S_SHUT] = LUA_CHECK "redis.call('HSET', KEYS[1], 'shut', '1') return 1",
    /* ARGV[2] 'renew': renews the leases ARGV[3..] of consumer ARGV[1]
     * that it still holds (only those the handle knows of: a message whose
     * delivery never reached it, the reply lost with a connection, must
     * expire). 'bye': hands back ARGV[4..] (messages prefetched and never
     * got) by making them look idle for ARGV[3] ms, so the next get of
     * any consumer takes them; removes the consumer if it holds nothing. */
    [S_RENEW] =
        "if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end "
        "local bye = ARGV[2] == 'bye' "
        "local first = 3 if bye then first = 4 end "
        "local n = 0 "
        "for i = first, #ARGV do "
        "  if #redis.call('XPENDING', KEYS[2], 'mps', ARGV[i], ARGV[i], 1, ARGV[1]) == 1 then "
        "    if bye then "
        "      redis.call('XCLAIM', KEYS[2], 'mps', ARGV[1], 0, ARGV[i], 'IDLE', ARGV[3], "
        "'JUSTID') "
        "    else "
        "      redis.call('XCLAIM', KEYS[2], 'mps', ARGV[1], 0, ARGV[i], 'JUSTID') end "
        "    n = n + 1 end end "
        "if bye and #redis.call('XPENDING', KEYS[2], 'mps', '-', '+', 1, ARGV[1]) == 0 then "
        "  redis.call('XGROUP', 'DELCONSUMER', KEYS[2], 'mps', ARGV[1]) end "
        "return n",
};

/* A get's reply kept by the handle: entries [next, count) still to hand
 * out, leased to this handle. */
struct stash {
  redisReply *r;
  redisReply **el; /* the entries, in r */
  bool flat;       /* the get script's format, else XREADGROUP's */
  size_t next, count;
};

static bool stash_entry(const struct stash *st, size_t i, uint64_t max_msg, const redisReply **id,
                        const redisReply **m, bool *re);

struct mps__rq {
  mps__rurl url;
  char key[MPS_NAME_MAX + 1], skey[MPS_NAME_MAX + 8];
  uint64_t maxsize, max_msg;
  double lease;
  /* Gets, one at a time (wait_mu, taken before mu), read new messages on
   * their own connection without holding mu: puts, acknowledgements and
   * shutdowns of other threads go on while a get waits. */
  pthread_mutex_t wait_mu;
  mps__rconn rc_wait;
  double script_due;  /* when a get runs the get script again */
  pthread_mutex_t mu; /* the main connection and everything below */
  mps__rconn rc;
  pid_t pid;
  char consumer[96];
  struct stash st;
  /* Ids got and not yet task_done, oldest first (a ring). */
  char (*held)[ID_MAX];
  size_t held_head, nheld, held_cap;
  /* Acknowledgements not sent yet (ack_add). */
  char (*acks)[ID_MAX];
  size_t nacks, acks_cap;
  /* The last get's messages: ids and redelivered flags. */
  struct lastmsg {
    char id[ID_MAX];
    bool re;
  } * last;
  size_t nlast, last_cap;
  /* The lease renewer thread and its own connection. */
  pthread_cond_t cv;
  bool renewer_on, stopping;
  pthread_t renewer;
  mps__rconn rc2;
};

static unsigned long serial_next(void)
{
  static _Atomic unsigned long serial;
  return ++serial;
}

static void name_consumer(struct mps__rq *r)
{
  char host[64] = "host";
  gethostname(host, sizeof(host) - 1);
  host[sizeof(host) - 1] = '\0';
  snprintf(r->consumer, sizeof(r->consumer), "%s:%d:%lu", host, (int)getpid(), serial_next());
}

/* In a forked child: the connection, the leases and the renewer thread
 * were the parent's. Start afresh as a new consumer. */
static void after_fork(struct mps__rq *r)
{
  mps__rconn_drop(&r->rc);
  mps__rconn_drop(&r->rc2);
  if (r->st.r != NULL)
    freeReplyObject(r->st.r);
  r->st = (struct stash){0};
  r->nheld = r->held_head = 0;
  r->nacks = 0; /* the parent's */
  r->nlast = 0;
  r->renewer_on = false;
  r->stopping = false;
  r->pid = getpid();
  name_consumer(r);
}

static void rq_lock(struct mps__rq *r)
{
  pthread_mutex_lock(&r->mu);
  if (r->pid != getpid())
    after_fork(r);
}

static void rq_unlock(struct mps__rq *r) { pthread_mutex_unlock(&r->mu); }

static int acks_flush(struct mps__rq *r);

/* Runs script s on this queue's two keys with `nargs` arguments. */
static int run(struct mps__rq *r, mps__rconn *rc, const mps__deadline *d, size_t s,
               const char **args, const size_t *lens, size_t nargs, redisReply **out)
{
  if (rc == &r->rc && r->nacks > 0)
    acks_flush(r); /* pipelined ahead of this command */
  const char *small_v[16];
  size_t small_l[16];
  size_t argc = nargs + 5;
  const char **v = argc <= 16 ? small_v : malloc(argc * sizeof(*v));
  size_t *l = argc <= 16 ? small_l : malloc(argc * sizeof(*l));
  int err = -ENOMEM;
  *out = NULL;
  if (v != NULL && l != NULL) {
    v[2] = "2", l[2] = 1;
    v[3] = r->key, l[3] = strlen(r->key);
    v[4] = r->skey, l[4] = strlen(r->skey);
    for (size_t i = 0; i < nargs; i++)
      v[5 + i] = args[i], l[5 + i] = lens ? lens[i] : strlen(args[i]);
    err = mps__rconn_script(rc, &r->url, d, 0, s, (int)argc, v, l, out);
  }
  if (v != small_v)
    free(v);
  if (l != small_l)
    free(l);
  return err;
}

static int run_int(struct mps__rq *r, const mps__deadline *d, size_t s, const char **args,
                   size_t nargs, long long *val)
{
  redisReply *rep;
  int err = run(r, &r->rc, d, s, args, NULL, nargs, &rep);
  if (err == 0 && rep->type != REDIS_REPLY_INTEGER)
    err = -EPROTO;
  if (err == 0 && val != NULL)
    *val = rep->integer;
  mps__rconn_free_reply(rep);
  return err;
}

/* ---- handles -------------------------------------------------------------- */

static struct mps__rq *rq_alloc(const char *url, int *err)
{
  struct mps__rq *r = calloc(1, sizeof(*r));
  if (r == NULL) {
    *err = -ENOMEM;
    return NULL;
  }
  if ((*err = mps__rurl_parse(url, &r->url)) < 0) {
    free(r);
    return NULL;
  }
  snprintf(r->key, sizeof(r->key), "%s", r->url.name);
  snprintf(r->skey, sizeof(r->skey), "%s:stream", r->url.name);
  pthread_mutex_init(&r->mu, NULL);
  pthread_mutex_init(&r->wait_mu, NULL);
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(&r->cv, &a);
  pthread_condattr_destroy(&a);
  r->rc.scripts = r->rc2.scripts = scripts;
  r->rc.nscripts = r->rc2.nscripts = NSCRIPTS;
  r->pid = getpid();
  name_consumer(r);
  return r;
}

static void rq_free(struct mps__rq *r)
{
  mps__rconn_drop(&r->rc);
  mps__rconn_drop(&r->rc2);
  mps__rconn_drop(&r->rc_wait);
  if (r->st.r != NULL)
    freeReplyObject(r->st.r);
  pthread_mutex_destroy(&r->mu);
  pthread_mutex_destroy(&r->wait_mu);
  pthread_cond_destroy(&r->cv);
  free(r->held);
  free(r->acks);
  free(r->last);
  free(r);
}

/* Creating or opening waits for the server as long as this: a constructor
 * has no timeout of its own. */
#define CONNECT_TIMEOUT 10.0

struct mps__rq *mps__rq_create(const char *url, const mps_queue_opts *opts, int *err)
{
  mps_queue_opts o = opts ? *opts : (mps_queue_opts){0};
  o.maxsize = o.maxsize ? o.maxsize : MPS_QUEUE_DEFAULT_MAXSIZE;
  o.max_msg = o.max_msg ? o.max_msg : MPS_QUEUE_DEFAULT_MAX_MSG;
  /* Only FIFO: a stream has one order. Messages of up to 512 MB would fit
   * a Redis string; MPS_SIZE_MAX bounds it like a local queue. */
  if (o.order != MPS_FIFO || o.maxsize > MPS_QUEUE_MAXSIZE_MAX || o.max_msg > MPS_SIZE_MAX ||
      !mps__reserved_zero(o.reserved)) {
    *err = -EINVAL;
    return NULL;
  }
  struct mps__rq *r = rq_alloc(url, err);
  if (r == NULL)
    return NULL;
  r->maxsize = o.maxsize;
  r->max_msg = o.max_msg;
  r->lease = r->url.lease > 0 ? r->url.lease : MPS__LEASE_DEFAULT;
  char a[4][32];
  snprintf(a[0], 32, "%zu", o.maxsize);
  snprintf(a[1], 32, "%zu", o.max_msg);
  snprintf(a[2], 32, "%d", (int)o.order);
  snprintf(a[3], 32, "%.3f", r->lease);
  const char *args[5] = {a[0], a[1], a[2], a[3], r->consumer};
  mps__deadline d;
  mps__deadline_init(&d, CONNECT_TIMEOUT);
  *err = run_int(r, &d, S_CREATE, args, 5, NULL);
  if (*err < 0) {
    rq_free(r);
    return NULL;
  }
  return r;
}

static int parse_u64(const redisReply *e, uint64_t max, uint64_t *out)
{
  if (e->type != REDIS_REPLY_STRING)
    return -EPROTO;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(e->str, &end, 10);
  if (*end != '\0' || errno != 0 || v > max)
    return -EPROTO;
  *out = v;
  return 0;
}

struct mps__rq *mps__rq_open(const char *url, int *err)
{
  struct mps__rq *r = rq_alloc(url, err);
  if (r == NULL)
    return NULL;
  mps__deadline d;
  mps__deadline_init(&d, CONNECT_TIMEOUT);
  redisReply *rep;
  uint64_t order = 0;
  const char *args[1] = {r->consumer};
  *err = run(r, &r->rc, &d, S_OPEN, args, NULL, 1, &rep);
  if (*err == 0 && (rep->type != REDIS_REPLY_ARRAY || rep->elements != 4 ||
                    parse_u64(rep->element[0], MPS_QUEUE_MAXSIZE_MAX, &r->maxsize) < 0 ||
                    parse_u64(rep->element[1], MPS_SIZE_MAX, &r->max_msg) < 0 ||
                    parse_u64(rep->element[2], MPS_FIFO, &order) < 0 || r->maxsize == 0 ||
                    rep->element[3]->type != REDIS_REPLY_STRING))
    *err = -EPROTO;
  if (*err == 0) {
    double lease = atof(rep->element[3]->str);
    /* the bounds a URL's lease has (redis_url.c): a stored one is not trusted further */
    r->lease = r->url.lease > 0                    ? r->url.lease
               : lease >= 0.01 && lease <= 86400.0 ? lease
                                                   : MPS__LEASE_DEFAULT;
  }
  mps__rconn_free_reply(rep);
  if (*err < 0) {
    rq_free(r);
    return NULL;
  }
  return r;
}

int mps__rq_unlink(const char *url)
{
  static const char *const del_script[1] = {
      "local t = redis.call('TYPE', KEYS[1])['ok'] "
      "if t == 'none' then return redis.error_reply('ENOENT mpshare queue') end "
      "if t ~= 'hash' or redis.call('HGET', KEYS[1], 'magic') ~= '" MAGIC "' then "
      "  return redis.error_reply('EPROTO mpshare queue') end "
      "return redis.call('DEL', KEYS[1], KEYS[2])"};
  int err;
  struct mps__rq *r = rq_alloc(url, &err);
  if (r == NULL)
    return err;
  r->rc.scripts = del_script;
  r->rc.nscripts = 1;
  mps__deadline d;
  mps__deadline_init(&d, CONNECT_TIMEOUT);
  redisReply *rep;
  err = run(r, &r->rc, &d, 0, NULL, NULL, 0, &rep);
  mps__rconn_free_reply(rep);
  rq_free(r);
  return err;
}

/* ---- the lease renewer -------------------------------------------------- */

/* The renew script's arguments (mu held): the consumer, "renew", then
 * the ids of the messages the handle holds (got, or stashed). One block:
 * the pointer array, then copies of the strings. NULL if none or ENOMEM. */
static const char **lease_list(struct mps__rq *r, size_t *n)
{
  size_t ids = r->nheld + (r->st.r ? r->st.count - r->st.next : 0);
  if (ids == 0)
    return NULL;
  const char **a = malloc((ids + 2) * sizeof(*a) + sizeof(r->consumer) + ids * ID_MAX);
  if (a == NULL)
    return NULL;
  char *consumer = (char *)(a + ids + 2), *strs = consumer + sizeof(r->consumer);
  memcpy(consumer, r->consumer, sizeof(r->consumer));
  a[0] = consumer;
  a[1] = "renew";
  size_t k = 0;
  for (size_t i = 0; i < r->nheld; i++, k++)
    memcpy(strs + k * ID_MAX, r->held[(r->held_head + i) % r->held_cap], ID_MAX);
  for (size_t i = r->st.next; r->st.r != NULL && i < r->st.count; i++) {
    const redisReply *id, *m;
    bool re;
    if (stash_entry(&r->st, i, r->max_msg, &id, &m, &re))
      memcpy(strs + k++ * ID_MAX, id->str, id->len + 1);
  }
  for (size_t i = 0; i < k; i++)
    a[2 + i] = strs + i * ID_MAX;
  *n = k + 2;
  return a;
}

static void *renewer_main(void *arg)
{
  struct mps__rq *r = arg;
  pthread_mutex_lock(&r->mu);
  while (!r->stopping) {
    mps__deadline at; /* the condition variable waits on CLOCK_MONOTONIC too */
    (void)mps__deadline_init(&at, r->lease / 3);
    while (!r->stopping && pthread_cond_timedwait(&r->cv, &r->mu, &at.at) == 0) {
    }
    if (!r->stopping)
      acks_flush(r); /* those of a batch whose last task is still running */
    size_t n;
    const char **args = r->stopping ? NULL : lease_list(r, &n);
    if (args == NULL)
      continue;
    /* Renew on our own connection, without holding the handle: a get
     * blocked on the main connection must not delay it. */
    pthread_mutex_unlock(&r->mu);
    mps__deadline d;
    mps__deadline_init(&d, r->lease / 3);
    redisReply *rep;
    if (run(r, &r->rc2, &d, S_RENEW, args, NULL, n, &rep) < 0)
      mps__rconn_drop(&r->rc2); /* the next round connects again */
    mps__rconn_free_reply(rep);
    free(args);
    pthread_mutex_lock(&r->mu);
  }
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

/* With the handle locked, once it holds a lease. */
static void renewer_start(struct mps__rq *r)
{
  if (r->renewer_on)
    return;
  r->stopping = false;
  /* Without the thread leases still hold for `lease` seconds: the message
   * is only redelivered sooner, never lost. */
  r->renewer_on = pthread_create(&r->renewer, NULL, renewer_main, r) == 0;
}

void mps__rq_close(struct mps__rq *r)
{
  if (r == NULL)
    return;
  rq_lock(r);
  bool joinable = r->renewer_on;
  r->stopping = true;
  pthread_cond_broadcast(&r->cv);
  rq_unlock(r);
  if (joinable)
    pthread_join(r->renewer, NULL);
  /* Hand back what was prefetched and never got, then leave the group if
   * we hold nothing; leases of messages got and not done expire. */
  if (r->pid == getpid())
    acks_flush(r);
  if (r->rc.c != NULL && r->pid == getpid()) {
    mps__deadline d;
    mps__deadline_init(&d, 1.0);
    size_t nheld = r->nheld, n = 2;
    r->nheld = 0; /* lease_list: only the stash */
    const char **args = lease_list(r, &n);
    r->nheld = nheld;
    char lease[24];
    snprintf(lease, sizeof(lease), "%lld", (long long)(r->lease * 1000) + 1);
    const char *none[3] = {r->consumer, "bye", lease};
    /* {consumer, "renew", ids...} -> {consumer, "bye", lease, ids...} */
    const char **a = args ? malloc((n + 1) * sizeof(*a)) : NULL;
    if (a != NULL) {
      a[0] = r->consumer, a[1] = "bye", a[2] = lease;
      memcpy(a + 3, args + 2, (n - 2) * sizeof(*a));
    }
    redisReply *rep;
    run(r, &r->rc, &d, S_RENEW, a ? a : none, NULL, a ? n + 1 : 3, &rep);
    mps__rconn_free_reply(rep);
    free(a);
    free(args); /* after: a's ids point into it */
  }
  rq_free(r);
}

/* ---- put ------------------------------------------------------------------ */

/* Between two polls of the server, without the handle's lock: 0 to poll
 * again, or the deadline's error. The pause doubles up to POLL_MAX_NS. */
static int poll_wait(struct mps__rq *r, long *pause_ns, const mps__deadline *d)
{
  if (mps__deadline_passed(d))
    return mps__deadline_error(d);
  mps__deadline slice;
  mps__deadline_slice(d, *pause_ns, &slice);
  rq_unlock(r);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &slice.at, NULL) == EINTR)
    ;
  rq_lock(r);
  *pause_ns = *pause_ns * 2 > POLL_MAX_NS ? POLL_MAX_NS : *pause_ns * 2;
  return 0;
}

ssize_t mps__rq_put_many(struct mps__rq *r, const void *const *msgs, const size_t *lens, size_t n,
                         double timeout)
{
  mps__deadline d;
  ssize_t err = mps__deadline_init(&d, timeout);
  if (err < 0 || n == 0)
    return err;
  for (size_t i = 0; i < n; i++)
    if (lens[i] > r->max_msg)
      return -EMSGSIZE;
  long pause = POLL_MIN_NS;
  rq_lock(r);
  for (;;) {
    redisReply *rep;
    err = run(r, &r->rc, &d, S_PUT, (const char **)msgs, lens, n, &rep);
    if (err == 0 && rep->type != REDIS_REPLY_INTEGER)
      err = -EPROTO;
    long long k = err == 0 ? rep->integer : 0;
    mps__rconn_free_reply(rep);
    if (err == 0 && k > 0) {
      err = k;
      break;
    }
    if (err < 0 || (err = poll_wait(r, &pause, &d)) < 0)
      break;
  }
  rq_unlock(r);
  return err;
}

/* ---- get ------------------------------------------------------------------ */

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
  if (need <= *cap)
    return 0;
  size_t n = *cap ? *cap : 16;
  while (n < need)
    n *= 2;
  void *q = realloc(*p, n * size);
  if (q == NULL)
    return -ENOMEM;
  *p = q;
  *cap = n;
  return 0;
}

static int held_push(struct mps__rq *r, const char *id)
{
  if (r->nheld == r->held_cap) { /* unroll the ring into a bigger array */
    size_t cap = r->held_cap ? r->held_cap * 2 : 64;
    char(*h)[ID_MAX] = malloc(cap * ID_MAX);
    if (h == NULL)
      return -ENOMEM;
    for (size_t i = 0; i < r->nheld; i++)
      memcpy(h[i], r->held[(r->held_head + i) % r->held_cap], ID_MAX);
    free(r->held);
    r->held = h;
    r->held_cap = cap;
    r->held_head = 0;
  }
  snprintf(r->held[(r->held_head + r->nheld) % r->held_cap], ID_MAX, "%s", id);
  r->nheld++;
  return 0;
}

/* Entry i of the stash: its id, payload and whether it was delivered
 * before. A script's reply is flat (element 1 + 3i: id, payload,
 * redelivered); an XREADGROUP reply is {{stream, {{id, {"m", payload}}...}}}.
 * False for an entry that is not what we put. */
static bool stash_entry(const struct stash *st, size_t i, uint64_t max_msg, const redisReply **id,
                        const redisReply **m, bool *re)
{
  if (st->flat) {
    *id = st->el[1 + 3 * i];
    *m = st->el[2 + 3 * i];
    *re = st->el[3 + 3 * i]->type == REDIS_REPLY_INTEGER && st->el[3 + 3 * i]->integer != 0;
  } else {
    const redisReply *e = st->el[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[1]->type != REDIS_REPLY_ARRAY || e->element[1]->elements != 2)
      return false;
    *id = e->element[0];
    *m = e->element[1]->element[1];
    *re = false;
  }
  return (*id)->type == REDIS_REPLY_STRING && (*id)->len < ID_MAX &&
         (*m)->type == REDIS_REPLY_STRING && (*m)->len <= max_msg;
}

/* Hands out stashed messages into buf. Returns how many, or -EMSGSIZE (the
 * first does not fit; it stays), -EPROTO, -ENOMEM. */
static ssize_t stash_take(struct mps__rq *r, unsigned char *buf, size_t cap, size_t *lens,
                          size_t max)
{
  struct stash *st = &r->st;
  size_t k = 0, off = 0;
  if (grow((void **)&r->last, &r->last_cap, max, sizeof(*r->last)) < 0)
    return -ENOMEM;
  while (k < max && st->next < st->count) {
    const redisReply *id, *m;
    bool re;
    if (!stash_entry(st, st->next, r->max_msg, &id, &m, &re)) {
      st->next++; /* skipped: not a message of ours */
      continue;
    }
    if (m->len > cap - off || held_push(r, id->str) < 0)
      break;
    if (m->len > 0)
      memcpy(buf + off, m->str, m->len);
    off += m->len;
    lens[k] = m->len;
    memcpy(r->last[k].id, id->str, id->len + 1);
    r->last[k].re = re;
    k++;
    st->next++;
  }
  if (st->next == st->count) {
    freeReplyObject(st->r);
    *st = (struct stash){0};
  }
  if (k > 0)
    r->nlast = k;
  return k > 0 ? (ssize_t)k : (st->r != NULL ? -EMSGSIZE : 0);
}

/* The get script: reclaims expired leases, reads new messages, sees a
 * shutdown. Up to max messages into the stash; returns how many (0: none
 * now), or an error. */
static ssize_t fetch(struct mps__rq *r, const mps__deadline *d, size_t max)
{
  char count[24], lease[24];
  snprintf(count, sizeof(count), "%zu", max);
  snprintf(lease, sizeof(lease), "%lld", (long long)(r->lease * 1000));
  const char *args[3] = {r->consumer, count, lease};
  redisReply *rep;
  r->script_due = mps__now() + GET_SLICE;
  int err = run(r, &r->rc, d, S_GET, args, NULL, 3, &rep);
  if (err == 0 &&
      (rep->type != REDIS_REPLY_ARRAY || rep->elements % 3 != 1 || rep->elements / 3 > max))
    err = -EPROTO;
  if (err < 0 || rep->elements == 1) {
    mps__rconn_free_reply(rep);
    return err;
  }
  r->st = (struct stash){rep, rep->element, true, 0, rep->elements / 3};
  renewer_start(r);
  return (ssize_t)r->st.count;
}

/* The fast path: XREADGROUP of new messages on rc_wait (wait_mu held, mu
 * not), blocking for at most one slice unless d is "once". Returns the
 * reply with at least one message (in *out), 0 with none, or an error. */
static int read_new(struct mps__rq *r, const mps__deadline *d, size_t max, redisReply **out)
{
  double slice = GET_SLICE < r->lease / 4 ? GET_SLICE : r->lease / 4;
  if (d->kind == MPS__TIMED) {
    double left = (double)d->at.tv_sec + (double)d->at.tv_nsec * 1e-9 - mps__now();
    slice = left < slice ? left : slice;
  }
  bool block = d->kind != MPS__ONCE && slice >= 0.001;
  char count[24], ms[24];
  snprintf(count, sizeof(count), "%zu", max);
  snprintf(ms, sizeof(ms), "%ld", (long)(slice * 1000) + 1);
  const char *v[11] = {"XREADGROUP", "GROUP", "mps",     r->consumer, "COUNT", count,
                       "BLOCK",      ms,      "STREAMS", r->skey,     ">"};
  const char *argv[11];
  size_t lens[11];
  int argc = 0;
  for (int i = 0; i < 11; i++)
    if (block || (i != 6 && i != 7))
      argv[argc] = v[i], lens[argc++] = strlen(v[i]);
  *out = NULL;
  int err = mps__rconn_ensure(&r->rc_wait, &r->url, d);
  redisReply *rep = NULL;
  if (err == 0)
    err = mps__rconn_call(&r->rc_wait, d, block ? slice + 1 : 0, argc, argv, lens, &rep);
  if (err == 0 && rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
      rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements == 2 &&
      rep->element[0]->element[1]->type == REDIS_REPLY_ARRAY &&
      rep->element[0]->element[1]->elements > 0) {
    *out = rep;
    return 1;
  }
  mps__rconn_free_reply(rep);
  return err;
}

/* One step of a get that found the stash empty: the script when it is due
 * (every GET_SLICE, and after the fast path found nothing), else the fast
 * path. 1: the stash has messages; 0: nothing yet; or an error. */
static int get_step(struct mps__rq *r, const mps__deadline *d, size_t want)
{
  if (mps__now() >= r->script_due) {
    ssize_t n = fetch(r, d, want);
    if (n != 0)
      return n < 0 ? (int)n : 1;
    if (mps__deadline_passed(d))
      return mps__deadline_error(d);
  }
  acks_flush(r); /* the fast path uses rc_wait: send them now */
  rq_unlock(r);
  redisReply *rep;
  int n = read_new(r, d, want, &rep);
  rq_lock(r);
  if (n > 0) {
    redisReply *ents = rep->element[0]->element[1];
    r->st = (struct stash){rep, ents->element, false, 0, ents->elements};
    renewer_start(r);
    return 1;
  }
  if (n == 0 || n == -EPROTO) /* nothing, or a NOGROUP: the script says why */
    r->script_due = 0;
  return n == -EPROTO ? 0 : n;
}

ssize_t mps__rq_get_many(struct mps__rq *r, void *buf, size_t cap, size_t *lens, size_t max,
                         double timeout)
{
  mps__deadline d;
  ssize_t n = mps__deadline_init(&d, timeout);
  if (n < 0 || max == 0)
    return n;
  size_t want = max > r->url.prefetch ? max : r->url.prefetch;
  want = want > MPS__PREFETCH_MAX ? MPS__PREFETCH_MAX : want;
  pthread_mutex_lock(&r->wait_mu); /* one get at a time per handle */
  rq_lock(r);
  for (;;) {
    if (r->st.r != NULL && (n = stash_take(r, buf, cap, lens, max)) != 0)
      break;
    if ((n = get_step(r, &d, want)) < 0)
      break;
  }
  if (n < 0 && n != -EMSGSIZE)
    r->nlast = 0;
  rq_unlock(r);
  pthread_mutex_unlock(&r->wait_mu);
  return n;
}

/* ---- the other calls ------------------------------------------------------ */

/* {qsize, unfinished, shut} from the server. */
static int state(struct mps__rq *r, const mps__deadline *d, long long v[3])
{
  redisReply *rep;
  int err = run(r, &r->rc, d, S_STATE, NULL, NULL, 0, &rep);
  if (err == 0 && (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3))
    err = -EPROTO;
  for (size_t i = 0; err == 0 && i < 3; i++) {
    if (rep->element[i]->type != REDIS_REPLY_INTEGER)
      err = -EPROTO;
    else
      v[i] = rep->element[i]->integer;
  }
  mps__rconn_free_reply(rep);
  return err;
}

ssize_t mps__rq_qsize(struct mps__rq *r)
{
  mps__deadline d;
  mps__deadline_init(&d, MPS_FOREVER);
  long long v[3];
  rq_lock(r);
  int err = state(r, &d, v);
  rq_unlock(r);
  if (err < 0)
    return err;
  return v[0] < 0 ? 0 : (v[0] > (long long)r->maxsize ? (ssize_t)r->maxsize : (ssize_t)v[0]);
}

size_t mps__rq_maxsize(const struct mps__rq *r) { return r->maxsize; }
size_t mps__rq_max_msg(const struct mps__rq *r) { return r->max_msg; }

/* Sends the acknowledgements waiting in r->acks, in one script call,
 * without waiting for the server's answer (read by the next call on rc):
 * task_done costs a write, not a round trip. If the connection fails
 * before they arrive, the leases expire and the messages are delivered
 * again: at least once, never lost. mu held. */
static int acks_flush(struct mps__rq *r)
{
  if (r->nacks == 0)
    return 0;
  size_t n = r->nacks;
  r->nacks = 0;
  mps__deadline d;
  mps__deadline_init(&d, CONNECT_TIMEOUT);
  int err = mps__rconn_ensure(&r->rc, &r->url, &d);
  const char **v = malloc((n + 5) * sizeof(*v));
  size_t *l = malloc((n + 5) * sizeof(*l));
  if (err == 0 && (v == NULL || l == NULL))
    err = -ENOMEM;
  if (err == 0) {
    v[0] = "EVALSHA", v[1] = r->rc.sha[S_ACK], v[2] = "2", v[3] = r->key, v[4] = r->skey;
    for (size_t i = 0; i < n; i++)
      v[5 + i] = r->acks[i];
    for (size_t i = 0; i < n + 5; i++)
      l[i] = strlen(v[i]);
    err = mps__rconn_send(&r->rc, (int)(n + 5), v, l);
  }
  free(v);
  free(l);
  return err;
}

/* Queues the acknowledgement of id (mu held). They are sent together once
 * the handle holds no other message (the last task_done of a batch), at
 * 64, before the handle's next call, or by the renewer thread. */
static int ack_add(struct mps__rq *r, const char *id, bool now)
{
  if (grow((void **)&r->acks, &r->acks_cap, r->nacks + 1, ID_MAX) < 0)
    return -ENOMEM;
  memcpy(r->acks[r->nacks++], id, ID_MAX);
  if (now || r->nacks >= 64 || (r->nheld == 0 && r->st.r == NULL))
    return acks_flush(r);
  return 0;
}

int mps__rq_task_done(struct mps__rq *r)
{
  rq_lock(r);
  int err = -EINVAL; /* this handle holds no message */
  if (r->nheld > 0) {
    char id[ID_MAX];
    memcpy(id, r->held[r->held_head], ID_MAX);
    /* Forgotten even if the acknowledgement fails: no longer renewed, the
     * message is delivered again after the lease, never left held. */
    r->held_head = (r->held_head + 1) % r->held_cap;
    r->nheld--;
    err = ack_add(r, id, false);
  }
  rq_unlock(r);
  return err;
}

int mps__rq_ack_id(struct mps__rq *r, const char *id)
{
  if (id == NULL || strlen(id) >= ID_MAX)
    return -EINVAL;
  rq_lock(r);
  /* Forget it among our leases, wherever it is in the ring. */
  for (size_t i = 0; i < r->nheld; i++) {
    size_t at = (r->held_head + i) % r->held_cap;
    if (strcmp(r->held[at], id) != 0)
      continue;
    for (size_t j = i; j > 0; j--)
      memcpy(r->held[(r->held_head + j) % r->held_cap],
             r->held[(r->held_head + j - 1) % r->held_cap], ID_MAX);
    r->held_head = (r->held_head + 1) % r->held_cap;
    r->nheld--;
    break;
  }
  char copy[ID_MAX] = {0};
  snprintf(copy, sizeof(copy), "%s", id);
  int err = ack_add(r, copy, true);
  rq_unlock(r);
  return err;
}

int mps__rq_join(struct mps__rq *r, double timeout)
{
  mps__deadline d;
  int err = mps__deadline_init(&d, timeout);
  if (err < 0)
    return err;
  long pause = POLL_MIN_NS;
  rq_lock(r);
  for (;;) {
    long long v[3];
    if ((err = state(r, &d, v)) < 0 || v[1] == 0 || (err = poll_wait(r, &pause, &d)) < 0)
      break;
  }
  rq_unlock(r);
  return err;
}

int mps__rq_shutdown(struct mps__rq *r)
{
  mps__deadline d;
  mps__deadline_init(&d, CONNECT_TIMEOUT);
  rq_lock(r);
  int err = run_int(r, &d, S_SHUT, NULL, 0, NULL);
  rq_unlock(r);
  return err;
}

int mps__rq_msg_id(struct mps__rq *r, size_t i, char *buf, size_t cap)
{
  rq_lock(r);
  int err = -EINVAL;
  if (i < r->nlast) {
    size_t n = strlen(r->last[i].id);
    err = n < cap ? (int)n : -EMSGSIZE;
    if (err >= 0)
      memcpy(buf, r->last[i].id, n + 1);
  }
  rq_unlock(r);
  return err;
}

int mps__rq_redelivered(struct mps__rq *r, size_t i)
{
  rq_lock(r);
  int v = i < r->nlast ? r->last[i].re : -EINVAL;
  rq_unlock(r);
  return v;
}
