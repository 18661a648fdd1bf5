/* The pool across hosts: submitters and worker hosts meeting at a remote
 * queue (queue_redis.c), with named task functions.
 *
 * Messages (little-endian, so that hosts of another byte order agree):
 * a task is {magic, flags, id, name length, reply length} then the task
 * name, the key of the submitter's result queue and the argument bytes; a
 * result is {id, ret} then the result bytes. The task queue is the URL's;
 * each submitter owns a result queue on the same server (key
 * "mps-reply-HOST-PID-N"), drained by its collector thread into futures
 * (future.c, the same futures as a local pool's), found by task id in a
 * process-private table.
 *
 * A worker host (mps_pool_serve) takes tasks one by one while fewer than
 * 2 x workers are in flight, runs each in its local mps_pool, and when the
 * local future is done puts the result into the submitter's queue, then
 * acknowledges the task by its message id. A finisher thread does the
 * second half, so that taking tasks never waits for running ones.
 *
 * Crash semantics: no memory is shared. A worker host that dies before the
 * acknowledgement leaves the task leased; after the lease it is delivered
 * again, marked redelivered, to another host, which runs it (at least
 * once) or, when the submitter asked for at most once, answers -ECHILD. A
 * result that arrives twice is dropped by the future (the first one
 * stays). A submitter that dies leaves its result queue behind on the
 * server (unlinked by mps_pool_free only).
 *
 * Fork: the collector is a thread, so a child forked from a connected
 * submitter gets only what POSIX allows the child of a threaded process
 * (async-signal-safe calls until exec). Its copy of the pool is only
 * freed (mps__rpool_free, which re-initializes the copied mutex); under
 * AddressSanitizer, whose allocator (GCC 12) is not held across fork(),
 * even that free can block if the collector was inside malloc.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool_internal.h"
#include "pool_remote.h"

#define REGISTRY_MAX 256
#define URL_MAX      1024
#define REPLY_CACHE  8

/* ---- the registry of task names --------------------------------------------- */

static struct {
  char name[MPS_REMOTE_NAME_MAX + 1];
  mps_task_fn fn;
} registry[REGISTRY_MAX];
static size_t registered;
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;

static bool name_ok(const char *name)
{
  size_t n = name ? strnlen(name, MPS_REMOTE_NAME_MAX + 1) : 0;
  return n > 0 && n <= MPS_REMOTE_NAME_MAX;
}

int mps_task_register(const char *name, mps_task_fn fn)
{
  if (fn == NULL || !name_ok(name))
    return -EINVAL;
  int err = -ENOMEM;
  pthread_mutex_lock(&registry_mu);
  size_t i = 0;
  while (i < registered && strcmp(registry[i].name, name) != 0)
    i++;
  if (i < REGISTRY_MAX) {
    snprintf(registry[i].name, sizeof(registry[i].name), "%s", name);
    registry[i].fn = fn;
    registered += i == registered;
    err = 0;
  }
  pthread_mutex_unlock(&registry_mu);
  return err;
}

mps_task_fn mps__registry_fn(const char *name)
{
  mps_task_fn fn = NULL;
  pthread_mutex_lock(&registry_mu);
  for (size_t i = 0; i < registered && fn == NULL; i++)
    if (strcmp(registry[i].name, name) == 0)
      fn = registry[i].fn;
  pthread_mutex_unlock(&registry_mu);
  return fn;
}

static const char *registry_name(mps_task_fn fn)
{
  const char *name = NULL;
  pthread_mutex_lock(&registry_mu);
  for (size_t i = 0; i < registered && name == NULL; i++)
    if (registry[i].fn == fn)
      name = registry[i].name;
  pthread_mutex_unlock(&registry_mu);
  return name;
}

/* ---- messages ------------------------------------------------------------------- */

static size_t task_max(size_t max_arg)
{
  return sizeof(struct mps__task_hdr) + MPS_REMOTE_NAME_MAX + MPS_NAME_MAX + max_arg;
}

int mps__task_parse(const unsigned char *m, size_t n, struct mps__task *t)
{
  struct mps__task_hdr h;
  if (n < sizeof(h))
    return -EPROTO;
  memcpy(&h, m, sizeof(h));
  size_t nl = le16toh(h.name_len), rl = le16toh(h.reply_len);
  if (le32toh(h.magic) != MPS__TASK_MAGIC || nl == 0 || nl > MPS_REMOTE_NAME_MAX || rl == 0 ||
      rl > MPS_NAME_MAX || n < sizeof(h) + nl + rl)
    return -EPROTO;
  t->id = le64toh(h.id);
  t->flags = le32toh(h.flags);
  memcpy(t->name, m + sizeof(h), nl);
  t->name[nl] = '\0';
  memcpy(t->reply, m + sizeof(h) + nl, rl);
  t->reply[rl] = '\0';
  t->arg = m + sizeof(h) + nl + rl;
  t->len = n - sizeof(h) - nl - rl;
  return 0;
}

/* ---- the submitter ------------------------------------------------------------ */

#define TABLE 256

/* A task sent and not answered yet. */
struct pending {
  uint64_t id;
  mps_future *f;
  struct pending *next;
};

struct mps__rpool {
  mps__rurl url;
  mps_remote_opts o;
  struct mps__rq *tasks, *results;
  char reply_key[MPS_NAME_MAX + 1];
  size_t max_arg;
  pthread_t collector;
  bool collector_on;
  pthread_mutex_t mu; /* everything below */
  pthread_cond_t cv;  /* a pending task was answered */
  struct pending *tab[TABLE];
  size_t npending;
  uint64_t next_id;
  bool shutting;
};

/* Takes task id out of the table (mu held); NULL if it is not there. */
static mps_future *take(struct mps__rpool *r, uint64_t id)
{
  struct pending **pp = &r->tab[id % TABLE];
  while (*pp != NULL && (*pp)->id != id)
    pp = &(*pp)->next;
  struct pending *e = *pp;
  if (e == NULL)
    return NULL;
  *pp = e->next;
  mps_future *f = e->f;
  free(e);
  if (--r->npending == 0)
    pthread_cond_broadcast(&r->cv);
  return f;
}

/* Completes f outside mu and drops the runner's reference. */
static void complete(mps_future *f, int status, int64_t value, const void *data, size_t len)
{
  mps__future_complete(f, status, value, data, len);
  mps__future_release(f);
}

static void collect_batch(struct mps__rpool *r, const unsigned char *buf, const size_t *lens,
                          size_t n)
{
  size_t off = 0;
  for (size_t i = 0; i < n; off += lens[i], i++) {
    struct mps__res_hdr h;
    if (lens[i] < sizeof(h))
      continue;
    memcpy(&h, buf + off, sizeof(h));
    pthread_mutex_lock(&r->mu);
    mps_future *f = take(r, le64toh(h.id));
    pthread_mutex_unlock(&r->mu);
    if (f != NULL) /* NULL: answered before (a task run twice) */
      complete(f, (int32_t)le32toh((uint32_t)h.status), (int64_t)le64toh((uint64_t)h.value),
               buf + off + sizeof(h), lens[i] - sizeof(h));
  }
}

static void *collector_main(void *arg)
{
  struct mps__rpool *r = arg;
  size_t cap = 32 * (sizeof(struct mps__res_hdr) + r->o.max_result), lens[32];
  unsigned char *buf = malloc(cap);
  for (;;) {
    ssize_t n = buf ? mps__rq_get_many(r->results, buf, cap, lens, 32, 1.0) : -ENOMEM;
    if (n == -EPIPE || n == -ENOENT || n == -ENOMEM)
      break; /* our queue was shut down: mps_pool_free */
    if (n == -ETIMEDOUT)
      continue;
    if (n < 0) { /* the server is away: try again shortly */
      struct timespec t = {0, 100000000};
      nanosleep(&t, NULL);
      continue;
    }
    collect_batch(r, buf, lens, (size_t)n);
    for (ssize_t i = 0; i < n; i++)
      mps__rq_task_done(r->results);
  }
  free(buf);
  return NULL;
}

static int reply_queue(struct mps__rpool *r)
{
  static _Atomic unsigned serial;
  char host[32] = "host", rurl[URL_MAX];
  gethostname(host, sizeof(host) - 1);
  host[sizeof(host) - 1] = '\0';
  for (char *c = host; *c; c++)
    if (*c == '/' || *c == '%' || *c <= ' ')
      *c = '_';
  snprintf(r->reply_key, sizeof(r->reply_key), "mps-reply-%s-%d-%u", host, (int)getpid(), ++serial);
  int err = mps__rurl_format(&r->url, r->reply_key, rurl, sizeof(rurl));
  if (err < 0)
    return err;
  mps_queue_opts qo = {.maxsize = r->o.queue_size,
                       .max_msg = sizeof(struct mps__res_hdr) + r->o.max_result};
  r->results = mps__rq_create(rurl, &qo, &err);
  return r->results ? 0 : err;
}

int mps__remote_opts(mps_remote_opts *o, const mps_remote_opts *in)
{
  *o = in ? *in : (mps_remote_opts){0};
  if (!mps__reserved_zero(o->reserved))
    return -EINVAL;
  o->max_arg = o->max_arg ? o->max_arg : MPS_POOL_DEFAULT_MAX_ARG;
  o->max_result = o->max_result ? o->max_result : MPS_POOL_DEFAULT_MAX_RESULT;
  o->queue_size = o->queue_size ? o->queue_size : MPS_POOL_DEFAULT_QUEUE;
  if (o->max_arg > ((size_t)64 << 20) || o->max_result > ((size_t)64 << 20) ||
      o->queue_size > MPS_QUEUE_MAXSIZE_MAX || o->workers > 1024)
    return -EINVAL;
  return 0;
}

struct mps__rq *mps__task_queue(const char *url, const mps_remote_opts *o, int *err)
{
  mps_queue_opts qo = {.maxsize = o->queue_size, .max_msg = task_max(o->max_arg)};
  struct mps__rq *q = mps__rq_create(url, &qo, err);
  if (q == NULL && *err == -EEXIST)
    q = mps__rq_open(url, err);
  return q;
}

static void rpool_release(mps_pool *p)
{
  struct mps__rpool *r = p->remote;
  if (r->results != NULL) {
    char rurl[URL_MAX];
    mps__rq_close(r->results);
    if (mps__rurl_format(&r->url, r->reply_key, rurl, sizeof(rurl)) == 0)
      mps__rq_unlink(rurl);
  }
  mps__rq_close(r->tasks);
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
  free(r);
  free(p);
}

mps_pool *mps_pool_connect(const char *url, const mps_remote_opts *opts)
{
  mps_pool *p = calloc(1, sizeof(*p));
  struct mps__rpool *r = calloc(1, sizeof(*r));
  if (p == NULL || r == NULL) {
    free(p);
    free(r);
    return mps__fail(-ENOMEM);
  }
  p->owner = getpid();
  p->evfd = -1;
  p->remote = r;
  p->magic = MPS__LIVE;
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  int err = mps__remote_opts(&r->o, opts);
  if (err == 0)
    err = mps__rurl_parse(url, &r->url);
  if (err == 0 && (r->tasks = mps__task_queue(url, &r->o, &err)) != NULL) {
    size_t m = mps__rq_max_msg(r->tasks);
    r->max_arg = m > task_max(0) ? m - task_max(0) : 0;
    err = reply_queue(r);
  }
  if (err == 0 && (err = -pthread_create(&r->collector, NULL, collector_main, r)) == 0) {
    r->collector_on = true;
    return p;
  }
  rpool_release(p);
  return mps__fail(err);
}

/* What is left of d, as a public timeout for the queue calls. */
static double timeout_of(const mps__deadline *d)
{
  struct timespec left;
  if (d->kind != MPS__TIMED)
    return d->kind == MPS__ONCE ? 0 : MPS_FOREVER;
  if (mps__deadline_left(d, &left) < 0)
    return 1e-9; /* passed: still a timed wait, -ETIMEDOUT */
  return (double)left.tv_sec + (double)left.tv_nsec * 1e-9 + 1e-9;
}

/* Enters a new task in the table: its id, or 0 (-EPIPE, -ENOMEM). */
static uint64_t enter(struct mps__rpool *r, mps_future *f, int *err)
{
  struct pending *e = malloc(sizeof(*e));
  pthread_mutex_lock(&r->mu);
  uint64_t id = 0;
  *err = r->shutting ? -EPIPE : (e == NULL ? -ENOMEM : 0);
  if (*err == 0) {
    id = e->id = ++r->next_id;
    e->f = f;
    e->next = r->tab[id % TABLE];
    r->tab[id % TABLE] = e;
    r->npending++;
    e = NULL;
  }
  pthread_mutex_unlock(&r->mu);
  free(e);
  return id;
}

static unsigned char *task_message(struct mps__rpool *r, uint64_t id, const char *name,
                                   const void *arg, size_t len, size_t *n)
{
  size_t nl = strlen(name), rl = strlen(r->reply_key);
  *n = sizeof(struct mps__task_hdr) + nl + rl + len;
  unsigned char *m = malloc(*n);
  if (m == NULL)
    return NULL;
  struct mps__task_hdr h = {htole32(MPS__TASK_MAGIC),
                            htole32(r->o.at_most_once ? MPS__F_AT_MOST_ONCE : 0),
                            htole64(id),
                            htole16((uint16_t)nl),
                            htole16((uint16_t)rl),
                            0};
  memcpy(m, &h, sizeof(h));
  memcpy(m + sizeof(h), name, nl);
  memcpy(m + sizeof(h) + nl, r->reply_key, rl);
  if (len > 0)
    memcpy(m + sizeof(h) + nl + rl, arg, len);
  return m;
}

mps_future *mps__rpool_submit(mps_pool *p, mps_task_fn fn, const char *name, const void *arg,
                              size_t len, const mps__deadline *d)
{
  struct mps__rpool *r = p->remote;
  if (fn != NULL && (name = registry_name(fn)) == NULL)
    return mps__fail(-EINVAL); /* not registered: no name to send */
  if (!name_ok(name))
    return mps__fail(-EINVAL);
  if (len > r->max_arg)
    return mps__fail(-EMSGSIZE);
  int err;
  mps_future *f = mps__future_new();
  if (f == NULL)
    return mps__fail(-ENOMEM);
  uint64_t id = enter(r, f, &err);
  size_t n = 0;
  unsigned char *m = id ? task_message(r, id, name, arg, len, &n) : NULL;
  if (m != NULL) {
    const void *msgs[1] = {m};
    ssize_t k = mps__rq_put_many(r->tasks, msgs, &n, 1, timeout_of(d));
    err = k < 0 ? (int)k : 0;
    free(m);
  } else if (id) {
    err = -ENOMEM;
  }
  if (err == 0)
    return f;
  if (id) {
    pthread_mutex_lock(&r->mu);
    take(r, id);
    pthread_mutex_unlock(&r->mu);
  }
  mps__future_release(f);
  mps__future_release(f);
  return mps__fail(err);
}

mps_future *mps_pool_submit_named(mps_pool *p, const char *name, const void *arg, size_t len)
{
  if (p == NULL || p->remote == NULL || !name_ok(name) || (arg == NULL && len > 0))
    return mps__fail(-EINVAL);
  if (p->owner != getpid())
    return mps__fail(-EPERM);
  mps__deadline d = {.kind = MPS__FOREVER};
  return mps__rpool_submit(p, NULL, name, arg, len, &d);
}

/* Fails every pending future with err (their tasks may still run; the
 * answers are then dropped). */
static void fail_pending(struct mps__rpool *r, int err)
{
  for (;;) {
    mps_future *f = NULL;
    pthread_mutex_lock(&r->mu);
    for (size_t b = 0; b < TABLE && f == NULL; b++)
      if (r->tab[b] != NULL)
        f = take(r, r->tab[b]->id);
    pthread_mutex_unlock(&r->mu);
    if (f == NULL)
      return;
    complete(f, err, 0, NULL, 0);
  }
}

int mps__rpool_shutdown(mps_pool *p, bool wait, bool cancel_pending)
{
  struct mps__rpool *r = p->remote;
  pthread_mutex_lock(&r->mu);
  r->shutting = true;
  pthread_mutex_unlock(&r->mu);
  if (cancel_pending)
    fail_pending(r, -ECANCELED);
  pthread_mutex_lock(&r->mu);
  while (wait && r->npending > 0)
    pthread_cond_wait(&r->cv, &r->mu);
  pthread_mutex_unlock(&r->mu);
  return 0;
}

void mps__rpool_free(mps_pool *p)
{
  struct mps__rpool *r = p->remote;
  if (p->owner == getpid()) {
    mps__rpool_shutdown(p, true, false);
    mps__rq_shutdown(r->results); /* ends the collector */
    if (r->collector_on)
      pthread_join(r->collector, NULL);
  } else {
    pthread_mutex_init(&r->mu, NULL); /* maybe copied locked */
    r->results = NULL;                /* a forked child's copy: the queue is the parent's */
  }
  fail_pending(r, -EPERM);
  rpool_release(p);
}
