/* Futures: the parent-side results of pool tasks.
 *
 * A future is process-private memory, never shared: the collector thread of
 * its pool fills it from the result queue. Every future of the process is
 * guarded by one pthread mutex and woken through one condition variable
 * (mps__hub), so that mps_pool_wait_any() can wait on futures of several
 * pools at once. A pending future is in its pool's table (by task id) and
 * holds two references, the caller's and the table's; it is freed when both
 * are dropped, so freeing a pending future or the pool in either order is
 * safe, and a finished future outlives its pool.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "pool_internal.h"

struct mps__hub mps__hub = {.mu = PTHREAD_MUTEX_INITIALIZER};
static pthread_once_t hub_once = PTHREAD_ONCE_INIT;

static void hub_cond_init(void)
{
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(&mps__hub.cv, &a);
  pthread_condattr_destroy(&a);
}

/* The hub is held across fork() so that a child never inherits it locked by
 * a thread that does not exist there; the child starts with fresh ones. */
static void hub_prepare(void) { pthread_mutex_lock(&mps__hub.mu); }
static void hub_parent(void) { pthread_mutex_unlock(&mps__hub.mu); }
static void hub_child(void)
{
  pthread_mutex_init(&mps__hub.mu, NULL);
  hub_cond_init();
}

static void hub_setup(void)
{
  hub_cond_init();
  pthread_atfork(hub_prepare, hub_parent, hub_child);
}

void mps__hub_init(void)
{
  pthread_once(&hub_once, hub_setup);
}

static void unref(mps_future *f)
{
  if (--f->refs == 0) {
    free(f->data);
    free(f);
  }
}

static void table_remove(mps_future *f)
{
  mps_future **pp = &f->pool->buckets[f->id % POOL_BUCKETS];
  while (*pp != NULL && *pp != f)
    pp = &(*pp)->next;
  if (*pp == f)
    *pp = f->next;
}

mps_future *mps__future_register(mps_pool *p, int *err)
{
  mps_future *f = calloc(1, sizeof(*f));
  if (f == NULL) {
    *err = -ENOMEM;
    return NULL;
  }
  pthread_mutex_lock(&mps__hub.mu);
  if (p->shutting) {
    pthread_mutex_unlock(&mps__hub.mu);
    free(f);
    *err = -EPIPE;
    return NULL;
  }
  f->id = ++p->next_id;
  f->pool = p;
  f->refs = 2;
  f->next = p->buckets[f->id % POOL_BUCKETS];
  p->buckets[f->id % POOL_BUCKETS] = f;
  pthread_mutex_unlock(&mps__hub.mu);
  return f;
}

void mps__future_unregister(mps_future *f)
{
  pthread_mutex_lock(&mps__hub.mu);
  if (!f->done)
    table_remove(f);
  free(f->data);
  free(f);
  pthread_mutex_unlock(&mps__hub.mu);
}

mps_future *mps__future_find(mps_pool *p, uint64_t id)
{
  mps_future *f = p->buckets[id % POOL_BUCKETS];
  while (f != NULL && f->id != id)
    f = f->next;
  return f;
}

void mps__future_complete(mps_future *f, int64_t ret, const void *data, size_t len)
{
  if (f->done)
    return;
  if (ret > 0) {
    f->data = malloc((size_t)ret);
    if (f->data == NULL || (size_t)ret > len)
      ret = f->data == NULL ? -ENOMEM : -EPROTO;
    else
      memcpy(f->data, data, (size_t)ret);
  }
  f->ret = ret;
  f->done = true;
  table_remove(f);
  f->pool = NULL;
  unref(f);
  pthread_cond_broadcast(&mps__hub.cv);
}

/* Applies fn to every future still in p's table (fn may complete it). */
static void for_each_pending(mps_pool *p, void (*fn)(mps_future *, int), int arg)
{
  for (size_t b = 0; b < POOL_BUCKETS; b++) {
    mps_future *f = p->buckets[b];
    while (f != NULL) {
      mps_future *next = f->next;
      fn(f, arg);
      f = next;
    }
  }
}

static void fail_one(mps_future *f, int err)
{
  mps__future_complete(f, err, NULL, 0);
}

static void cancel_one(mps_future *f, int unused)
{
  (void)unused;
  if (mps__pool_try_cancel(f->pool, f->id, false) == 0)
    mps__future_complete(f, -ECANCELED, NULL, 0);
}

void mps__future_fail_all(mps_pool *p, int err)
{
  for_each_pending(p, fail_one, err);
}

void mps__future_cancel_all(mps_pool *p)
{
  /* Ids are handed out under the hub mutex, which the caller holds: every
   * id up to next_id is below the new watermark. */
  mps__pool_cancel_below(p, p->next_id + 1);
  for_each_pending(p, cancel_one, 0);
}

/* ---- public calls ---------------------------------------------------------- */

/* Waits (hub mutex held) until pred(arg) or the deadline. 0 or an error. */
static int hub_wait(bool (*pred)(const void *), const void *arg, const mps__deadline *d)
{
  while (!pred(arg)) {
    if (d->kind == MPS__ONCE)
      return -EAGAIN;
    int r = d->kind == MPS__TIMED ? pthread_cond_timedwait(&mps__hub.cv, &mps__hub.mu, &d->at)
                                  : pthread_cond_wait(&mps__hub.cv, &mps__hub.mu);
    if (r == ETIMEDOUT && !pred(arg))
      return -ETIMEDOUT;
  }
  return 0;
}

static bool future_is_done(const void *arg)
{
  return ((const mps_future *)arg)->done;
}

int mps_future_result(mps_future *f, void *out, size_t cap, size_t *len, double timeout)
{
  mps__deadline d;
  if (f == NULL || (out == NULL && cap > 0) || mps__deadline_init(&d, timeout) < 0)
    return -EINVAL;
  mps__hub_init();
  pthread_mutex_lock(&mps__hub.mu);
  int r = f->done || mps__pool_owned(f->pool) == 0 ? hub_wait(future_is_done, f, &d) : -EPERM;
  if (r < 0 || f->ret < 0) {
    r = r < 0 ? r : (int)f->ret;
    goto out;
  }
  if (len != NULL)
    *len = (size_t)f->ret;
  if ((size_t)f->ret > cap) {
    r = -EMSGSIZE;
    goto out;
  }
  if (f->ret > 0)
    memcpy(out, f->data, (size_t)f->ret);
out:
  pthread_mutex_unlock(&mps__hub.mu);
  return r;
}

bool mps_future_done(mps_future *f)
{
  if (f == NULL)
    return false;
  pthread_mutex_lock(&mps__hub.mu);
  bool done = f->done;
  pthread_mutex_unlock(&mps__hub.mu);
  return done;
}

int mps_future_cancel(mps_future *f)
{
  if (f == NULL)
    return -EINVAL;
  pthread_mutex_lock(&mps__hub.mu);
  int r;
  if (f->done)
    r = f->ret == -ECANCELED ? 0 : -EBUSY;
  else if (mps__pool_owned(f->pool) < 0)
    r = -EPERM;
  else if ((r = mps__pool_try_cancel(f->pool, f->id, true)) == 0)
    mps__future_complete(f, -ECANCELED, NULL, 0);
  pthread_mutex_unlock(&mps__hub.mu);
  return r;
}

void mps_future_free(mps_future *f)
{
  if (f == NULL)
    return;
  pthread_mutex_lock(&mps__hub.mu);
  unref(f);
  pthread_mutex_unlock(&mps__hub.mu);
}

struct any {
  mps_future *const *fs;
  size_t n;
  ssize_t found;
};

static bool any_done(const void *arg)
{
  struct any *a = (struct any *)arg;
  for (size_t i = 0; i < a->n; i++)
    if (a->fs[i] != NULL && a->fs[i]->done) {
      a->found = (ssize_t)i;
      return true;
    }
  return false;
}

ssize_t mps_pool_wait_any(mps_future *const *fs, size_t n, double timeout)
{
  mps__deadline d;
  if (fs == NULL || mps__deadline_init(&d, timeout) < 0)
    return -EINVAL;
  size_t live = 0;
  for (size_t i = 0; i < n; i++)
    live += fs[i] != NULL;
  if (live == 0)
    return -EINVAL;
  mps__hub_init();
  struct any a = {fs, n, -1};
  pthread_mutex_lock(&mps__hub.mu);
  int r = 0;
  for (size_t i = 0; i < n && r == 0; i++)
    if (fs[i] != NULL && !fs[i]->done && mps__pool_owned(fs[i]->pool) < 0)
      r = -EPERM;
  if (r == 0)
    r = hub_wait(any_done, &a, &d);
  pthread_mutex_unlock(&mps__hub.mu);
  return r < 0 ? r : a.found;
}
