/* Futures: the parent-side results of pool tasks, and as-completed sets.
 *
 * A future is process-private memory, never shared. This file is a leaf: it
 * knows nothing of pools. Whoever runs the task (the pool) completes the
 * future with mps__future_complete() and registers the step that cancels
 * it (mps__future_set_cancel), which mps_future_cancel() calls.
 *
 * Locks: each runner has its own hub (a mutex and a condition variable)
 * that guards its futures, so that two pools never wait for each other;
 * mps__future_new() puts the futures of a runner without one (the remote
 * pool) in a hub of their own. Waiting on futures of several hubs at once
 * goes through waiters that register on each future: mps_pool_wait_any()
 * puts a listener on each, which the completion wakes, and an as-completed
 * set has its own mutex, which the completion takes to append the future.
 * Lock order: a hub, then (the cancel step) the runner's own mutex, or a
 * set's mutex, or a listener's waker; nothing holds two hubs at once. The
 * runner never completes a future while holding a lock its cancel step
 * takes.
 *
 * Fork: every hub and set is in a registry whose locks are all held across
 * fork() (hubs first, as the lock order says), so that a child never
 * inherits one locked by a thread that does not exist there.
 *
 * A future holds two references, the caller's and its runner's; it is freed
 * when both are dropped, so freeing a pending future or the pool in either
 * order is safe, and a finished future outlives its pool (it holds a
 * reference to its hub).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct mps__future_hub {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  _Atomic unsigned refs;               /* its runner's, and one per future */
  struct mps__future_hub *prev, *next; /* the registry */
};

/* mps_pool_wait_any's: woken by any of the futures it listens to. */
struct waker {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool fired;
};
struct listener {
  struct listener *prev, *next; /* on one future, under its hub */
  struct waker *w;              /* NULL: not on the future's list */
};

struct mps_future {
  struct mps__future_hub *hub; /* guards every field but those of the set */
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
  struct listener *listeners;
  mps_future_set *set; /* the set it was added to last, until freed or moved */
  /* Under set->mu: */
  bool in_set; /* a member: neither returned by next nor dropped */
  bool queued; /* done, in the set's list */
  mps_future *set_next;
  uint32_t magic; /* MPS__LIVE until the caller frees it (internal.h) */
};

struct mps_future_set {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t members;              /* futures in_set */
  size_t links;                /* futures whose set points here */
  int waiters;                 /* threads in mps_future_set_next() */
  bool freed;                  /* the caller freed it: it goes with its last link */
  mps_future *head, *tail;     /* done members, in completion order */
  mps_future_set *prev, *next; /* the registry */
};

/* ---- the registry and fork ----------------------------------------------- */

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;
static struct mps__future_hub *reg_hubs;
static mps_future_set *reg_sets;

static void cv_init(pthread_cond_t *cv)
{
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(cv, &a);
  pthread_condattr_destroy(&a);
}

static void reg_prepare(void)
{
  pthread_mutex_lock(&reg_mu);
  for (struct mps__future_hub *h = reg_hubs; h != NULL; h = h->next)
    pthread_mutex_lock(&h->mu);
  for (mps_future_set *s = reg_sets; s != NULL; s = s->next)
    pthread_mutex_lock(&s->mu);
}

static void reg_parent(void)
{
  for (mps_future_set *s = reg_sets; s != NULL; s = s->next)
    pthread_mutex_unlock(&s->mu);
  for (struct mps__future_hub *h = reg_hubs; h != NULL; h = h->next)
    pthread_mutex_unlock(&h->mu);
  pthread_mutex_unlock(&reg_mu);
}

static void reg_child(void)
{
  for (mps_future_set *s = reg_sets; s != NULL; s = s->next) {
    pthread_mutex_init(&s->mu, NULL);
    cv_init(&s->cv);
  }
  for (struct mps__future_hub *h = reg_hubs; h != NULL; h = h->next) {
    pthread_mutex_init(&h->mu, NULL);
    cv_init(&h->cv);
  }
  pthread_mutex_init(&reg_mu, NULL);
}

static void reg_setup(void) { pthread_atfork(reg_prepare, reg_parent, reg_child); }

/* Links x into the registry list *head (x has prev and next). */
#define REG_LINK(head, x)                                                                          \
  do {                                                                                             \
    pthread_mutex_lock(&reg_mu);                                                                   \
    (x)->prev = NULL;                                                                              \
    (x)->next = (head);                                                                            \
    if ((head) != NULL)                                                                            \
      (head)->prev = (x);                                                                          \
    (head) = (x);                                                                                  \
    pthread_mutex_unlock(&reg_mu);                                                                 \
  } while (0)
#define REG_UNLINK(head, x)                                                                        \
  do {                                                                                             \
    pthread_mutex_lock(&reg_mu);                                                                   \
    if ((x)->prev != NULL)                                                                         \
      (x)->prev->next = (x)->next;                                                                 \
    else                                                                                           \
      (head) = (x)->next;                                                                          \
    if ((x)->next != NULL)                                                                         \
      (x)->next->prev = (x)->prev;                                                                 \
    pthread_mutex_unlock(&reg_mu);                                                                 \
  } while (0)

/* ---- hubs ------------------------------------------------------------------ */

struct mps__future_hub *mps__future_hub_new(void)
{
  struct mps__future_hub *h = calloc(1, sizeof(*h));
  if (h == NULL)
    return NULL;
  pthread_mutex_init(&h->mu, NULL);
  cv_init(&h->cv);
  atomic_init(&h->refs, 1);
  pthread_once(&reg_once, reg_setup);
  REG_LINK(reg_hubs, h);
  return h;
}

/* Never called with a hub or set locked: it takes the registry's lock. */
void mps__future_hub_release(struct mps__future_hub *h)
{
  if (h == NULL || atomic_fetch_sub(&h->refs, 1) != 1)
    return;
  REG_UNLINK(reg_hubs, h);
  pthread_cond_destroy(&h->cv);
  pthread_mutex_destroy(&h->mu);
  free(h);
}

/* The hub of futures whose runner has none of its own; never released. */
static struct mps__future_hub *lone_hub;
static pthread_once_t lone_once = PTHREAD_ONCE_INIT;
static void lone_setup(void) { lone_hub = mps__future_hub_new(); }

static void lock(const mps_future *f) { pthread_mutex_lock(&f->hub->mu); }
static void unlock(const mps_future *f) { pthread_mutex_unlock(&f->hub->mu); }

/* Drops one reference to f and unlocks its hub; the last one frees f and
 * its reference to the hub (after the unlock). */
static void unref_unlock(mps_future *f)
{
  struct mps__future_hub *h = f->hub;
  bool last = --f->refs == 0;
  pthread_mutex_unlock(&h->mu);
  if (!last)
    return;
  if (f->data != f->small)
    free(f->data);
  free(f);
  mps__future_hub_release(h);
}

/* ---- sets: the parts the completion needs ---------------------------------- */

static void set_destroy(mps_future_set *s)
{
  REG_UNLINK(reg_sets, s);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

/* Appends done member f to its set's list (s->mu held). */
static void set_enqueue(mps_future_set *s, mps_future *f)
{
  f->queued = true;
  f->set_next = NULL;
  if (s->tail != NULL)
    s->tail->set_next = f;
  else
    s->head = f;
  s->tail = f;
  if (s->waiters > 0)
    pthread_cond_broadcast(&s->cv);
}

/* f leaves the set it points to (its hub held). Returns the set to destroy
 * once the hub is unlocked (its last link went, after it was freed), or
 * NULL. */
static mps_future_set *set_unlink(mps_future *f)
{
  mps_future_set *s = f->set;
  pthread_mutex_lock(&s->mu);
  if (f->queued) {
    mps_future **pp = &s->head, *prev = NULL;
    while (*pp != f) {
      prev = *pp;
      pp = &(*pp)->set_next;
    }
    *pp = f->set_next;
    if (s->tail == f)
      s->tail = prev;
  }
  if (f->in_set && --s->members == 0 && s->waiters > 0)
    pthread_cond_broadcast(&s->cv); /* next now says ENOENT */
  f->in_set = f->queued = false;
  f->set = NULL;
  bool last = --s->links == 0 && s->freed;
  pthread_mutex_unlock(&s->mu);
  return last ? s : NULL;
}

/* ---- making and completing ------------------------------------------------- */

mps_future *mps__future_new_in(struct mps__future_hub *h, int (*cancel)(void *, mps_future *),
                               void *arg)
{
  mps_future *f = h != NULL ? calloc(1, sizeof(*f)) : NULL;
  if (f == NULL)
    return NULL;
  atomic_fetch_add(&h->refs, 1);
  f->hub = h;
  f->refs = 2;
  f->magic = MPS__LIVE;
  f->owner = getpid();
  f->cancel = cancel; /* nobody else sees f yet: no lock */
  f->cancel_arg = arg;
  return f;
}

mps_future *mps__future_new(void)
{
  pthread_once(&lone_once, lone_setup);
  return mps__future_new_in(lone_hub, NULL, NULL);
}

void mps__future_set_cancel(mps_future *f, int (*cancel)(void *, mps_future *), void *arg)
{
  lock(f);
  f->cancel = cancel;
  f->cancel_arg = arg;
  unlock(f);
}

void mps__future_release(mps_future *f)
{
  lock(f);
  unref_unlock(f);
}

static void waker_fire(struct waker *w)
{
  pthread_mutex_lock(&w->mu);
  w->fired = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* Marks f done (its hub held) and wakes whoever waits for it. */
static void finish(mps_future *f, int status, int64_t value, void *data)
{
  f->status = status;
  f->value = value;
  f->data = data;
  f->done = true;
  f->cancel = NULL;
  if (f->set != NULL) {
    mps_future_set *s = f->set;
    pthread_mutex_lock(&s->mu);
    if (f->in_set && !s->freed)
      set_enqueue(s, f);
    pthread_mutex_unlock(&s->mu);
  }
  for (struct listener *l = f->listeners; l != NULL; l = l->next)
    waker_fire(l->w);
  /* A wake-up costs a syscall per sleeper: only when one may care. */
  if (f->waiters > 0)
    pthread_cond_broadcast(&f->hub->cv);
}

void mps__future_complete(mps_future *f, int status, int64_t value, const void *data, size_t len)
{
  lock(f);
  f->refs++; /* the runner keeps its own, dropped by mps__future_release */
  unlock(f);
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
  lock(f);
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
    unref_unlock(f); /* the runner's */
    return;
  }
  unlock(f);
  cb(f, cb_arg);
  mps__future_release(f); /* the runner's, kept for the callback */
}

/* ---- waiting on one future ------------------------------------------------- */

/* Waits on cv (mu held) until pred(arg) or the deadline. 0 or an error. */
static int cv_wait(pthread_cond_t *cv, pthread_mutex_t *mu, bool (*pred)(const void *),
                   const void *arg, const mps__deadline *d)
{
  while (!pred(arg)) {
    if (d->kind == MPS__ONCE)
      return -EAGAIN;
    int r =
        d->kind == MPS__TIMED ? pthread_cond_timedwait(cv, mu, &d->at) : pthread_cond_wait(cv, mu);
    if (r == ETIMEDOUT && !pred(arg))
      return -ETIMEDOUT;
  }
  return 0;
}

static bool future_is_done(const void *arg) { return ((const mps_future *)arg)->done; }

/* 0 if the calling process may wait for f (its hub held). */
static int may_wait(const mps_future *f) { return f->done || f->owner == getpid() ? 0 : -EPERM; }

static int copy_result(const mps_future *f, ssize_t *value, void *out, size_t cap)
{
  if (value != NULL && (f->status == 0 || f->status == -EMSGSIZE))
    *value = (ssize_t)f->value; /* -EMSGSIZE: the length it had */
  if (f->status != 0)
    return f->status;
  if (f->value > 0 && (uint64_t)f->value > cap)
    return -EMSGSIZE;
  if (f->value > 0)
    memcpy(out, f->data, (size_t)f->value);
  return 0;
}

int mps__future_wait(mps_future *f, ssize_t *value, void *out, size_t cap, const mps__deadline *d)
{
  lock(f);
  int r = may_wait(f);
  f->waiters++;
  if (r == 0)
    r = cv_wait(&f->hub->cv, &f->hub->mu, future_is_done, f, d);
  f->waiters--;
  if (r == 0)
    r = copy_result(f, value, out, cap);
  unlock(f);
  return r;
}

int mps_future_result(mps_future *f, ssize_t *value, void *out, size_t cap, double timeout)
{
  mps__deadline d;
  if (!MPS__OPEN(f) || (out == NULL && cap > 0) || mps__deadline_init(&d, timeout) < 0)
    return -EINVAL;
  return mps__future_wait(f, value, out, cap, &d);
}

bool mps_future_done(const mps_future *f)
{
  if (!MPS__OPEN(f))
    return false;
  lock(f);
  bool done = f->done;
  unlock(f);
  return done;
}

int mps_future_cancel(mps_future *f)
{
  if (!MPS__OPEN(f))
    return -EINVAL;
  lock(f);
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
  unlock(f);
  if (cb != NULL)
    cb(f, cb_arg);
  mps__future_release(f);
  return r;
}

int mps_future_add_done_callback(mps_future *f, void (*cb)(mps_future *f, void *arg), void *arg)
{
  if (!MPS__OPEN(f) || cb == NULL)
    return -EINVAL;
  lock(f);
  if (f->cb != NULL) {
    unlock(f);
    return -EBUSY;
  }
  f->cb = cb;
  f->cb_arg = arg;
  bool now = f->done;
  unlock(f);
  if (now)
    cb(f, arg);
  return 0;
}

void mps_future_free(mps_future *f)
{
  if (!MPS__OPEN(f))
    return;
  lock(f);
  f->magic = MPS__DEAD;
  mps_future_set *dead = f->set != NULL ? set_unlink(f) : NULL;
  unref_unlock(f);
  if (dead != NULL)
    set_destroy(dead);
}

/* ---- waiting on several futures -------------------------------------------- */

static void listen_on(mps_future *f, struct listener *l, struct waker *w)
{
  l->w = w;
  l->prev = NULL;
  l->next = f->listeners;
  if (f->listeners != NULL)
    f->listeners->prev = l;
  f->listeners = l;
}

static void listen_off(mps_future *f, struct listener *l)
{
  if (l->prev != NULL)
    l->prev->next = l->next;
  else
    f->listeners = l->next;
  if (l->next != NULL)
    l->next->prev = l->prev;
  l->w = NULL;
}

/* One pass over fs: *found gets the lowest done index, or -1 if none (then
 * every pending one has a listener). 0 or -EPERM. */
static int scan(mps_future *const *fs, size_t n, struct listener *ls, struct waker *w,
                ssize_t *found)
{
  int r = 0;
  *found = -1;
  for (size_t i = 0; i < n; i++) {
    mps_future *f = fs[i];
    if (f == NULL)
      continue;
    lock(f);
    r = r < 0 ? r : may_wait(f);
    if (f->done && *found < 0)
      *found = (ssize_t)i;
    else if (!f->done && ls[i].w == NULL)
      listen_on(f, &ls[i], w);
    unlock(f);
  }
  return r;
}

/* Sleeps until a listener fires or d passes: 0 or -ETIMEDOUT. */
static int waker_sleep(struct waker *w, const mps__deadline *d)
{
  int r = 0;
  pthread_mutex_lock(&w->mu);
  while (!w->fired && r == 0)
    r = d->kind == MPS__TIMED ? pthread_cond_timedwait(&w->cv, &w->mu, &d->at)
                              : pthread_cond_wait(&w->cv, &w->mu);
  w->fired = false;
  pthread_mutex_unlock(&w->mu);
  return r == ETIMEDOUT ? -ETIMEDOUT : 0;
}

static ssize_t wait_any(mps_future *const *fs, size_t n, struct listener *ls,
                        const mps__deadline *d)
{
  struct waker w = {.fired = false};
  pthread_mutex_init(&w.mu, NULL);
  cv_init(&w.cv);
  ssize_t found;
  int r;
  while ((r = scan(fs, n, ls, &w, &found)) == 0 && found < 0) {
    if (d->kind == MPS__ONCE)
      r = -EAGAIN;
    else if (waker_sleep(&w, d) < 0 && (r = scan(fs, n, ls, &w, &found)) == 0 && found < 0)
      r = -ETIMEDOUT; /* after one last look */
    if (r < 0 || found >= 0)
      break;
  }
  for (size_t i = 0; i < n; i++)
    if (ls[i].w != NULL) { /* after this, no completion can reach w */
      lock(fs[i]);
      listen_off(fs[i], &ls[i]);
      unlock(fs[i]);
    }
  pthread_cond_destroy(&w.cv);
  pthread_mutex_destroy(&w.mu);
  return r < 0 ? r : found;
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
  struct listener *ls = calloc(n, sizeof(*ls));
  if (ls == NULL)
    return -ENOMEM;
  ssize_t r = wait_any(fs, n, ls, &d);
  free(ls);
  return r;
}

/* ---- as-completed sets ---------------------------------------------------- */

mps_future_set *mps_future_set_new(void)
{
  mps_future_set *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return mps__fail(-ENOMEM);
  pthread_mutex_init(&s->mu, NULL);
  cv_init(&s->cv);
  pthread_once(&reg_once, reg_setup);
  REG_LINK(reg_sets, s);
  return s;
}

int mps_future_set_add(mps_future_set *s, mps_future *f)
{
  if (s == NULL || !MPS__OPEN(f))
    return -EINVAL;
  lock(f);
  mps_future_set *old = f->set, *dead = NULL;
  if (old != NULL) {
    pthread_mutex_lock(&old->mu);
    bool busy = f->in_set && !old->freed;
    pthread_mutex_unlock(&old->mu);
    if (busy) {
      unlock(f);
      return -EBUSY;
    }
    dead = set_unlink(f); /* returned by next, or its set freed */
  }
  f->set = s;
  pthread_mutex_lock(&s->mu);
  s->links++;
  s->members++;
  f->in_set = true;
  if (f->done) /* already complete: in line now */
    set_enqueue(s, f);
  pthread_mutex_unlock(&s->mu);
  unlock(f);
  if (dead != NULL)
    set_destroy(dead);
  return 0;
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
  pthread_mutex_lock(&s->mu);
  s->waiters++;
  int r = cv_wait(&s->cv, &s->mu, set_ready, s, &d);
  s->waiters--;
  mps_future *f = NULL;
  if (r == 0 && s->head == NULL)
    r = -ENOENT;
  if (r == 0) {
    f = s->head;
    s->head = f->set_next;
    if (s->head == NULL)
      s->tail = NULL;
    f->set_next = NULL;
    f->queued = f->in_set = false; /* it still links here: see set_unlink */
    s->members--;
  }
  pthread_mutex_unlock(&s->mu);
  return f != NULL ? f : mps__fail(r);
}

void mps_future_set_free(mps_future_set *s)
{
  if (s == NULL)
    return;
  pthread_mutex_lock(&s->mu);
  s->freed = true;
  for (mps_future *f = s->head; f != NULL; f = f->set_next) {
    f->queued = f->in_set = false; /* done, never returned */
    s->members--;
  }
  s->head = s->tail = NULL;
  bool last = s->links == 0;
  pthread_mutex_unlock(&s->mu);
  if (last)
    set_destroy(s);
}
