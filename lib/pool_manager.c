/* The pool's two parent-side threads: the manager forks, reaps and replaces
 * workers; the collector turns result messages into futures and map
 * results, and settles what a dead worker held.
 *
 * Nothing here is shared but the workers' slots (read after a worker died)
 * and the queues. Crash semantics, the manager's side: when worker i is
 * gone (its pidfd, or waitid where there is none), nobody else consumes
 * inbox i any more (the dispatcher stopped feeding it first), so the
 * manager drains it: the first batch left there is the first the worker did
 * not take, and every batch before it was taken. It posts the results left
 * in the worker's area (a repost of results already posted is ignored),
 * then a DEATH record with the worker's progress words, and only then
 * starts a replacement. The collector reads the result queue in order, so
 * it sees every result the worker posted before the DEATH record, and
 * settles each batch of that worker from the record alone (settle_death).
 */
#include "config.h"

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pool_internal.h"
#include "queue_internal.h" /* mps__qtok_use before a fork */

/* How often workers without a pidfd are checked, and failed forks retried. */
#define POLL_NO_PIDFD_MS 10
#define POLL_RETRY_MS    100
/* Workers that die before their initializer returns would be replaced
 * forever: after this many such deaths in a row the pool gives up. */
#define INIT_FAILS_MAX MPS_POOL_INIT_FAILS_MAX

static int spawn(mps_pool *p, unsigned i)
{
  struct mps__pool_slot *s = mps__pool_slot(p, i);
  atomic_store(&s->ready, 0);
  atomic_store(&s->exit_reason, MPS__EXIT_CRASH);
  atomic_store(&s->taken, 0);
  atomic_store(&s->started, 0);
  atomic_store(&s->finished, 0);
  atomic_store(&s->posted, 0);
  atomic_store(&s->area_used, 0);
  /* Allocated before the fork: the child of a threaded process must not
   * count on malloc, whose locks another thread may have held (glibc's
   * survive a fork, AddressSanitizer's do not). That includes the record
   * each thread keeps of the queues it uses (queue_token.c), made on its
   * first call: made here, the worker inherits it. */
  struct mps__pool_batch *buf = malloc(sizeof(*buf) + p->batch_max);
  if (buf == NULL || mps__qtok_use(p->w[i].inbox) < 0 || mps__qtok_use(p->results) < 0) {
    free(buf);
    return -ENOMEM;
  }
  pid_t pid = mps__fork(true); /* dies with this thread, even by a crash */
  if (pid == 0)
    mps__pool_worker_main(p, i, buf);
  free(buf);
  if (pid < 0)
    return pid;
  int fd = mps__pidfd_open(pid); /* without one: waitid in watch() */
  pthread_mutex_lock(&p->mu);
  p->w[i].pid = pid;
  p->w[i].pidfd = fd >= 0 ? fd : -1;
  p->w[i].accepting = true;
  p->w[i].stop_sent = false;
  p->live++;
  mps__pool_dispatch(p);
  pthread_mutex_unlock(&p->mu);
  return 0;
}

/* Takes what is left in a dead worker's inbox; returns the first seq. */
static uint64_t drain(mps_pool *p, unsigned i, uint64_t next, struct mps__pool_batch *buf)
{
  uint64_t first = next;
  bool any = false;
  ssize_t r;
  while ((r = mps_queue_get(p->w[i].inbox, buf, sizeof(*buf) + p->batch_max, 0)) >= 0)
    if (!any && (size_t)r >= sizeof(*buf)) {
      first = buf->seq;
      any = true;
    }
  return first;
}

/* Posts the dead worker's results that are in its area only. */
static void repost(mps_pool *p, unsigned i, struct mps__pool_res *copy)
{
  struct mps__pool_slot *s = mps__pool_slot(p, i);
  uint64_t posted = atomic_load(&s->posted), finished = atomic_load(&s->finished);
  size_t used = atomic_load(&s->area_used);
  if (finished <= posted || used > p->area_size - sizeof(*copy))
    return;
  memcpy(copy + 1, mps__pool_area(p, i) + 1, used);
  *copy = (struct mps__pool_res){.kind = MPS__RES_RESULT,
                                 .worker = i,
                                 .seq = atomic_load(&s->taken),
                                 .first = (uint32_t)posted,
                                 .count = (uint32_t)(finished - posted)};
  /* Fails only once the pool is torn down: nobody waits for it then. */
  if (mps_queue_put(p->results, copy, sizeof(*copy) + used, MPS_FOREVER) < 0)
    return;
}

static bool give_up_on_init(mps_pool *p, bool was_ready)
{
  p->init_fails = was_ready ? 0 : p->init_fails + 1;
  if (p->init_fails < INIT_FAILS_MAX)
    return false;
  pthread_mutex_lock(&p->mu);
  p->shutting = p->terminating = true;
  p->fail_err = -ECHILD;
  pthread_mutex_unlock(&p->mu);
  mps__pool_fail_pending(p, -ECHILD);
  return true;
}

/* Worker i ended: settle it (see the top of the file), then replace it. */
static void on_exit_of(mps_pool *p, unsigned i, void *buf)
{
  struct mps__pool_slot *s = mps__pool_slot(p, i);
  pthread_mutex_lock(&p->mu);
  pid_t pid = p->w[i].pid;
  int fd = p->w[i].pidfd;
  p->w[i].pid = 0; /* before the reap: nobody signals a reused pid */
  p->w[i].pidfd = -1;
  p->w[i].accepting = false;
  p->live--;
  uint64_t next = p->w[i].next_seq + 1; /* the seq it would feed next */
  pthread_mutex_unlock(&p->mu);
  waitpid(pid, NULL, 0);
  if (fd >= 0)
    close(fd);
  struct mps__pool_res death = {.kind = MPS__RES_DEATH,
                                .worker = i,
                                .taken = atomic_load(&s->taken),
                                .started = atomic_load(&s->started),
                                .finished = atomic_load(&s->finished),
                                .untaken = drain(p, i, next, buf),
                                .next = next};
  repost(p, i, buf);
  uint32_t why = atomic_load(&s->exit_reason);
  bool broken = give_up_on_init(p, atomic_load(&s->ready) != 0);
  pthread_mutex_lock(&p->mu);
  bool again = !broken && !p->terminating && (why == MPS__EXIT_CRASH || why == MPS__EXIT_RECYCLE);
  pthread_mutex_unlock(&p->mu);
  /* The replacement first, so that whoever sees the task fail also sees
   * it; it only gets batches from seq `next` on, which the DEATH record
   * leaves alone. */
  if (again)
    p->w[i].respawn = spawn(p, i) < 0;
  if (mps_queue_put(p->results, &death, sizeof(death), MPS_FOREVER) < 0)
    return; /* torn down: nobody waits for it */
}

/* Sleeps until a worker ends or the control eventfd is poked. Workers
 * without a pidfd (no kernel support, or refused by seccomp or valgrind)
 * are checked with waitid every POLL_NO_PIDFD_MS instead. */
static void watch(mps_pool *p, bool retry, void *buf)
{
  struct pollfd pf[MPS_POOL_WORKERS_MAX + 1];
  unsigned idx[MPS_POOL_WORKERS_MAX];
  nfds_t n = 0;
  int ms = retry ? POLL_RETRY_MS : -1;
  pf[n++] = (struct pollfd){.fd = p->evfd, .events = POLLIN};
  pthread_mutex_lock(&p->mu);
  for (unsigned i = 0; i < p->nworkers; i++)
    if (p->w[i].pidfd >= 0) {
      idx[n - 1] = i;
      pf[n++] = (struct pollfd){.fd = p->w[i].pidfd, .events = POLLIN};
    } else if (p->w[i].pid > 0) {
      ms = POLL_NO_PIDFD_MS;
    }
  pthread_mutex_unlock(&p->mu);
  if (poll(pf, n, ms) < 0)
    return;
  uint64_t v;
  if (pf[0].revents != 0 && read(p->evfd, &v, sizeof(v)) < 0)
    v = 0; /* nothing to do: the flags it signals are read under the mutex */
  for (nfds_t k = 1; k < n; k++)
    if (pf[k].revents != 0)
      on_exit_of(p, idx[k - 1], buf);
  for (unsigned i = 0; i < p->nworkers; i++)
    if (p->w[i].pidfd < 0 && p->w[i].pid > 0 && mps__child_exited(p->w[i].pid))
      on_exit_of(p, i, buf);
}

void *mps__pool_manager_main(void *arg)
{
  mps_pool *p = arg;
  /* Big enough for a batch (drain) and for a result area (repost). */
  void *buf = malloc(p->area_size > sizeof(struct mps__pool_batch) + p->batch_max
                         ? p->area_size
                         : sizeof(struct mps__pool_batch) + p->batch_max);
  for (unsigned i = 0; i < p->nworkers; i++)
    p->w[i].respawn = true;
  for (;;) {
    bool retry = false;
    for (unsigned i = 0; i < p->nworkers && buf != NULL; i++)
      if (p->w[i].respawn) {
        p->w[i].respawn = spawn(p, i) < 0;
        retry |= p->w[i].respawn;
      }
    pthread_mutex_lock(&p->mu);
    if (!p->ready) { /* mps_pool_new returns once the first workers exist */
      p->ready = true;
      p->start_err = buf == NULL ? -ENOMEM : 0;
      pthread_cond_broadcast(&p->cv);
    }
    bool end = (p->shutting && p->live == 0) || buf == NULL;
    pthread_mutex_unlock(&p->mu);
    if (end)
      break;
    watch(p, retry, buf);
  }
  free(buf);
  /* Every worker is gone and every DEATH record is queued: let the
   * collector drain what is left and stop. */
  mps_queue_shutdown(p->results);
  return NULL;
}

/* ---- collector ---------------------------------------------------------- */

static struct mps__pool_job *find(mps_pool *p, unsigned i, uint64_t seq)
{
  struct mps__pool_job *j = p->w[i].head;
  while (j != NULL && j->msg.seq != seq)
    j = j->next;
  return j;
}

/* Takes j out of its worker's record (j is in it). */
static void unlink_job(mps_pool *p, struct mps__pool_job *j)
{
  struct mps__pool_worker *w = &p->w[j->worker];
  struct mps__pool_job **pp = &w->head, *prev = NULL;
  while (*pp != j) {
    prev = *pp;
    pp = &(*pp)->next;
  }
  *pp = j->next;
  if (w->tail == j)
    w->tail = prev;
  j->next = NULL;
  w->queued--;
}

/* A result message: report its entries; a finished batch leaves the record. */
static void on_result(mps_pool *p, const struct mps__pool_res *r, size_t n)
{
  struct mps__pool_job *j = find(p, r->worker, r->seq);
  if (j == NULL)
    return; /* a repost of results already seen */
  const char *e = (const char *)(r + 1), *end = (const char *)r + n;
  for (uint32_t k = 0; k < r->count && r->first + k < j->msg.n; k++) {
    const struct mps__pool_entry *en = (const struct mps__pool_entry *)e;
    if ((size_t)(end - e) < sizeof(*en) || en->len > (size_t)(end - e) - sizeof(*en))
      break;
    mps__pool_report(p, j, r->first + k, 0, en->value, en->data, (size_t)en->len);
    e += mps__pool_entry_size((size_t)en->len);
  }
  if (r->kind == MPS__RES_SKIPPED || r->first + r->count >= j->msg.n) {
    unlink_job(p, j);
    mps__pool_job_done(p, j);
  }
}

/* The batches of a dead worker, from its DEATH record (see the top). */
static void settle_death(mps_pool *p, const struct mps__pool_res *d)
{
  struct mps__pool_job *j = p->w[d->worker].head, *next;
  for (; j != NULL; j = next) {
    next = j->next;
    if (j->msg.seq >= d->next)
      continue; /* fed to the replacement */
    unlink_job(p, j);
    size_t from = 0; /* its first task that never started */
    if (j->msg.seq < d->untaken && j->msg.seq == d->taken) {
      if (d->started > d->finished)
        mps__pool_report(p, j, (size_t)d->finished, -ECHILD, 0, NULL, 0);
      from = (size_t)d->started;
    } else if (j->msg.seq < d->taken) {
      from = j->msg.n; /* finished before: only unreported ones fail */
      for (size_t k = 0; k < j->msg.n; k++)
        mps__pool_report(p, j, k, -ECHILD, 0, NULL, 0);
    }
    if (from < j->msg.n && !j->cancelled)
      mps__pool_requeue_from(p, j, from);
    else
      mps__pool_job_done(p, j);
  }
}

/* Futures are completed after the pool's mutex is released (lock order:
 * futures, then pool); their result bytes are still in r then. */
static void collect(mps_pool *p, struct mps__pool_res *r, size_t n)
{
  pthread_mutex_lock(&p->mu);
  if (r->worker < p->nworkers && r->kind == MPS__RES_DEATH)
    settle_death(p, r);
  else if (r->worker < p->nworkers)
    on_result(p, r, n);
  mps__pool_dispatch(p);
  struct mps__pool_job *fin = mps__pool_take_finished(p);
  pthread_mutex_unlock(&p->mu);
  mps__pool_complete_finished(fin);
}

void *mps__pool_collector_main(void *arg)
{
  mps_pool *p = arg;
  size_t cap = p->area_size;
  struct mps__pool_res *r = malloc(cap);
  for (;;) {
    ssize_t n = r != NULL ? mps_queue_get(p->results, r, cap, MPS_FOREVER) : -ENOMEM;
    if (n < 0)
      break;
    if ((size_t)n >= sizeof(*r))
      collect(p, r, (size_t)n);
  }
  free(r);
  mps__pool_fail_pending(p, -ECHILD); /* none should be left; never hang */
  pthread_mutex_lock(&p->mu);
  p->finished = true;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  return NULL;
}
