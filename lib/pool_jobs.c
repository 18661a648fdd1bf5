/* The pool's parent-side bookkeeping: jobs, the pending list, each
 * worker's record, dispatch into the inboxes, and reporting results.
 *
 * Everything here is process-private and runs with the pool's mutex held,
 * except mps__pool_complete_finished() and mps__pool_fail_pending(). A job
 * is one batch message (one submitted task with its future, or a chunk of
 * a map). It waits in the pending list until a worker may take more (see
 * least_loaded), then sits in that worker's record, by seq, until its
 * results are in or the worker's DEATH record settles it (pool_manager.c).
 * Futures are completed only after the mutex is released (lock order:
 * futures, then pool). Crash semantics: none of its own; it decides what
 * the worker protocol of pool_worker.c lets it decide.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "pool_internal.h"

/* ---- jobs -------------------------------------------------------------- */

struct mps__pool_job *mps__pool_job_new(mps_pool *p, mps_task_fn fn, const void *args, uint32_t n,
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

void mps__pool_map_unref(struct mps__map *m)
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

void mps__pool_pend_push(mps_pool *p, struct mps__pool_job *j, bool front)
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

void mps__pool_pend_remove(mps_pool *p, struct mps__pool_job *j)
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
  /* A value beyond its bytes: longer than max_result (the worker sent no
   * bytes: the library's -EMSGSIZE, the task's value kept), else damage. */
  if (status == 0 && value > 0 && (uint64_t)value > len)
    status = (uint64_t)value > p->opts.max_result ? -EMSGSIZE : -EPROTO;
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
    mps__pool_map_unref(j->map);
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
      mps__future_complete_release(j->f, j->status, j->value, j->data, j->len);
    else
      mps__future_complete_release(j->f, -ECHILD, 0, NULL, 0);
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
    mps__pool_pend_push(p, j, true);
    return;
  }
  /* A map chunk cut short: its tasks that never started, as a new job. */
  struct mps__pool_job *rest =
      mps__pool_job_new(p, (mps_task_fn)(uintptr_t)j->msg.fn, j->msg.args + from * j->msg.arg_size,
                        (uint32_t)(j->msg.n - from), j->msg.arg_size);
  if (rest == NULL) {
    for (size_t k = from; k < j->msg.n; k++)
      mps__pool_report(p, j, k, -ENOMEM, 0, NULL, 0);
  } else {
    rest->map = j->map;
    rest->lo = j->lo + from;
    j->map->refs++;
    mps__pool_pend_push(p, rest, true);
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
  if (j->cancelled) /* its cancel won in v's ring: it must never run */
    mps__pool_job_done(p, j);
  else
    mps__pool_pend_push(p, j, true);
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
    mps__pool_pend_remove(p, j);
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
    mps__pool_pend_remove(p, j);
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
int mps__pool_job_cancel(mps_pool *p, struct mps__pool_job *j)
{
  if (j->cancelled)
    return 0;
  if (!j->dispatched) {
    mps__pool_pend_remove(p, j);
  } else if (!mps__pool_claim(mps__pool_slot(p, j->worker), 2 * p->depth, j->msg.seq,
                              MPS__CLAIM_CANCEL)) {
    return -EBUSY;
  }
  j->cancelled = true;
  return 0;
}

/* Cancels every job that has not started (p->mu held). */
void mps__pool_cancel_unstarted(mps_pool *p)
{
  while (p->pend_head != NULL) {
    struct mps__pool_job *j = p->pend_head;
    mps__pool_pend_remove(p, j);
    for (size_t k = 0; k < j->msg.n; k++)
      mps__pool_report(p, j, k, -ECANCELED, 0, NULL, 0);
    mps__pool_job_done(p, j);
  }
  for (unsigned i = 0; i < p->nworkers; i++)
    for (struct mps__pool_job *j = p->w[i].head; j != NULL; j = j->next)
      if (!j->cancelled && !j->reported && mps__pool_job_cancel(p, j) == 0) {
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
