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
 * to it, by seq, until their results are in. The manager and collector
 * threads are pool_manager.c's; the worker's side is pool_worker.c's.
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

/* ---- jobs -------------------------------------------------------------- */

static struct mps__pool_job *job_new(mps_pool *p, mps_task_fn fn, const void *args, uint32_t n,
                                     size_t arg_size)
{
  size_t bytes = (size_t)n * arg_size;
  struct mps__pool_job *j = malloc(sizeof(*j) + bytes);
  if (j == NULL)
    return NULL;
  *j = (struct mps__pool_job){.pool = p, .msg_len = sizeof(j->msg) + bytes};
  j->msg = (struct mps__pool_batch){.fn = (uint64_t)(uintptr_t)fn, .n = n, .arg_size = arg_size};
  if (bytes > 0)
    memcpy(j->msg.args, args, bytes);
  return j;
}

static void map_unref(struct mps__map *m)
{
  if (--m->refs == 0) {
    free(m->status);
    free(m->value);
    free(m->order);
    if (m->order != NULL)
      free(m->results); /* a streaming map's own */
    free(m);
  }
}

static void pend_push(mps_pool *p, struct mps__pool_job *j, bool front)
{
  j->dispatched = false;
  p->pending += j->f != NULL;
  if (front) {
    j->next = p->pend_head;
    p->pend_head = j;
    if (p->pend_tail == NULL)
      p->pend_tail = j;
    return;
  }
  j->next = NULL;
  if (p->pend_tail != NULL)
    p->pend_tail->next = j;
  else
    p->pend_head = j;
  p->pend_tail = j;
}

static void pend_remove(mps_pool *p, struct mps__pool_job *j)
{
  struct mps__pool_job **pp = &p->pend_head, *prev = NULL;
  while (*pp != NULL && *pp != j) {
    prev = *pp;
    pp = &(*pp)->next;
  }
  if (*pp == NULL)
    return;
  *pp = j->next;
  if (p->pend_tail == j)
    p->pend_tail = prev;
  j->next = NULL;
  p->pending -= j->f != NULL;
}

void mps__pool_report(mps_pool *p, struct mps__pool_job *j, size_t k, int status, int64_t value,
                      const void *data, size_t len)
{
  struct mps__map *m = j->map;
  if (m == NULL) {
    if (j->f != NULL && !j->reported) {
      j->reported = true;
      j->status = status;
      j->value = value;
      j->data = data;
      j->len = len;
    }
    return;
  }
  size_t i = j->lo + k;
  if (m->abandoned || i >= m->n || m->status[i] != 1)
    return;
  if (status == 0 && m->results != NULL) {
    char *dst = m->results + i * m->result_size;
    if (len > m->result_size) {
      status = -EMSGSIZE;
    } else {
      memcpy(dst, data, len);
      memset(dst + len, 0, m->result_size - len);
    }
  }
  m->status[i] = status;
  m->value[i] = value;
  if (m->order != NULL)
    m->order[m->reported++] = i;
  if (--m->left == 0 || m->waiting)
    pthread_cond_broadcast(&p->cv);
}

void mps__pool_job_done(mps_pool *p, struct mps__pool_job *j)
{
  if (j->f != NULL) {
    j->next = p->fin;
    p->fin = j;
    return;
  }
  if (j->map != NULL)
    map_unref(j->map);
  free(j);
}

struct mps__pool_job *mps__pool_take_finished(mps_pool *p)
{
  struct mps__pool_job *fin = p->fin;
  p->fin = NULL;
  return fin;
}

void mps__pool_complete_finished(struct mps__pool_job *fin)
{
  while (fin != NULL) {
    struct mps__pool_job *j = fin;
    fin = j->next;
    if (j->reported)
      mps__future_complete(j->f, j->status, j->value, j->data, j->len);
    else
      mps__future_complete(j->f, -ECHILD, 0, NULL, 0);
    free(j);
  }
}

void mps__pool_requeue_from(mps_pool *p, struct mps__pool_job *j, size_t from)
{
  if (p->terminating) {
    for (size_t k = from; k < j->msg.n; k++)
      mps__pool_report(p, j, k, p->fail_err, 0, NULL, 0);
    mps__pool_job_done(p, j);
    return;
  }
  if (from == 0) {
    pend_push(p, j, true);
    return;
  }
  /* A map chunk cut short: its tasks that never started, as a new job. */
  struct mps__pool_job *rest =
      job_new(p, (mps_task_fn)(uintptr_t)j->msg.fn, j->msg.args + from * j->msg.arg_size,
              (uint32_t)(j->msg.n - from), j->msg.arg_size);
  if (rest == NULL) {
    for (size_t k = from; k < j->msg.n; k++)
      mps__pool_report(p, j, k, -ENOMEM, 0, NULL, 0);
  } else {
    rest->map = j->map;
    rest->lo = j->lo + from;
    j->map->refs++;
    pend_push(p, rest, true);
  }
  mps__pool_job_done(p, j);
}

/* ---- dispatch ---------------------------------------------------------- */

/* The accepting worker with the fewest batches, if it may take more: one
 * with room, and while jobs wait, only one at most half full, so that
 * refills go in batches (one put_many) and never leave a worker idle. */
static struct mps__pool_worker *least_loaded(mps_pool *p, unsigned *idx)
{
  struct mps__pool_worker *best = NULL;
  for (unsigned i = 0; i < p->nworkers; i++) {
    struct mps__pool_worker *w = &p->w[i];
    if (w->accepting && !w->stop_sent && (best == NULL || w->queued < best->queued)) {
      best = w;
      *idx = i;
    }
  }
  unsigned limit = p->pend_head != NULL && p->pend_head->next != NULL ? p->depth / 2 : p->depth - 1;
  return best != NULL && best->queued <= limit ? best : NULL;
}

static void record_push(struct mps__pool_worker *w, struct mps__pool_job *j)
{
  j->next = NULL;
  j->dispatched = true;
  if (w->tail != NULL)
    w->tail->next = j;
  else
    w->head = j;
  w->tail = j;
  w->queued++;
}

static void send_stops(mps_pool *p)
{
  for (unsigned i = 0; i < p->nworkers; i++) {
    struct mps__pool_worker *w = &p->w[i];
    if (!w->accepting || w->stop_sent)
      continue;
    struct mps__pool_batch stop = {.seq = w->next_seq + 1, .flags = MPS__BATCH_STOP};
    if (mps_queue_put(w->inbox, &stop, sizeof(stop), 0) == 0) {
      w->next_seq++;
      w->stop_sent = true;
    }
  }
}

/* Moves one batch not yet taken from the busiest worker's inbox back to
 * the pending ones, for an idle worker. Only batches still in the inbox
 * are taken (a get like the worker's own), under p->mu, so a dead
 * worker's DEATH record never counts a stolen batch as its own. */
static bool steal(mps_pool *p)
{
  bool idle = false;
  struct mps__pool_worker *v = NULL;
  for (unsigned i = 0; i < p->nworkers; i++) {
    struct mps__pool_worker *w = &p->w[i];
    if (!w->accepting || w->stop_sent)
      continue;
    idle |= w->queued == 0;
    if (w->queued >= 2 && (v == NULL || w->queued > v->queued))
      v = w;
  }
  if (!idle || v == NULL || p->steal_buf == NULL)
    return false;
  if (mps_queue_get(v->inbox, p->steal_buf, sizeof(struct mps__pool_batch) + p->batch_max, 0) <
      (ssize_t)sizeof(struct mps__pool_batch))
    return false;
  struct mps__pool_job *j = v->head, *prev = NULL;
  while (j != NULL && j->msg.seq != p->steal_buf->seq) {
    prev = j;
    j = j->next;
  }
  if (j == NULL)
    return false;
  if (prev != NULL)
    prev->next = j->next;
  else
    v->head = j->next;
  if (v->tail == j)
    v->tail = prev;
  v->queued--;
  pend_push(p, j, true);
  return true;
}

/* Feeds up to the room of worker i from the pending jobs, in one put_many;
 * how many went. */
static size_t feed(mps_pool *p, unsigned i)
{
  struct mps__pool_worker *w = &p->w[i];
  const void *msgs[MPS__POOL_DEPTH_MAX];
  size_t lens[MPS__POOL_DEPTH_MAX], k = 0;
  for (struct mps__pool_job *j = p->pend_head; j != NULL && k < p->depth - w->queued; j = j->next) {
    j->msg.seq = w->next_seq + 1 + k;
    msgs[k] = &j->msg;
    lens[k++] = j->msg_len;
  }
  /* Never blocks: the inbox holds depth batches and a STOP. */
  ssize_t n = mps_queue_put_many(w->inbox, msgs, lens, k, 0);
  for (ssize_t m = 0; m < n; m++) {
    struct mps__pool_job *j = p->pend_head;
    pend_remove(p, j);
    j->worker = i;
    record_push(w, j);
  }
  if (n > 0)
    w->next_seq += (uint64_t)n;
  return n > 0 ? (size_t)n : 0;
}

void mps__pool_dispatch(mps_pool *p)
{
  unsigned i = 0;
  while ((p->pend_head != NULL || steal(p)) && least_loaded(p, &i) != NULL)
    if (feed(p, i) == 0)
      break;
  if (p->shutting && p->pend_head == NULL)
    send_stops(p);
  /* Blocked submitters wake once a quarter of the room is free, not at
   * every task: a wake-up is a syscall and a fight for the mutex. */
  size_t q = p->opts.queue_size, low = q - (q / 4 > 0 ? q / 4 : 1);
  if (p->room_waiters > 0 && (p->pending <= low || p->shutting))
    pthread_cond_broadcast(&p->cv);
}

void mps__pool_fail_pending(mps_pool *p, int err)
{
  pthread_mutex_lock(&p->mu);
  while (p->pend_head != NULL) {
    struct mps__pool_job *j = p->pend_head;
    pend_remove(p, j);
    for (size_t k = 0; k < j->msg.n; k++)
      mps__pool_report(p, j, k, err, 0, NULL, 0);
    mps__pool_job_done(p, j);
  }
  mps__pool_dispatch(p);
  struct mps__pool_job *fin = mps__pool_take_finished(p);
  pthread_mutex_unlock(&p->mu);
  mps__pool_complete_finished(fin);
}

/* Cancels j if it has not started (p->mu held): 0 or -EBUSY. */
static int job_cancel(mps_pool *p, struct mps__pool_job *j)
{
  if (j->cancelled)
    return 0;
  if (!j->dispatched) {
    pend_remove(p, j);
  } else if (!mps__pool_claim(mps__pool_slot(p, j->worker), 2 * p->depth, j->msg.seq,
                              MPS__CLAIM_CANCEL)) {
    return -EBUSY;
  }
  j->cancelled = true;
  return 0;
}

/* The cancel step of a submitted task's future (futures' lock held). On
 * success the future's runner reference passes to future.c. */
static int cancel_task(void *arg, mps_future *f)
{
  struct mps__pool_job *j = arg;
  mps_pool *p = j->pool;
  (void)f;
  pthread_mutex_lock(&p->mu);
  int r = j->reported ? -EBUSY : job_cancel(p, j);
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
  size_t n = 2 * (size_t)p->nworkers + 8;
  mps_queue_opts qr = {.maxsize = n < p->opts.queue_size ? n : p->opts.queue_size,
                       .max_msg = p->area_size};
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
  free(p);
}

static int pool_setup(mps_pool *p)
{
  pool_sizes(p);
  p->w = calloc(p->nworkers, sizeof(*p->w));
  p->steal_buf = malloc(sizeof(*p->steal_buf) + p->batch_max);
  if (p->w == NULL || p->steal_buf == NULL)
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
  err = p->fail_err;
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

static int owned(const mps_pool *p) { return p->owner == getpid() ? 0 : -EPERM; }

static void poke_manager(mps_pool *p)
{
  uint64_t one = 1;
  if (write(p->evfd, &one, sizeof(one)) < 0)
    one = 0; /* the counter is full: the manager is awake anyway */
}

/* Cancels every job that has not started (p->mu held). */
static void cancel_unstarted(mps_pool *p)
{
  while (p->pend_head != NULL) {
    struct mps__pool_job *j = p->pend_head;
    pend_remove(p, j);
    for (size_t k = 0; k < j->msg.n; k++)
      mps__pool_report(p, j, k, -ECANCELED, 0, NULL, 0);
    mps__pool_job_done(p, j);
  }
  for (unsigned i = 0; i < p->nworkers; i++)
    for (struct mps__pool_job *j = p->w[i].head; j != NULL; j = j->next)
      if (!j->cancelled && !j->reported && job_cancel(p, j) == 0) {
        for (size_t k = 0; k < j->msg.n; k++)
          mps__pool_report(p, j, k, -ECANCELED, 0, NULL, 0);
        if (j->f != NULL) { /* completed now; the record keeps the job */
          struct mps__pool_job *c = malloc(sizeof(*c));
          if (c != NULL) {
            *c = *j;
            c->next = p->fin;
            p->fin = c;
            j->f = NULL;
          }
        }
      }
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
    cancel_unstarted(p);
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
  if (p == NULL)
    return -EINVAL;
  if (owned(p) < 0)
    return -EPERM;
  return pool_stop(p, wait, cancel_pending, false);
}

int mps_pool_terminate(mps_pool *p)
{
  if (p == NULL)
    return -EINVAL;
  if (owned(p) < 0)
    return -EPERM;
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
  if (p == NULL)
    return;
  if (owned(p) < 0) {
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
  if (p == NULL || (pids == NULL && n > 0))
    return -EINVAL;
  if (owned(p) < 0)
    return -EPERM;
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
  if (p == NULL || fn == NULL || (arg == NULL && len > 0) || mps__deadline_init(&d, timeout) < 0)
    return mps__fail(-EINVAL);
  if (owned(p) < 0)
    return mps__fail(-EPERM);
  if (len > p->opts.max_arg)
    return mps__fail(-EMSGSIZE);
  struct mps__pool_job *j = job_new(p, fn, arg, 1, len);
  mps_future *f = j != NULL ? mps__future_new(cancel_task, j) : NULL;
  if (f == NULL) {
    free(j);
    return mps__fail(-ENOMEM);
  }
  j->f = f;
  pthread_mutex_lock(&p->mu);
  int err = wait_room(p, &d);
  if (err == 0) {
    pend_push(p, j, false);
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
    struct mps__pool_job *j = job_new(p, fn, args ? args + lo * arg_size : NULL, k, arg_size);
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
    pend_push(p, j, false);
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
      pend_remove(p, j);
      mps__pool_job_done(p, j);
    }
  }
  for (unsigned i = 0; i < p->nworkers; i++)
    for (struct mps__pool_job *j = p->w[i].head; j != NULL; j = j->next)
      if (j->map == m)
        (void)job_cancel(p, j);
}

/* The map's outcome: the first failing task in input order. */
static int map_outcome(const struct mps__map *m)
{
  for (size_t i = 0; i < m->n; i++) {
    if (m->status[i] != 0)
      return m->status[i];
    if (m->value[i] < 0)
      return m->value[i] < INT_MIN ? -EOVERFLOW : (int)m->value[i];
  }
  return 0;
}

int mps_pool_map(mps_pool *p, mps_task_fn fn, const void *args, size_t nargs, size_t arg_size,
                 void *results, size_t result_size, double timeout)
{
  mps__deadline d;
  if (p == NULL || fn == NULL || (args == NULL && nargs > 0 && arg_size > 0) ||
      (results == NULL && nargs > 0 && result_size > 0) || mps__deadline_init(&d, timeout) < 0)
    return -EINVAL;
  if (owned(p) < 0)
    return -EPERM;
  if (arg_size > p->opts.max_arg)
    return -EMSGSIZE;
  struct mps__map *m = map_new(nargs, results, result_size);
  if (m == NULL)
    return -ENOMEM;
  pthread_mutex_lock(&p->mu);
  int err = p->shutting ? -EPIPE : map_queue(p, m, fn, args, arg_size, 0);
  while (err == 0 && m->left > 0) {
    if (d.kind == MPS__ONCE) {
      err = -EAGAIN;
      break;
    }
    int r = d.kind == MPS__TIMED ? pthread_cond_timedwait(&p->cv, &p->mu, &d.at)
                                 : pthread_cond_wait(&p->cv, &p->mu);
    if (r == ETIMEDOUT && m->left > 0)
      err = -ETIMEDOUT;
  }
  if (err == 0)
    err = map_outcome(m);
  else
    map_abandon(p, m);
  map_unref(m);
  pthread_mutex_unlock(&p->mu);
  return err;
}

/* ---- streaming unordered map -------------------------------------------- */

struct mps_pool_stream {
  mps_pool *p;
  struct mps__map *m;
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
  if (p == NULL || fn == NULL || (args == NULL && nargs > 0 && arg_size > 0))
    return mps__fail(-EINVAL);
  if (owned(p) < 0)
    return mps__fail(-EPERM);
  if (arg_size > p->opts.max_arg || result_size > p->opts.max_result)
    return mps__fail(-EMSGSIZE);
  mps_pool_stream *s = calloc(1, sizeof(*s));
  struct mps__map *m = s != NULL ? stream_map(nargs, result_size) : NULL;
  if (m == NULL) {
    free(s);
    return mps__fail(-ENOMEM);
  }
  *s = (mps_pool_stream){.p = p, .m = m};
  pthread_mutex_lock(&p->mu);
  int err = p->shutting ? -EPIPE : map_queue(p, m, fn, args, arg_size, chunksize);
  if (err < 0)
    map_unref(m);
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
  if (s == NULL || (out == NULL && cap > 0) || mps__deadline_init(&d, timeout) < 0)
    return -EINVAL;
  mps_pool *p = s->p;
  struct mps__map *m = s->m;
  pthread_mutex_lock(&p->mu);
  int r = owned(p) < 0 ? -EPERM : stream_wait(p, m, &d);
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
  if (s == NULL)
    return;
  mps_pool *p = s->p;
  pthread_mutex_lock(&p->mu);
  if (s->m->delivered < s->m->n)
    map_abandon(p, s->m);
  map_unref(s->m);
  pthread_mutex_unlock(&p->mu);
  free(s);
}
