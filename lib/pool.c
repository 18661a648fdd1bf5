/* Process pool: forked workers, each fed through its own inbox, with futures
 * and maps on the parent's side.
 *
 * Shared layout (one anonymous segment, kind POOL): the header, then one
 * cache-line-aligned slot per worker (pool_internal.h): the worker's
 * progress words, a claim ring on which the worker and the parent race to
 * start or cancel a batch, and the worker's result area. Each worker has an
 * inbox (an mps_queue only it consumes, fed only by this process) of batch
 * messages {seq, fn, n, arg_size, args}; all post to one result queue.
 *
 * Parent side (process-private, under the pool's mutex): a job is one batch:
 * one submitted task with its future, or a chunk of a map. Jobs wait in a
 * pending list until a worker's inbox has room (at most `depth` batches per
 * worker, the least loaded first); each worker's record lists the jobs fed
 * to it, by seq, until their results are in. This file makes, feeds and
 * stops pools; the maps are pool_map.c's (which calls this file), the
 * manager and collector threads pool_manager.c's, jobs and dispatch
 * pool_jobs.c's, the worker's side pool_worker.c's; each calls only the
 * ones after it. The pool's futures have a hub (lock) of their own, so
 * that pools never wait for each other (future.c).
 *
 * Crash semantics: a worker killed at any instruction costs only the task
 * it was running (-ECHILD); its finished tasks keep their results and its
 * tasks that never started run on another worker. Each task runs at most
 * once: the manager decides exactly what a dead worker held from its inbox
 * and its progress words (pool_worker.c, pool_manager.c), never by a guess.
 * The parent's threads are not robust to the parent's own death: the
 * workers die with it (PR_SET_PDEATHSIG).
 */
#include "config.h"

#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "pool_internal.h"
#include "remote.h"

/* The cancel step of a submitted task's future (the pool's futures hub
 * held: lock order hub, then p->mu). On
 * success the future's runner reference passes to future.c. */
static int cancel_task(void *arg, mps_future *f)
{
  struct mps__pool_job *j = arg;
  mps_pool *p = j->pool;
  (void)f;
  pthread_mutex_lock(&p->mu);
  int r = j->reported ? -EBUSY : mps__pool_job_cancel(p, j);
  if (r == 0) {
    j->f = NULL;
    if (!j->dispatched)
      free(j); /* in no list any more */
  }
  pthread_mutex_unlock(&p->mu);
  return r;
}

/* ---- construction ------------------------------------------------------- */

static int opts_check(mps_pool_opts *o)
{
  if (!mps__reserved_zero(o->reserved))
    return -EINVAL;
  if (o->workers == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    o->workers = n > 0 ? (unsigned)n : 1;
  }
  o->max_arg = o->max_arg ? o->max_arg : MPS_POOL_DEFAULT_MAX_ARG;
  o->max_result = o->max_result ? o->max_result : MPS_POOL_DEFAULT_MAX_RESULT;
  o->queue_size = o->queue_size ? o->queue_size : MPS_POOL_DEFAULT_QUEUE;
  if (o->workers > MPS_POOL_WORKERS_MAX || o->max_arg > MPS_POOL_LIMIT_MAX ||
      o->max_result > MPS_POOL_LIMIT_MAX || o->queue_size > MPS_QUEUE_MAXSIZE_MAX)
    return -EINVAL;
  return 0;
}

/* Sizes: a batch holds one argument of max_arg or a chunk of small ones;
 * an inbox holds `depth` batches (fewer for big batches) and a STOP. */
static void pool_sizes(mps_pool *p)
{
  p->batch_max = p->opts.max_arg > MPS__POOL_BATCH_BYTES ? p->opts.max_arg : MPS__POOL_BATCH_BYTES;
  size_t msg = sizeof(struct mps__pool_batch) + p->batch_max;
  size_t depth = p->opts.queue_size / p->nworkers;
  if (depth > MPS__POOL_INBOX_BYTES / msg)
    depth = MPS__POOL_INBOX_BYTES / msg;
  p->depth = (unsigned)(depth < 2 ? 2 : depth > MPS__POOL_DEPTH_MAX ? MPS__POOL_DEPTH_MAX : depth);
  p->area_size = sizeof(struct mps__pool_res) + MPS__POOL_AREA_BYTES +
                 mps__pool_entry_size(p->opts.max_result);
  size_t ring = 2 * (size_t)p->depth * sizeof(uint64_t);
  p->slot_size =
      MPS__ALIGN_UP(sizeof(struct mps__pool_slot) + ring + 8 + p->area_size, MPS__CACHELINE);
}

static int make_queues(mps_pool *p)
{
  mps_queue_opts qi = {.maxsize = p->depth + 1,
                       .max_msg = sizeof(struct mps__pool_batch) + p->batch_max};
  for (unsigned i = 0; i < p->nworkers; i++)
    if ((p->w[i].inbox = mps_queue_new(&qi)) == NULL)
      return -errno;
  /* Room for many results: a worker that finds it full sleeps, and every
   * such sleep is a context switch on the hot path. But every byte of a
   * queue is reserved when it is made: big results get fewer slots. */
  size_t n = 4 * (size_t)p->nworkers, most = MPS__POOL_RESULTS_BYTES / p->area_size;
  n = n < MPS__POOL_RESULTS_MIN ? MPS__POOL_RESULTS_MIN : n;
  n = n > most ? (most < 4 ? 4 : most) : n;
  mps_queue_opts qr = {.maxsize = n, .max_msg = p->area_size};
  p->results = mps_queue_new(&qr);
  return p->results == NULL ? -errno : 0;
}

static void pool_release(mps_pool *p)
{
  for (unsigned i = 0; p->w != NULL && i < p->nworkers; i++)
    mps_queue_close(p->w[i].inbox);
  mps_queue_close(p->results);
  if (p->evfd >= 0)
    close(p->evfd);
  if (p->seg.hdr != NULL)
    mps__seg_close(&p->seg);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p->steal_buf);
  free(p->w);
  mps__future_hub_release(p->fhub); /* its futures may keep it */
  free(p);
}

static int pool_setup(mps_pool *p)
{
  pool_sizes(p);
  p->w = calloc(p->nworkers, sizeof(*p->w));
  p->steal_buf = malloc(sizeof(*p->steal_buf) + p->batch_max);
  p->fhub = mps__future_hub_new();
  if (p->w == NULL || p->steal_buf == NULL || p->fhub == NULL)
    return -ENOMEM;
  for (unsigned i = 0; i < p->nworkers; i++)
    p->w[i].pidfd = -1;
  int err = mps__seg_anon(&p->seg, MPS__KIND_POOL,
                          sizeof(struct mps__pool_shm) + p->slot_size * p->nworkers);
  if (err < 0)
    return err;
  p->evfd = eventfd(0, EFD_CLOEXEC);
  if (p->evfd < 0)
    return -errno;
  return make_queues(p);
}

static mps_pool *pool_alloc(void)
{
  mps_pool *p = calloc(1, sizeof(*p));
  if (p == NULL)
    return NULL;
  pthread_mutex_init(&p->mu, NULL);
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(&p->cv, &a);
  pthread_condattr_destroy(&a);
  p->evfd = -1;
  p->owner = getpid();
  p->magic = MPS__LIVE;
  return p;
}

static int start_threads(mps_pool *p)
{
  int err = -pthread_create(&p->collector, NULL, mps__pool_collector_main, p);
  if (err < 0)
    return err;
  if ((err = -pthread_create(&p->manager, NULL, mps__pool_manager_main, p)) < 0) {
    mps_queue_shutdown(p->results);
    pthread_join(p->collector, NULL);
    return err;
  }
  pthread_mutex_lock(&p->mu);
  while (!p->ready)
    pthread_cond_wait(&p->cv, &p->mu);
  err = p->start_err; /* not fail_err: workers may already have given up */
  pthread_mutex_unlock(&p->mu);
  if (err < 0) {
    pthread_join(p->manager, NULL);
    pthread_join(p->collector, NULL);
  }
  return err;
}

mps_pool *mps_pool_new_opts(const mps_pool_opts *opts)
{
  mps_pool *p = pool_alloc();
  if (p == NULL)
    return mps__fail(-ENOMEM);
  p->opts = opts ? *opts : (mps_pool_opts){0};
  int err = opts_check(&p->opts);
  p->nworkers = p->opts.workers;
  if (err == 0)
    err = pool_setup(p);
  if (err == 0)
    err = start_threads(p);
  if (err == 0)
    return p;
  pool_release(p);
  return mps__fail(err);
}

mps_pool *mps_pool_new(unsigned workers)
{
  return mps_pool_new_opts(&(mps_pool_opts){.workers = workers});
}

/* ---- ownership, shutdown, terminate, free ------------------------------- */

int mps__pool_owned(const mps_pool *p) { return p->owner == getpid() ? 0 : -EPERM; }

static void poke_manager(mps_pool *p)
{
  uint64_t one = 1;
  if (write(p->evfd, &one, sizeof(one)) < 0)
    one = 0; /* the counter is full: the manager is awake anyway */
}

static int pool_stop(mps_pool *p, bool wait, bool cancel, bool kill_now)
{
  pthread_mutex_lock(&p->mu);
  p->shutting = true;
  if (kill_now) {
    p->terminating = true;
    p->fail_err = -ECANCELED;
  }
  if (cancel || kill_now)
    mps__pool_cancel_unstarted(p);
  for (unsigned i = 0; kill_now && i < p->nworkers; i++)
    if (p->w[i].pid > 0) /* not reaped yet (on_exit_of clears it first) */
      kill(p->w[i].pid, SIGKILL);
  mps__pool_dispatch(p);
  struct mps__pool_job *fin = mps__pool_take_finished(p);
  pthread_mutex_unlock(&p->mu);
  mps__pool_complete_finished(fin);
  poke_manager(p);
  if (!wait)
    return 0;
  pthread_mutex_lock(&p->mu);
  while (!p->finished)
    pthread_cond_wait(&p->cv, &p->mu);
  pthread_mutex_unlock(&p->mu);
  return 0;
}

int mps_pool_shutdown(mps_pool *p, bool wait, bool cancel_pending)
{
  if (!MPS__OPEN(p))
    return -EINVAL;
  if (mps__pool_owned(p) < 0)
    return -EPERM;
  if (p->remote != NULL)
    return mps__rpool_shutdown(p, wait, cancel_pending);
  return pool_stop(p, wait, cancel_pending, false);
}

int mps_pool_terminate(mps_pool *p)
{
  if (!MPS__OPEN(p))
    return -EINVAL;
  if (mps__pool_owned(p) < 0)
    return -EPERM;
  if (p->remote != NULL)
    return mps__rpool_shutdown(p, true, true);
  return pool_stop(p, true, true, true);
}

/* mps_pool_free() in a forked child: its copy of the handle has no threads
 * behind it, and everything shared is the parent's. Only this process's
 * memory and descriptors are released; its copies of pending futures are
 * completed with -EPERM. */
static void pool_free_copy(mps_pool *p)
{
  pthread_mutex_init(&p->mu, NULL); /* maybe copied locked */
  p->terminating = true;
  p->fail_err = -EPERM;
  for (unsigned i = 0; i < p->nworkers; i++) {
    while (p->w[i].head != NULL) {
      struct mps__pool_job *j = p->w[i].head;
      p->w[i].head = j->next;
      mps__pool_requeue_from(p, j, 0);
    }
    if (p->w[i].pidfd >= 0)
      close(p->w[i].pidfd);
  }
  mps__pool_fail_pending(p, -EPERM);
  pool_release(p);
}

void mps_pool_free(mps_pool *p)
{
  if (!MPS__OPEN(p))
    return;
  p->magic = MPS__DEAD; /* nothing below calls back in through the API */
  if (p->remote != NULL) {
    mps__rpool_free(p);
    return;
  }
  if (mps__pool_owned(p) < 0) {
    pool_free_copy(p);
    return;
  }
  pool_stop(p, true, false, false);
  pthread_join(p->manager, NULL);
  pthread_join(p->collector, NULL);
  pool_release(p);
}

ssize_t mps_pool_workers(mps_pool *p, pid_t *pids, size_t n)
{
  if (!MPS__OPEN(p) || (pids == NULL && n > 0))
    return -EINVAL;
  if (mps__pool_owned(p) < 0)
    return -EPERM;
  if (p->remote != NULL)
    return 0; /* its workers are other hosts' */
  size_t k = 0;
  pthread_mutex_lock(&p->mu);
  for (unsigned i = 0; i < p->nworkers; i++)
    if (p->w[i].pid > 0) {
      if (k < n)
        pids[k] = p->w[i].pid;
      k++;
    }
  pthread_mutex_unlock(&p->mu);
  return (ssize_t)k;
}

/* ---- submit ------------------------------------------------------------- */

/* Waits for room among the pending tasks (p->mu held). */
static int wait_room(mps_pool *p, const mps__deadline *d)
{
  while (!p->shutting && p->pending >= p->opts.queue_size) {
    if (d->kind == MPS__ONCE)
      return -EAGAIN;
    p->room_waiters++;
    int r = d->kind == MPS__TIMED ? pthread_cond_timedwait(&p->cv, &p->mu, &d->at)
                                  : pthread_cond_wait(&p->cv, &p->mu);
    p->room_waiters--;
    if (r == ETIMEDOUT && !p->shutting && p->pending >= p->opts.queue_size)
      return -ETIMEDOUT;
  }
  return p->shutting ? -EPIPE : 0;
}

mps_future *mps_pool_submit_timeout(mps_pool *p, mps_task_fn fn, const void *arg, size_t len,
                                    double timeout)
{
  mps__deadline d;
  if (!MPS__OPEN(p) || fn == NULL || (arg == NULL && len > 0) ||
      mps__deadline_init(&d, timeout) < 0)
    return mps__fail(-EINVAL);
  if (mps__pool_owned(p) < 0)
    return mps__fail(-EPERM);
  if (p->remote != NULL)
    return mps__rpool_submit(p, fn, NULL, arg, len, &d);
  if (len > p->opts.max_arg)
    return mps__fail(-EMSGSIZE);
  struct mps__pool_job *j = mps__pool_job_new(p, fn, arg, 1, len);
  mps_future *f = j != NULL ? mps__future_new_in(p->fhub, cancel_task, j) : NULL;
  if (f == NULL) {
    free(j);
    return mps__fail(-ENOMEM);
  }
  j->f = f;
  pthread_mutex_lock(&p->mu);
  int err = wait_room(p, &d);
  if (err == 0) {
    mps__pool_pend_push(p, j, false);
    mps__pool_dispatch(p);
  }
  pthread_mutex_unlock(&p->mu);
  if (err == 0)
    return f;
  mps__future_release(f);
  mps__future_release(f);
  free(j);
  return mps__fail(err);
}

mps_future *mps_pool_submit(mps_pool *p, mps_task_fn fn, const void *arg, size_t len)
{
  return mps_pool_submit_timeout(p, fn, arg, len, MPS_FOREVER);
}
