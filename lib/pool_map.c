/* The pool's maps: mps_pool_map (results in input order, waiting for all)
 * and the streaming unordered map, both as chunks of tasks (jobs of
 * pool_jobs.c) that workers run in batches.
 *
 * Process-private, under the pool's mutex: a map's state (struct mps__map)
 * holds each task's library status and its own value apart (the caller
 * gets both: mps_pool_map's values and status arrays), and the caller's
 * result array (map) or its own (stream). A remote pool's map is one
 * future per task. Crash semantics: a chunk cut short by its worker's
 * death keeps its finished results, fails the running task with -ECHILD
 * and runs the rest as a new chunk (pool_manager.c).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "pool_internal.h"
#include "remote.h"

/* ---- map --------------------------------------------------------------- */

static struct mps__map *map_new(size_t n, void *results, size_t result_size)
{
  struct mps__map *m = calloc(1, sizeof(*m));
  if (m == NULL)
    return NULL;
  m->status = malloc((n ? n : 1) * sizeof(*m->status));
  m->value = calloc(n ? n : 1, sizeof(*m->value));
  if (m->status == NULL || m->value == NULL) {
    free(m->status);
    free(m->value);
    free(m);
    return NULL;
  }
  for (size_t i = 0; i < n; i++)
    m->status[i] = 1;
  *m = (struct mps__map){.refs = 1,
                         .n = n,
                         .left = n,
                         .results = results,
                         .result_size = result_size,
                         .status = m->status,
                         .value = m->value};
  return m;
}

/* Tasks per batch, as multiprocessing.Pool.map chooses its chunksize (four
 * chunks per worker), within the batch limits. */
static size_t map_chunk(const mps_pool *p, size_t n, size_t arg_size, size_t chunksize)
{
  size_t c = chunksize ? chunksize : (n + 4 * (size_t)p->nworkers - 1) / (4 * (size_t)p->nworkers);
  if (c > MPS__POOL_BATCH_TASKS)
    c = MPS__POOL_BATCH_TASKS;
  if (arg_size > 0 && c > p->batch_max / arg_size)
    c = p->batch_max / arg_size;
  return c > 0 ? c : 1;
}

/* Makes the map's jobs and queues them (p->mu held). */
static int map_queue(mps_pool *p, struct mps__map *m, mps_task_fn fn, const char *args,
                     size_t arg_size, size_t chunksize)
{
  size_t c = map_chunk(p, m->n, arg_size, chunksize);
  struct mps__pool_job *head = NULL, **tail = &head;
  for (size_t lo = 0; lo < m->n; lo += c) {
    uint32_t k = (uint32_t)(m->n - lo < c ? m->n - lo : c);
    struct mps__pool_job *j =
        mps__pool_job_new(p, fn, args ? args + lo * arg_size : NULL, k, arg_size);
    if (j == NULL) {
      while (head != NULL) {
        j = head;
        head = j->next;
        free(j);
      }
      return -ENOMEM;
    }
    j->map = m;
    j->lo = lo;
    *tail = j;
    tail = &j->next;
  }
  while (head != NULL) {
    struct mps__pool_job *j = head;
    head = j->next;
    m->refs++;
    mps__pool_pend_push(p, j, false);
  }
  mps__pool_dispatch(p);
  return 0;
}

/* The caller leaves: jobs not started are cancelled, results dropped. */
static void map_abandon(mps_pool *p, struct mps__map *m)
{
  m->abandoned = true;
  for (struct mps__pool_job *j = p->pend_head, *next; j != NULL; j = next) {
    next = j->next;
    if (j->map == m) {
      mps__pool_pend_remove(p, j);
      mps__pool_job_done(p, j);
    }
  }
  for (unsigned i = 0; i < p->nworkers; i++)
    for (struct mps__pool_job *j = p->w[i].head; j != NULL; j = j->next)
      if (j->map == m)
        (void)mps__pool_job_cancel(p, j);
}

/* Gives the caller each task's outcome: status[i] 0 with the task's own
 * value in values[i], or a library error (a task without one when the call
 * ends gets the call's error, err). Returns err, else the first task's
 * library error in input order, else 0. */
static int map_outcome(const struct mps__map *m, ssize_t *values, int *status, int err)
{
  int first = 0;
  for (size_t i = 0; i < m->n; i++) {
    int st = m->status[i] == 1 ? err : m->status[i];
    values[i] = st == 0 || st == -EMSGSIZE ? (ssize_t)m->value[i] : 0;
    if (status != NULL)
      status[i] = st;
    first = first != 0 ? first : st;
  }
  return err != 0 ? err : first;
}

/* A remote pool's map: one future per task (pool_remote.c runs them). */
static int map_remote(mps_pool *p, mps_task_fn fn, const char *args, size_t nargs, size_t arg_size,
                      char *results, size_t result_size, ssize_t *values, int *status,
                      const mps__deadline *d)
{
  mps_future **fs = calloc(nargs ? nargs : 1, sizeof(*fs));
  if (fs == NULL)
    return -ENOMEM;
  int err = 0, first = 0;
  for (size_t i = 0; i < nargs && err == 0; i++)
    if ((fs[i] = mps__rpool_submit(p, fn, NULL, arg_size ? args + i * arg_size : NULL, arg_size,
                                   d)) == NULL)
      err = -errno;
  for (size_t i = 0; i < nargs; i++) {
    ssize_t v = 0;
    char *dst = result_size ? results + i * result_size : NULL;
    int st = fs[i] == NULL ? err : mps__future_wait(fs[i], &v, dst, result_size, d);
    size_t got = st == 0 && v > 0 ? (size_t)v : 0;
    if (st == 0 && result_size > got)
      memset(dst + got, 0, result_size - got);
    values[i] = st == 0 || st == -EMSGSIZE ? v : 0;
    if (status != NULL)
      status[i] = st;
    if (st == -ETIMEDOUT || st == -EAGAIN)
      err = err != 0 ? err : st; /* the call's, not the task's */
    first = first != 0 ? first : st;
    mps_future_free(fs[i]);
  }
  free(fs);
  return err != 0 ? err : first;
}

static int map_check(const mps_pool *p, mps_task_fn fn, const void *args, size_t nargs,
                     size_t arg_size, const void *results, size_t result_size,
                     const ssize_t *values)
{
  if (!MPS__OPEN(p) || fn == NULL || (args == NULL && nargs > 0 && arg_size > 0) ||
      (results == NULL && nargs > 0 && result_size > 0) || (values == NULL && nargs > 0))
    return -EINVAL;
  if (mps__pool_owned(p) < 0)
    return -EPERM;
  if (p->remote == NULL && arg_size > p->opts.max_arg)
    return -EMSGSIZE;
  return 0;
}

/* Waits (p->mu held) until every task of m is reported: 0 or an error. */
static int map_wait(mps_pool *p, const struct mps__map *m, const mps__deadline *d)
{
  while (m->left > 0) {
    if (d->kind == MPS__ONCE)
      return -EAGAIN;
    int r = d->kind == MPS__TIMED ? pthread_cond_timedwait(&p->cv, &p->mu, &d->at)
                                  : pthread_cond_wait(&p->cv, &p->mu);
    if (r == ETIMEDOUT && m->left > 0)
      return -ETIMEDOUT;
  }
  return 0;
}

int mps_pool_map(mps_pool *p, mps_task_fn fn, const void *args, size_t nargs, size_t arg_size,
                 void *results, size_t result_size, ssize_t *values, int *status, double timeout)
{
  mps__deadline d;
  int err = map_check(p, fn, args, nargs, arg_size, results, result_size, values);
  if (err == 0 && mps__deadline_init(&d, timeout) < 0)
    err = -EINVAL;
  if (err < 0)
    return err;
  if (p->remote != NULL)
    return map_remote(p, fn, args, nargs, arg_size, results, result_size, values, status, &d);
  struct mps__map *m = map_new(nargs, results, result_size);
  if (m == NULL)
    return -ENOMEM;
  pthread_mutex_lock(&p->mu);
  err = p->shutting ? -EPIPE : map_queue(p, m, fn, args, arg_size, 0);
  if (err == 0)
    err = map_wait(p, m, &d);
  if (err < 0)
    map_abandon(p, m);
  err = map_outcome(m, values, status, err);
  mps__pool_map_unref(m);
  pthread_mutex_unlock(&p->mu);
  return err;
}

/* ---- streaming unordered map -------------------------------------------- */

struct mps_pool_stream {
  mps_pool *p;
  struct mps__map *m;
  uint32_t magic; /* MPS__LIVE until freed (internal.h) */
};

static struct mps__map *stream_map(size_t n, size_t result_size)
{
  size_t bytes = n * result_size;
  if (result_size != 0 && bytes / result_size != n)
    return NULL;
  char *results = malloc(bytes ? bytes : 1);
  size_t *order = malloc((n ? n : 1) * sizeof(*order));
  struct mps__map *m = results && order ? map_new(n, results, result_size) : NULL;
  if (m == NULL) {
    free(results);
    free(order);
    return NULL;
  }
  m->order = order;
  return m;
}

mps_pool_stream *mps_pool_imap_unordered(mps_pool *p, mps_task_fn fn, const void *args,
                                         size_t nargs, size_t arg_size, size_t result_size,
                                         size_t chunksize)
{
  if (!MPS__OPEN(p) || fn == NULL || (args == NULL && nargs > 0 && arg_size > 0))
    return mps__fail(-EINVAL);
  if (mps__pool_owned(p) < 0)
    return mps__fail(-EPERM);
  if (p->remote != NULL)
    return mps__fail(-ENOTSUP); /* a remote pool streams nothing yet */
  if (arg_size > p->opts.max_arg || result_size > p->opts.max_result)
    return mps__fail(-EMSGSIZE);
  mps_pool_stream *s = calloc(1, sizeof(*s));
  struct mps__map *m = s != NULL ? stream_map(nargs, result_size) : NULL;
  if (m == NULL) {
    free(s);
    return mps__fail(-ENOMEM);
  }
  *s = (mps_pool_stream){.p = p, .m = m, .magic = MPS__LIVE};
  pthread_mutex_lock(&p->mu);
  int err = p->shutting ? -EPIPE : map_queue(p, m, fn, args, arg_size, chunksize);
  if (err < 0)
    mps__pool_map_unref(m);
  pthread_mutex_unlock(&p->mu);
  if (err == 0)
    return s;
  free(s);
  return mps__fail(err);
}

/* Waits (p->mu held) for a result the reader has not had yet. */
static int stream_wait(mps_pool *p, struct mps__map *m, const mps__deadline *d)
{
  while (m->delivered == m->reported) {
    if (m->delivered == m->n)
      return -ENOENT;
    if (d->kind == MPS__ONCE)
      return -EAGAIN;
    m->waiting = true;
    int r = d->kind == MPS__TIMED ? pthread_cond_timedwait(&p->cv, &p->mu, &d->at)
                                  : pthread_cond_wait(&p->cv, &p->mu);
    m->waiting = false;
    if (r == ETIMEDOUT && m->delivered == m->reported)
      return -ETIMEDOUT;
  }
  return 0;
}

int mps_pool_stream_next(mps_pool_stream *s, size_t *index, ssize_t *value, void *out, size_t cap,
                         double timeout)
{
  mps__deadline d;
  if (!MPS__OPEN(s) || (out == NULL && cap > 0) || mps__deadline_init(&d, timeout) < 0)
    return -EINVAL;
  mps_pool *p = s->p;
  struct mps__map *m = s->m;
  pthread_mutex_lock(&p->mu);
  int r = mps__pool_owned(p) < 0 ? -EPERM : stream_wait(p, m, &d);
  if (r == 0) {
    size_t i = m->order[m->delivered];
    int64_t v = m->value[i];
    r = m->status[i];
    if (index != NULL)
      *index = i;
    if (value != NULL)
      *value = (ssize_t)v;
    if (r == 0 && v > 0 && (uint64_t)v > cap)
      r = -EMSGSIZE; /* stays: read it again with room */
    else
      m->delivered++;
    if (r == 0 && v > 0)
      memcpy(out, m->results + i * m->result_size, (size_t)v);
  }
  pthread_mutex_unlock(&p->mu);
  return r;
}

void mps_pool_stream_free(mps_pool_stream *s)
{
  if (!MPS__OPEN(s))
    return;
  s->magic = MPS__DEAD;
  mps_pool *p = s->p;
  pthread_mutex_lock(&p->mu);
  if (s->m->delivered < s->m->n)
    map_abandon(p, s->m);
  mps__pool_map_unref(s->m);
  pthread_mutex_unlock(&p->mu);
  free(s);
}
