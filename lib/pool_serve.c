/* A worker host of the pool across hosts: mps_pool_serve() takes tasks
 * from the remote task queue, runs them in a local mps_pool and sends each
 * result to its submitter's queue (message formats: pool_remote.c).
 *
 * Two threads: the caller's takes tasks (one get at a time, while fewer
 * than 2 x workers are in flight) and submits them to the local pool; a
 * finisher waits for any local future to be done, puts its result, then
 * acknowledges the task by its message id. The in-flight table is
 * process-private, under one mutex.
 *
 * Crash semantics: if this process dies, its local workers die with it
 * (they are the local pool's) and every task it took and had not
 * acknowledged is redelivered to another host after the lease. A local
 * worker that dies fails only its task, which is answered -ECHILD and
 * acknowledged: it is not run again. A result is always put before the
 * acknowledgement, so no task is acknowledged without an answer.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool_internal.h"
#include "pool_remote.h"

#define URL_MAX 1024
#define ID_LEN  48

struct flight {
  mps_future *f; /* NULL: a free entry */
  uint64_t id;
  char msg_id[ID_LEN];
  char reply[MPS_NAME_MAX + 1];
  int fail; /* != 0: answer this library error without a future */
};

struct server {
  mps__rurl url;
  mps_remote_opts o;
  struct mps__rq *tasks;
  mps_pool *local;
  pthread_mutex_t mu;
  pthread_cond_t cv; /* a flight started or ended, or stop */
  struct flight *fl;
  size_t cap, busy;
  bool stop;
  /* Result queues by key, opened on first use (finisher thread only). */
  struct {
    char key[MPS_NAME_MAX + 1];
    struct mps__rq *q;
  } replies[8];
  unsigned next_reply;
  unsigned char *res; /* result message buffer (finisher) */
};

static struct mps__rq *reply_open(struct server *s, const char *key)
{
  for (size_t i = 0; i < 8; i++)
    if (s->replies[i].q != NULL && strcmp(s->replies[i].key, key) == 0)
      return s->replies[i].q;
  char url[URL_MAX];
  int err;
  if (mps__rurl_format(&s->url, key, url, sizeof(url)) < 0)
    return NULL;
  struct mps__rq *q = mps__rq_open(url, &err);
  if (q == NULL)
    return NULL; /* the submitter is gone: its results are dropped */
  unsigned i = s->next_reply++ % 8;
  mps__rq_close(s->replies[i].q);
  snprintf(s->replies[i].key, sizeof(s->replies[i].key), "%s", key);
  s->replies[i].q = q;
  return q;
}

/* Answers one flight (finisher thread, without the mutex): result, then
 * acknowledgement. */
static void answer(struct server *s, struct flight *fl)
{
  ssize_t value = 0;
  int status = fl->fail;
  unsigned char *out = s->res + sizeof(struct mps__res_hdr);
  if (fl->f != NULL)
    status = mps_future_result(fl->f, &value, out, s->o.max_result, 0);
  if (status != 0)
    value = 0;
  struct mps__res_hdr h = {htole64(fl->id), (int32_t)htole32((uint32_t)status), 0,
                           (int64_t)htole64((uint64_t)value)};
  memcpy(s->res, &h, sizeof(h));
  size_t n = sizeof(h) + (value > 0 ? (size_t)value : 0);
  struct mps__rq *q = reply_open(s, fl->reply);
  const void *m[1] = {s->res};
  for (int tries = 0; q != NULL && tries < 3; tries++) {
    ssize_t k = mps__rq_put_many(q, m, &n, 1, 10.0);
    if (k >= 0 || k == -ENOENT || k == -EPIPE)
      break;
  }
  mps__rq_ack_id(s->tasks, fl->msg_id);
}

/* Index of a flight that is done, or -1 after waiting a little. */
static ssize_t done_one(struct server *s)
{
  mps_future *fs[2048];
  size_t n = 0;
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->cap; i++) {
    bool live = s->fl[i].f != NULL || s->fl[i].fail != 0;
    if (live && s->fl[i].f == NULL) {
      pthread_mutex_unlock(&s->mu);
      return (ssize_t)i;
    }
    fs[i] = s->fl[i].f;
    n += live;
  }
  if (n == 0) {
    if (!s->stop)
      pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    return -1;
  }
  pthread_mutex_unlock(&s->mu);
  /* New flights are seen at the next round, at most 20 ms later. */
  return mps_pool_wait_any(fs, s->cap, 0.02);
}

static void *finisher_main(void *arg)
{
  struct server *s = arg;
  for (;;) {
    ssize_t i = done_one(s);
    if (i < 0) {
      pthread_mutex_lock(&s->mu);
      bool end = s->stop && s->busy == 0;
      pthread_mutex_unlock(&s->mu);
      if (end)
        return NULL;
      continue;
    }
    answer(s, &s->fl[i]);
    pthread_mutex_lock(&s->mu);
    mps_future_free(s->fl[i].f);
    s->fl[i] = (struct flight){0};
    s->busy--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
  }
}

/* Starts the task just got (message msg of n bytes). */
static void start(struct server *s, const unsigned char *msg, size_t n)
{
  struct mps__task t;
  struct flight fl = {0};
  if (mps__rq_msg_id(s->tasks, 0, fl.msg_id, ID_LEN) < 0)
    return;
  if (mps__task_parse(msg, n, &t) < 0) {
    mps__rq_ack_id(s->tasks, fl.msg_id); /* not a task: nobody to answer */
    return;
  }
  fl.id = t.id;
  snprintf(fl.reply, sizeof(fl.reply), "%s", t.reply);
  mps_task_fn fn = mps__registry_fn(t.name);
  if ((t.flags & MPS__F_AT_MOST_ONCE) && mps__rq_redelivered(s->tasks, 0) == 1)
    fl.fail = -ECHILD; /* its first host died with it: never run twice */
  else if (fn == NULL)
    fl.fail = -ENOSYS;
  else if ((fl.f = mps_pool_submit(s->local, fn, t.arg, t.len)) == NULL)
    fl.fail = -errno;
  pthread_mutex_lock(&s->mu);
  size_t i = 0;
  while (s->fl[i].f != NULL || s->fl[i].fail != 0)
    i++;
  s->fl[i] = fl;
  s->busy++;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* Takes tasks until the queue is shut down or removed. */
static int take_tasks(struct server *s, unsigned char *msg, size_t cap)
{
  double down_since = 0;
  for (;;) {
    pthread_mutex_lock(&s->mu);
    while (s->busy == s->cap)
      pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    size_t len;
    ssize_t n = mps__rq_get_many(s->tasks, msg, cap, &len, 1, 1.0);
    if (n == -EPIPE || n == -ENOENT)
      return 0;
    if (n == 1) {
      start(s, msg, len);
      down_since = 0;
    } else if (n != -ETIMEDOUT && n != -EAGAIN) {
      /* The server is away: retry for 10 s, then give up. */
      if (down_since == 0)
        down_since = mps__now();
      else if (mps__now() - down_since > 10)
        return (int)n;
      struct timespec t = {0, 100000000};
      nanosleep(&t, NULL);
    }
  }
}

static int server_init(struct server *s, const char *url, const mps_remote_opts *opts)
{
  int err = mps__remote_opts(&s->o, opts);
  if (err < 0 || (err = mps__rurl_parse(url, &s->url)) < 0)
    return err;
  if ((s->tasks = mps__task_queue(url, &s->o, &err)) == NULL)
    return err;
  mps_pool_opts lo = {
      .workers = s->o.workers, .max_arg = s->o.max_arg, .max_result = s->o.max_result};
  if ((s->local = mps_pool_new_opts(&lo)) == NULL)
    return -errno;
  s->cap = 2 * (size_t)(s->o.workers ? s->o.workers : (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
  s->cap = s->cap > 2048 ? 2048 : (s->cap ? s->cap : 2);
  s->fl = calloc(s->cap, sizeof(*s->fl));
  s->res = malloc(sizeof(struct mps__res_hdr) + s->o.max_result);
  if (s->fl == NULL || s->res == NULL)
    return -ENOMEM;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  return 0;
}

static void server_release(struct server *s)
{
  mps_pool_free(s->local);
  for (size_t i = 0; i < 8; i++)
    mps__rq_close(s->replies[i].q);
  mps__rq_close(s->tasks);
  free(s->fl);
  free(s->res);
}

int mps_pool_serve(const char *url, const mps_remote_opts *opts)
{
  struct server s = {0};
  int err = server_init(&s, url, opts);
  size_t cap = s.tasks != NULL ? mps__rq_max_msg(s.tasks) : 0;
  unsigned char *msg = err == 0 ? malloc(cap ? cap : 1) : NULL;
  pthread_t fin;
  if (err == 0 && msg == NULL)
    err = -ENOMEM;
  if (err == 0 && (err = -pthread_create(&fin, NULL, finisher_main, &s)) == 0) {
    err = take_tasks(&s, msg, cap);
    pthread_mutex_lock(&s.mu);
    s.stop = true; /* the finisher ends once every flight is answered */
    pthread_cond_broadcast(&s.cv);
    pthread_mutex_unlock(&s.mu);
    pthread_join(fin, NULL);
    pthread_mutex_destroy(&s.mu);
    pthread_cond_destroy(&s.cv);
  }
  free(msg);
  server_release(&s);
  return err;
}
