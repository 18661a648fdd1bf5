/* Futures: the parent-side results of pool tasks, and as-completed sets.
 *
 * A future is process-private memory, never shared. This file is a leaf: it
 * knows nothing of pools. Whoever runs the task (the pool) completes the
 * future with mps__future_complete() and registers the step that cancels
 * it (mps__future_set_cancel), which mps_future_cancel() calls.
 *
 * Every future of the process is guarded by one pthread mutex and woken
 * through one condition variable (the hub), so that mps_pool_wait_any() and
 * as-completed sets can wait on futures of several pools at once. Lock
 * order: the hub, then a pool's own mutex (the cancel step takes it); the
 * pool never completes a future while holding its own mutex.
 *
 * A future holds two references, the caller's and its runner's; it is freed
 * when both are dropped, so freeing a pending future or the pool in either
 * order is safe, and a finished future outlives its pool.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct mps_future {
  int refs;
  int waiters; /* threads in mps_future_result() on it */
  bool done;
  int status;    /* once done: 0 (the task returned) or a library error */
  int64_t value; /* the task's own return value */
  void *data;    /* its result bytes (value of them): small, or malloc'd */
  unsigned char small[16];
  pid_t owner; /* only this process may wait for it while pending */
  int (*cancel)(void *arg, mps_future *f);
  void *cancel_arg;
  void (*cb)(mps_future *f, void *arg);
  void *cb_arg;
  mps_future_set *set;
  mps_future *set_next;
  uint32_t magic; /* MPS__LIVE until the caller frees it (internal.h) */
};

struct mps_future_set {
  size_t members;          /* futures added and not yet returned by next */
  bool freed;              /* the caller freed it: members leave as they finish */
  mps_future *head, *tail; /* done ones, in completion order */
};

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int any_waiters; /* threads waiting on several futures at once */
} hub = {.mu = PTHREAD_MUTEX_INITIALIZER};
static pthread_once_t hub_once = PTHREAD_ONCE_INIT;

static void hub_cond_init(void)
{
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(&hub.cv, &a);
  pthread_condattr_destroy(&a);
}

/* The hub is held across fork() so that a child never inherits it locked by
 * a thread that does not exist there; the child starts with fresh ones. */
static void hub_prepare(void) { pthread_mutex_lock(&hub.mu); }
static void hub_parent(void) { pthread_mutex_unlock(&hub.mu); }
static void hub_child(void)
{
  pthread_mutex_init(&hub.mu, NULL);
  hub_cond_init();
}

static void hub_setup(void)
{
  hub_cond_init();
  pthread_atfork(hub_prepare, hub_parent, hub_child);
}

static void hub_lock(void)
{
  pthread_once(&hub_once, hub_setup);
  pthread_mutex_lock(&hub.mu);
}

/* f leaves its set (hub held); the last one out of a freed set frees it. */
static void set_leave(mps_future *f)
{
  mps_future_set *s = f->set;
  f->set = NULL;
  if (--s->members == 0 && s->freed)
    free(s);
}

static void unref(mps_future *f)
{
  if (--f->refs == 0) {
    if (f->data != f->small)
      free(f->data);
    free(f);
  }
}

mps_future *mps__future_new(void) { return mps__future_new_cancel(NULL, NULL); }

void mps__future_set_cancel(mps_future *f, int (*cancel)(void *, mps_future *), void *arg)
{
  hub_lock();
  f->cancel = cancel;
  f->cancel_arg = arg;
  pthread_mutex_unlock(&hub.mu);
}

mps_future *mps__future_new_cancel(int (*cancel)(void *, mps_future *), void *arg)
{
  mps_future *f = calloc(1, sizeof(*f));
  if (f == NULL)
    return NULL;
  f->refs = 2;
  f->magic = MPS__LIVE;
  f->owner = getpid();
  f->cancel = cancel; /* nobody else sees f yet: no lock */
  f->cancel_arg = arg;
  pthread_once(&hub_once, hub_setup);
  return f;
}

void mps__future_release(mps_future *f)
{
  hub_lock();
  unref(f);
  pthread_mutex_unlock(&hub.mu);
}

/* Marks f done (hub held); returns the callback to run once unlocked. */
static void finish(mps_future *f, int status, int64_t value, void *data)
{
  f->status = status;
  f->value = value;
  f->data = data;
  f->done = true;
  f->cancel = NULL;
  if (f->set != NULL && f->set->freed) {
    set_leave(f);
  } else if (f->set != NULL) {
    f->set_next = NULL;
    if (f->set->tail != NULL)
      f->set->tail->set_next = f;
    else
      f->set->head = f;
    f->set->tail = f;
  }
  /* A wake-up costs a syscall per sleeper: only when one may care. */
  if (f->waiters > 0 || hub.any_waiters > 0)
    pthread_cond_broadcast(&hub.cv);
}

void mps__future_complete(mps_future *f, int status, int64_t value, const void *data, size_t len)
{
  hub_lock();
  f->refs++; /* the runner keeps its own, dropped by mps__future_release */
  pthread_mutex_unlock(&hub.mu);
  mps__future_complete_release(f, status, value, data, len);
}

void mps__future_complete_release(mps_future *f, int status, int64_t value, const void *data,
                                  size_t len)
{
  /* Copied before the lock; a small result needs no allocation. */
  void *copy = NULL;
  unsigned char small[sizeof(f->small)];
  if (status == 0 && value > 0 && (size_t)value > len) {
    status = -EPROTO;
  } else if (status == 0 && value > 0) {
    copy = (size_t)value <= sizeof(small) ? small : malloc((size_t)value);
    if (copy == NULL)
      status = -ENOMEM;
    else
      memcpy(copy, data, (size_t)value);
  }
  hub_lock();
  void (*cb)(mps_future *, void *) = NULL;
  void *cb_arg = NULL;
  if (f->done) {
    if (copy != small)
      free(copy);
  } else {
    if (copy == small)
      copy = memcpy(f->small, small, (size_t)value);
    finish(f, status, value, copy);
    cb = f->cb;
    cb_arg = f->cb_arg;
  }
  if (cb == NULL) {
    unref(f); /* the runner's */
    pthread_mutex_unlock(&hub.mu);
    return;
  }
  pthread_mutex_unlock(&hub.mu);
  cb(f, cb_arg);
  mps__future_release(f); /* the runner's, kept for the callback */
}

/* ---- waiting --------------------------------------------------------------- */

/* Waits (hub held) until pred(arg) or the deadline. 0 or an error. */
static int hub_wait(bool (*pred)(const void *), const void *arg, const mps__deadline *d)
{
  while (!pred(arg)) {
    if (d->kind == MPS__ONCE)
      return -EAGAIN;
    int r = d->kind == MPS__TIMED ? pthread_cond_timedwait(&hub.cv, &hub.mu, &d->at)
                                  : pthread_cond_wait(&hub.cv, &hub.mu);
    if (r == ETIMEDOUT && !pred(arg))
      return -ETIMEDOUT;
  }
  return 0;
}

static bool future_is_done(const void *arg) { return ((const mps_future *)arg)->done; }

/* 0 if the calling process may wait for f (hub held). */
static int may_wait(const mps_future *f) { return f->done || f->owner == getpid() ? 0 : -EPERM; }

static int copy_result(const mps_future *f, ssize_t *value, void *out, size_t cap)
{
  if (f->status != 0)
    return f->status;
  if (value != NULL)
    *value = (ssize_t)f->value;
  if (f->value > 0 && (uint64_t)f->value > cap)
    return -EMSGSIZE;
  if (f->value > 0)
    memcpy(out, f->data, (size_t)f->value);
  return 0;
}

int mps_future_result(mps_future *f, ssize_t *value, void *out, size_t cap, double timeout)
{
  mps__deadline d;
  if (!MPS__OPEN(f) || (out == NULL && cap > 0) || mps__deadline_init(&d, timeout) < 0)
    return -EINVAL;
  hub_lock();
  int r = may_wait(f);
  f->waiters++;
  if (r == 0)
    r = hub_wait(future_is_done, f, &d);
  f->waiters--;
  if (r == 0)
    r = copy_result(f, value, out, cap);
  pthread_mutex_unlock(&hub.mu);
  return r;
}

bool mps_future_done(const mps_future *f)
{
  if (!MPS__OPEN(f))
    return false;
  hub_lock();
  bool done = f->done;
  pthread_mutex_unlock(&hub.mu);
  return done;
}

int mps_future_cancel(mps_future *f)
{
  if (!MPS__OPEN(f))
    return -EINVAL;
  hub_lock();
  int r;
  if (f->done)
    r = f->status == -ECANCELED ? 0 : -EBUSY;
  else if (f->owner != getpid())
    r = -EPERM;
  else if (f->cancel == NULL)
    r = -EBUSY;
  else if ((r = f->cancel(f->cancel_arg, f)) == 0) {
    finish(f, -ECANCELED, 0, NULL);
    f->refs--; /* the runner's, given up by its cancel step */
  }
  void (*cb)(mps_future *, void *) = r == 0 && f->done ? f->cb : NULL;
  void *cb_arg = f->cb_arg;
  f->refs++;
  pthread_mutex_unlock(&hub.mu);
  if (cb != NULL)
    cb(f, cb_arg);
  mps__future_release(f);
  return r;
}

int mps_future_add_done_callback(mps_future *f, void (*cb)(mps_future *f, void *arg), void *arg)
{
  if (!MPS__OPEN(f) || cb == NULL)
    return -EINVAL;
  hub_lock();
  if (f->cb != NULL) {
    pthread_mutex_unlock(&hub.mu);
    return -EBUSY;
  }
  f->cb = cb;
  f->cb_arg = arg;
  bool now = f->done;
  pthread_mutex_unlock(&hub.mu);
  if (now)
    cb(f, arg);
  return 0;
}

void mps_future_free(mps_future *f)
{
  if (!MPS__OPEN(f))
    return;
  hub_lock();
  f->magic = MPS__DEAD;
  if (f->set != NULL && !f->done)
    set_leave(f); /* it will never be returned by next */
  unref(f);
  pthread_mutex_unlock(&hub.mu);
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
  for (size_t i = 0; i < n; i++) {
    if (fs[i] != NULL && !MPS__OPEN(fs[i]))
      return -EINVAL;
    live += fs[i] != NULL;
  }
  if (live == 0)
    return -EINVAL;
  struct any a = {fs, n, -1};
  hub_lock();
  int r = 0;
  for (size_t i = 0; i < n && r == 0; i++)
    if (fs[i] != NULL)
      r = may_wait(fs[i]);
  hub.any_waiters++;
  if (r == 0)
    r = hub_wait(any_done, &a, &d);
  hub.any_waiters--;
  pthread_mutex_unlock(&hub.mu);
  return r < 0 ? r : a.found;
}

/* ---- as-completed sets ---------------------------------------------------- */

mps_future_set *mps_future_set_new(void)
{
  mps_future_set *s = calloc(1, sizeof(*s));
  return s != NULL ? s : mps__fail(-ENOMEM);
}

int mps_future_set_add(mps_future_set *s, mps_future *f)
{
  if (s == NULL || !MPS__OPEN(f))
    return -EINVAL;
  hub_lock();
  int r = f->set != NULL ? -EBUSY : 0;
  if (r == 0) {
    f->set = s;
    s->members++;
    if (f->done) { /* already complete: in line now */
      f->set_next = NULL;
      if (s->tail != NULL)
        s->tail->set_next = f;
      else
        s->head = f;
      s->tail = f;
    }
  }
  pthread_mutex_unlock(&hub.mu);
  return r;
}

static bool set_ready(const void *arg)
{
  const mps_future_set *s = arg;
  return s->head != NULL || s->members == 0;
}

mps_future *mps_future_set_next(mps_future_set *s, double timeout)
{
  mps__deadline d;
  if (s == NULL || mps__deadline_init(&d, timeout) < 0)
    return mps__fail(-EINVAL);
  hub_lock();
  hub.any_waiters++;
  int r = hub_wait(set_ready, s, &d);
  hub.any_waiters--;
  mps_future *f = NULL;
  if (r == 0 && s->head == NULL)
    r = -ENOENT;
  if (r == 0) {
    f = s->head;
    s->head = f->set_next;
    if (s->head == NULL)
      s->tail = NULL;
    f->set_next = NULL;
    set_leave(f);
  }
  pthread_mutex_unlock(&hub.mu);
  return f != NULL ? f : mps__fail(r);
}

void mps_future_set_free(mps_future_set *s)
{
  if (s == NULL)
    return;
  hub_lock();
  s->freed = true;
  while (s->head != NULL) { /* done, never returned */
    mps_future *f = s->head;
    s->head = f->set_next;
    s->members++; /* set_leave must not free s under us */
    set_leave(f);
    s->members--;
  }
  bool last = s->members == 0;
  pthread_mutex_unlock(&hub.mu);
  if (last)
    free(s);
}
