/* Queue: a bounded FIFO, LIFO or priority queue of byte strings in one
 * shared segment, with task_done/join and shutdown. This file makes,
 * opens and closes queues, runs the LIFO and priority queues, and hands
 * FIFO calls to the lock-free core in queue_ring.c (with queue_repair.c
 * and queue_token.c; its crash semantics are written there).
 *
 * Shared layout (struct mps__queue_shm in queue_internal.h, then the
 * arrays): the segment header; the configuration (maxsize, max_msg,
 * order, slot size and the offsets of the arrays), written once by the
 * creator and checked by every opener; the robust mutex; then, each on
 * its own cache line, the counters `head` (messages ever got), `tail`
 * (messages ever put), `done` (task_done calls) with the shutdown flag,
 * the three wait queues (not_empty, not_full, all_done), the heap's redo
 * record and the FIFO core's counters. For a FIFO queue its liveness
 * tokens follow, for a priority queue the heap (queue_heap.c); then
 * `maxsize` payload slots of a state word, a 64-bit length and max_msg
 * bytes, each slot cache-line aligned so that a producer and a consumer
 * never write the same line.
 *
 * LIFO and priority: qsize is tail - head and the unfinished tasks are
 * tail - done. LIFO keeps a stack in slots 0..qsize-1; the priority heap
 * names the slot of each message.
 *
 * Crash semantics (LIFO, priority): every mutation is made under the
 * mutex, and is committed by one final store. A put writes its payload
 * into a free slot, then stores the new tail; a get copies the payload
 * out, then stores the new head; task_done stores the new done. A process
 * killed before that store changed nothing anyone can see; killed after
 * it, the call is complete. A heap update needs several stores: they are
 * planned first into the redo record, which is marked valid, applied, and
 * cleared; whoever takes the mutex with MPS_OWNER_DIED applies a valid
 * record again (every store in it writes an absolute value) before
 * looking at the queue. Sleepers are woken before the commit store, while
 * the mutex is held, so a waker killed after its commit has already woken
 * them; the recovering process also wakes all. Every wake is a wake-all:
 * a woken sleeper killed before it takes the mutex must not swallow the
 * only wake-up.
 *
 * Indices read from the segment are checked before use (slot numbers below
 * maxsize, lengths at most max_msg, qsize at most maxsize), so a damaged or
 * forged segment gives -EPROTO, never a stray access.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "inspect.h"
#include "queue_internal.h"
#include "remote.h"
#include "stats.h"

/* Layout word: struct mps__queue_shm, the FIFO core's tokens and
 * counters, the heap entries, the redo records and the slots
 * (queue_internal.h). */
#define QUEUE_LAYOUT                                                                               \
  MPS__FOLD6(                                                                                      \
      MPS__FOLD6(MPS__LAYOUT, sizeof(struct mps__queue_shm),                                       \
                 offsetof(struct mps__queue_shm, tok_off), offsetof(struct mps__queue_shm, mu),    \
                 offsetof(struct mps__queue_shm, head), offsetof(struct mps__queue_shm, log),      \
                 offsetof(struct mps__queue_shm, ring)),                                           \
      sizeof(struct mps__qtok), sizeof(struct mps__ring), sizeof(struct mps__qent),                \
      sizeof(struct mps__qlog), MPS__QTOK, sizeof(struct mps__slot))

#define WAKE_ALL INT32_MAX

/* A remote queue's handle (a redis:// name) has only `remote`, `cap` and
 * `max_msg` set: every public call below starts with REMOTE(), which sends
 * it to queue_redis.c, so the local paths pay one test. */
#define REMOTE(q, call)                                                                            \
  do {                                                                                             \
    if (__builtin_expect((q) != NULL && (q)->remote != NULL, 0))                                   \
      return call;                                                                                 \
  } while (0)

/* ---- layout ----------------------------------------------------------- */

struct layout {
  uint64_t slot_size, heap_off, tok_off, slots_off, size;
};

static int layout_of(uint64_t maxsize, uint64_t max_msg, uint64_t order, struct layout *l)
{
  if (order > MPS_PRIORITY || maxsize == 0 || maxsize > MPS_QUEUE_MAXSIZE_MAX ||
      max_msg > MPS_SIZE_MAX)
    return -EINVAL;
  uint64_t base = MPS__ALIGN_UP(sizeof(struct mps__queue_shm), 128);
  uint64_t heap = order == MPS_PRIORITY ? maxsize * sizeof(struct mps__qent) : 0;
  uint64_t toks = order == MPS_FIFO ? MPS__QTOK * sizeof(struct mps__qtok) : 0;
  l->slot_size = MPS__ALIGN_UP(sizeof(struct mps__slot) + max_msg, MPS__CACHELINE);
  l->heap_off = heap ? base : 0;
  l->tok_off = toks ? base : 0;
  l->slots_off = base + MPS__ALIGN_UP(heap + toks, 128);
  if (l->slot_size > (MPS_SIZE_MAX - l->slots_off) / maxsize)
    return -EINVAL;
  l->size = l->slots_off + maxsize * l->slot_size;
  return 0;
}

static void attach(mps_queue *q)
{
  struct mps__queue_shm *s = (struct mps__queue_shm *)q->seg.hdr;
  q->s = s;
  q->cap = s->maxsize;
  q->cap_pow2 = (q->cap & (q->cap - 1)) == 0;
  q->max_msg = s->max_msg;
  q->slot_size = s->slot_size;
  q->order = (mps_order)s->order;
  q->heap = s->heap_off ? (struct mps__qent *)((char *)s + s->heap_off) : NULL;
  q->tok = s->tok_off ? (struct mps__qtok *)((char *)s + s->tok_off) : NULL;
  q->slots = (unsigned char *)s + s->slots_off;
}

MPS__SEG_HANDLE(struct mps_queue);

/* What a creator writes: the options with their defaults filled in, and the
 * layout they give. */
struct q_plan {
  mps_queue_opts o;
  struct layout l;
};

static int shm_init(void *shm, const void *plan)
{
  struct mps__queue_shm *s = shm;
  const mps_queue_opts *o = &((const struct q_plan *)plan)->o;
  const struct layout *l = &((const struct q_plan *)plan)->l;
  s->maxsize = o->maxsize;
  s->max_msg = o->max_msg;
  s->order = o->order;
  s->slot_size = l->slot_size;
  s->heap_off = l->heap_off;
  s->slots_off = l->slots_off;
  s->tok_off = l->tok_off;
  if (l->tok_off) {
    struct mps__qtok *tok = (struct mps__qtok *)((char *)s + l->tok_off);
    for (unsigned k = 0; k < MPS__QTOK; k++) {
      int err = mps__mutex_init(&tok[k].mu, false);
      if (err < 0)
        return err;
    }
  }
  if (l->heap_off) {
    struct mps__qent *heap = (struct mps__qent *)((char *)s + l->heap_off);
    for (uint64_t i = 0; i < o->maxsize; i++)
      heap[i].slot = (uint32_t)i;
  }
  return mps__mutex_init(&s->mu, false);
}

/* The recorded configuration must be one we would have made ourselves. */
static int shm_validate(const void *shm, size_t size)
{
  const struct mps__queue_shm *s = shm;
  struct layout l;
  if (layout_of(s->maxsize, s->max_msg, s->order, &l) < 0 || l.slot_size != s->slot_size ||
      l.heap_off != s->heap_off || l.tok_off != s->tok_off || l.slots_off != s->slots_off ||
      l.size != size)
    return -EPROTO;
  return mps__mutex_check(&s->mu, false);
}

/* An opener also checks the FIFO core's token mutexes, which lie past the
 * fixed struct (the inspection API reads only that, and validates it). */
static int shm_check_open(const void *shm, size_t size)
{
  const struct mps__queue_shm *s = shm;
  int err = shm_validate(shm, size);
  if (err < 0 || s->tok_off == 0)
    return err;
  /* Only now is tok_off known to lie inside the mapping. */
  const struct mps__qtok *tok = (const struct mps__qtok *)((const char *)s + s->tok_off);
  for (unsigned k = 0; err == 0 && k < MPS__QTOK; k++)
    err = mps__mutex_check(&tok[k].mu, false);
  return err;
}

static mps_queue *remote_make(const char *name, bool create, const mps_queue_opts *opts)
{
  int err;
  struct mps__rq *r = create ? mps__rq_create(name, opts, &err) : mps__rq_open(name, &err);
  if (r == NULL)
    return mps__fail(err);
  mps_queue *q = calloc(1, sizeof(*q));
  if (q == NULL) {
    mps__rq_close(r);
    return mps__fail(-ENOMEM);
  }
  q->remote = r;
  q->seg.magic = MPS__LIVE; /* no segment, but a handle like the others */
  q->cap = mps__rq_maxsize(r);
  q->max_msg = mps__rq_max_msg(r); /* check_msgs reads it */
  return q;
}

static mps_queue *q_make(enum mps__seg_mode mode, const char *name, const mps_queue_opts *opts)
{
  if (mode != MPS__SEG_ANON && mps__is_remote_name(name))
    return remote_make(name, mode == MPS__SEG_CREATE, opts);
  bool create = mode != MPS__SEG_OPEN;
  struct q_plan p = {.o = opts ? *opts : (mps_queue_opts){0}};
  if (!mps__reserved_zero(p.o.reserved))
    return mps__fail(-EINVAL);
  p.o.maxsize = p.o.maxsize ? p.o.maxsize : MPS_QUEUE_DEFAULT_MAXSIZE;
  p.o.max_msg = p.o.max_msg ? p.o.max_msg : MPS_QUEUE_DEFAULT_MAX_MSG;
  int err = create ? layout_of(p.o.maxsize, p.o.max_msg, (uint64_t)p.o.order, &p.l) : 0;
  if (err < 0)
    return mps__fail(err);
  mps__seg_spec spec = {MPS__KIND_QUEUE,
                        create ? p.l.size : sizeof(struct mps__queue_shm),
                        shm_init,
                        shm_check_open,
                        &p,
                        QUEUE_LAYOUT};
  mps_queue *q = mps__seg_object(sizeof(*q), mode, name, &spec);
  if (q != NULL) {
    attach(q);
    mps__qtok_register(q);
  }
  return q;
}

mps_queue *mps_queue_new(const mps_queue_opts *opts) { return q_make(MPS__SEG_ANON, NULL, opts); }

mps_queue *mps_queue_create(const char *name, const mps_queue_opts *opts)
{
  return q_make(MPS__SEG_CREATE, name, opts);
}

mps_queue *mps_queue_open(const char *name) { return q_make(MPS__SEG_OPEN, name, NULL); }

/* mps_unlink (common.h) is here, above both kinds of name, so that
 * segment.c, below every object, never calls up into the Redis backend:
 * a redis:// name can only be a remote queue's, any other is a segment's. */
int mps_unlink(const char *name)
{
  return mps__is_remote_name(name) ? mps__rq_unlink(name) : mps__seg_unlink(name);
}

/* An open handle: made, and neither closed nor freed (internal.h). */
static bool q_open(const mps_queue *q) { return mps__seg_live(q) && !q->closed; }

int mps_queue_close(mps_queue *q)
{
  if (q == NULL)
    return 0;
  if (!q_open(q))
    return -EINVAL;
  if (q->remote != NULL) {
    q->seg.magic = MPS__DEAD;
    mps__rq_close(q->remote);
    free(q);
    return 0;
  }
  mps__qtok_close(q);
  return 0;
}

/* ---- locking and repair ------------------------------------------------ */

static int log_apply(mps_queue *q)
{
  struct mps__qlog *log = &q->s->log;
  if (log->n > MPS__QLOG_MAX || q->heap == NULL)
    return -EPROTO;
  for (uint32_t i = 0; i < log->n; i++) {
    if (log->w[i].pos >= q->cap || log->w[i].e.slot >= q->cap)
      return -EPROTO;
    q->heap[log->w[i].pos] = log->w[i].e;
  }
  atomic_store_explicit(&q->s->head, log->head, memory_order_release);
  atomic_store_explicit(&q->s->tail, log->tail, memory_order_release);
  atomic_store(&log->valid, 0);
  return 0;
}

/* The mutex came back from a dead owner: finish its heap update if it had
 * committed to one, and wake everyone in case it died before waking. */
static int q_repair(mps_queue *q)
{
  int err = 0;
  if (atomic_load(&q->s->log.valid))
    err = log_apply(q);
  mps__waitq_wake(&q->s->not_empty, WAKE_ALL);
  mps__waitq_wake(&q->s->not_full, WAKE_ALL);
  mps__waitq_wake(&q->s->all_done, WAKE_ALL);
  mps__stat_recovered(&q->s->hdr, MPS__REPAIR_QUEUE_LOG);
  return err;
}

/* Takes the mutex before the caller's deadline: a process stopped while it
 * holds it (in the middle of a long copy, say) must not hold up a call past
 * its timeout. Timeout 0 gets mutex.c's grace of a few microseconds, so a
 * put(timeout 0) does not fail only because a running process was copying.
 * A failure leaves the mutex alone: -EDEADLK (a call re-entered from a
 * signal handler) must not unlock the outer call's hold. */
static int q_lock(mps_queue *q, const mps__deadline *d)
{
  int r = mps__mutex_lock_spin(&q->s->mu, d);
  if (r < 0)
    return r;
  if (r == MPS_OWNER_DIED)
    r = q_repair(q);
  else if (atomic_load_explicit(&q->s->log.valid, memory_order_relaxed))
    r = log_apply(q); /* a repair that failed: the heap is damaged (-EPROTO) */
  if (r < 0)
    mps__mutex_unlock(&q->s->mu);
  return r;
}

static void q_unlock(mps_queue *q) { mps__mutex_unlock(&q->s->mu); }

/* head and tail, checked: more than maxsize messages is a damaged queue. */
static int q_counts(mps_queue *q, uint64_t *head, uint64_t *tail)
{
  *head = atomic_load_explicit(&q->s->head, memory_order_relaxed);
  *tail = atomic_load_explicit(&q->s->tail, memory_order_relaxed);
  return *tail - *head > q->cap ? -EPROTO : 0;
}

/* Sleeps on w after one bounded spin on *word per call. The caller holds
 * the mutex and loops on its predicate. Returns, with the mutex held, 0
 * (recheck), -EPROTO, or the deadline's error, after which the caller
 * rechecks once more; or, with *held false, the error of retaking the
 * mutex before the deadline, after which the caller gives up at once. */
static int q_wait(mps_queue *q, mps__waitq *w, const _Atomic uint64_t *word, uint64_t seen,
                  bool *spun, const mps__deadline *d, bool *held)
{
  *held = true;
  if (d->kind == MPS__ONCE)
    return -EAGAIN;
  int r;
  if (!*spun) {
    *spun = true;
    q_unlock(q);
    mps__spin_while_eq(word, seen);
    r = mps__mutex_lock_spin(&q->s->mu, d);
    *held = r >= 0;
  } else {
    r = mps__waitq_wait(w, &q->s->mu, d, NULL, held);
  }
  return r == MPS_OWNER_DIED ? q_repair(q) : r;
}

/* ---- moving messages (mutex held) --------------------------------------- */

static struct mps__slot *slot_at(mps_queue *q, uint64_t i)
{
  return (struct mps__slot *)(q->slots + i * q->slot_size);
}

static void slot_write(mps_queue *q, uint64_t i, const void *msg, size_t len)
{
  struct mps__slot *sl = slot_at(q, i);
  sl->len = len;
  if (len > 0)
    memcpy(sl->data, msg, len);
}

/* A priority put: the payload into the free slot, then the heap update
 * through the redo record. */
static int heap_put(mps_queue *q, int prio, const void *msg, size_t len, uint64_t head,
                    uint64_t tail)
{
  uint64_t count = tail - head;
  uint32_t slot = q->heap[count].slot;
  if (slot >= q->cap)
    return -EPROTO;
  slot_write(q, slot, msg, len);
  struct mps__qlog *log = &q->s->log;
  struct mps__qent e = {prio, slot, tail};
  mps__heap_plan_push(q->heap, count, e, log);
  log->head = head;
  log->tail = tail + 1;
  atomic_store(&log->valid, 1);
  return log_apply(q);
}

/* Puts as many of msgs as there is room for (at least one: the caller
 * checked) and returns how many, or -EPROTO. */
static ssize_t q_enqueue(mps_queue *q, int prio, const void *const *msgs, const size_t *lens,
                         size_t n, uint64_t head, uint64_t tail)
{
  uint64_t count = tail - head, k = q->cap - count;
  k = k < n ? k : n;
  /* Wake before the commit: see the crash semantics at the top. */
  mps__waitq_wake_held(&q->s->not_empty, WAKE_ALL);
  if (q->order == MPS_PRIORITY) {
    for (uint64_t i = 0; i < k; i++) {
      int err = heap_put(q, prio, msgs[i], lens[i], head, tail + i);
      if (err < 0)
        return i > 0 ? (ssize_t)i : err;
    }
    return (ssize_t)k;
  }
  for (uint64_t i = 0; i < k; i++)
    slot_write(q, count + i, msgs[i], lens[i]); /* LIFO: the stack's top */
  atomic_store_explicit(&q->s->tail, tail + k, memory_order_release);
  return (ssize_t)k;
}

/* The slot of the i-th message to get next (i > 0 only for LIFO). */
static int64_t next_slot(mps_queue *q, uint64_t head, uint64_t tail, uint64_t i)
{
  if (q->order == MPS_LIFO)
    return (int64_t)(tail - head - 1 - i);
  return q->heap[0].slot < q->cap ? (int64_t)q->heap[0].slot : -EPROTO;
}

/* Copies message (slot) out at buf + *off if it fits in cap. Returns its
 * length, -EMSGSIZE (does not fit), -EPROTO. */
static ssize_t slot_read(mps_queue *q, int64_t slot, unsigned char *buf, size_t cap, size_t *off)
{
  if (slot < 0)
    return slot;
  struct mps__slot *sl = slot_at(q, (uint64_t)slot);
  uint64_t len = sl->len;
  if (len > q->max_msg)
    return -EPROTO;
  if (len > cap - *off)
    return -EMSGSIZE;
  if (len > 0)
    memcpy(buf + *off, sl->data, len);
  *off += len;
  return (ssize_t)len;
}

static int heap_commit_pop(mps_queue *q, uint64_t head, uint64_t tail)
{
  struct mps__qlog *log = &q->s->log;
  mps__heap_plan_pop(q->heap, tail - head, log);
  log->head = head + 1;
  log->tail = tail;
  atomic_store(&log->valid, 1);
  return log_apply(q);
}

/* Gets up to max messages (at least one is queued). Returns how many, or
 * -EMSGSIZE if the first does not fit, or -EPROTO. */
static ssize_t q_dequeue(mps_queue *q, void *buf, size_t cap, size_t *lens, size_t max,
                         uint64_t head, uint64_t tail)
{
  uint64_t count = tail - head, k = count < max ? count : max, i;
  size_t off = 0;
  mps__waitq_wake_held(&q->s->not_full, WAKE_ALL);
  for (i = 0; i < k; i++) {
    ssize_t len = slot_read(q, next_slot(q, head, tail, i), buf, cap, &off);
    if (len < 0) {
      if (i == 0)
        return len;
      break;
    }
    lens[i] = (size_t)len;
    if (q->order == MPS_PRIORITY) {
      int err = heap_commit_pop(q, head++, tail);
      if (err < 0)
        return i > 0 ? (ssize_t)i : err;
    }
  }
  if (q->order != MPS_PRIORITY)
    atomic_store_explicit(&q->s->head, head + i, memory_order_release);
  return (ssize_t)i;
}

/* Before taking the mutex: if the queue looks blocked (read without the
 * lock), spin on the counter that would unblock it, so that a waiting
 * process does not take the mutex from the one it waits for just to find
 * nothing changed. Only a hint: the caller rechecks under the mutex. */
static bool pre_spin(mps_queue *q, bool getter, const mps__deadline *d)
{
  if (d->kind == MPS__ONCE)
    return false;
  uint64_t head = atomic_load_explicit(&q->s->head, memory_order_relaxed);
  uint64_t tail = atomic_load_explicit(&q->s->tail, memory_order_relaxed);
  if (getter ? tail != head : tail - head < q->cap)
    return false;
  if (atomic_load_explicit(&q->s->shut, memory_order_relaxed))
    return false;
  mps__spin_while_eq(getter ? &q->s->tail : &q->s->head, getter ? tail : head);
  return true;
}

/* ---- public calls ------------------------------------------------------- */

/* Counts what a put or get did (mutex held): r messages moved (PUTS, GETS;
 * a put also raises the peak from depth), or a wait that gave up
 * (*_TIMEOUTS, when r is the deadline's error). */
static void q_tally(mps_queue *q, unsigned id, ssize_t r, uint64_t depth)
{
  struct mps__hdr *h = &q->s->hdr;
  if (id == MPS__ST_PUTS || id == MPS__ST_GETS) {
    if (r > 0)
      mps__stat_add(h, id, (uint64_t)r);
    if (r > 0 && id == MPS__ST_PUTS)
      mps__stat_max(h, MPS__ST_PEAK, depth + (uint64_t)r);
  } else if (r == -ETIMEDOUT || r == -EAGAIN) {
    mps__stat_inc(h, id);
  }
}

static int check_msgs(mps_queue *q, const void *const *msgs, const size_t *lens, size_t n)
{
  if (!q_open(q) || (n > 0 && (msgs == NULL || lens == NULL)))
    return -EINVAL;
  for (size_t i = 0; i < n; i++) {
    if (msgs[i] == NULL && lens[i] > 0)
      return -EINVAL;
    if (lens[i] > q->max_msg)
      return -EMSGSIZE;
  }
  return 0;
}

static ssize_t put_common(mps_queue *q, int prio, const void *const *msgs, const size_t *lens,
                          size_t n, double timeout)
{
  mps__deadline d;
  ssize_t r = check_msgs(q, msgs, lens, n);
  if (r < 0)
    return r;
  REMOTE(q, mps__rq_put_many(q->remote, msgs, lens, n, timeout));
  if ((r = mps__deadline_init(&d, timeout)) < 0 || n == 0 || (r = mps__qtok_use(q)) < 0)
    return r;
  if (q->order == MPS_FIFO)
    return mps__ring_put(q, msgs, lens, n, &d);
  bool spun = pre_spin(q, false, &d), held = true;
  if ((r = q_lock(q, &d)) < 0) {
    q_tally(q, MPS__ST_PUT_TIMEOUTS, r, 0);
    return r;
  }
  int waited = 0;
  for (;;) {
    uint64_t head, tail;
    if (atomic_load(&q->s->shut)) {
      r = -EPIPE;
      break;
    }
    if ((r = q_counts(q, &head, &tail)) < 0)
      break;
    if (tail - head < q->cap) {
      r = q_enqueue(q, prio, msgs, lens, n, head, tail);
      q_tally(q, MPS__ST_PUTS, r, tail - head);
      break;
    }
    if (waited < 0) {
      r = waited; /* the deadline's error, or -EPROTO */
      q_tally(q, MPS__ST_PUT_TIMEOUTS, r, 0);
      break;
    }
    waited = q_wait(q, &q->s->not_full, &q->s->head, head, &spun, &d, &held);
    if (!held)
      return waited;
  }
  q_unlock(q);
  return r;
}

int mps_queue_put(mps_queue *q, const void *msg, size_t len, double timeout)
{
  ssize_t r = put_common(q, 0, &msg, &len, 1, timeout);
  return r < 0 ? (int)r : 0;
}

int mps_queue_put_prio(mps_queue *q, int prio, const void *msg, size_t len, double timeout)
{
  ssize_t r = put_common(q, prio, &msg, &len, 1, timeout);
  return r < 0 ? (int)r : 0;
}

ssize_t mps_queue_put_many(mps_queue *q, const void *const *msgs, const size_t *lens, size_t n,
                           double timeout)
{
  return put_common(q, 0, msgs, lens, n, timeout);
}

ssize_t mps_queue_get_many(mps_queue *q, void *buf, size_t cap, size_t *lens, size_t max,
                           double timeout)
{
  mps__deadline d;
  if (!q_open(q) || (buf == NULL && cap > 0) || (lens == NULL && max > 0))
    return -EINVAL;
  REMOTE(q, mps__rq_get_many(q->remote, buf, cap, lens, max, timeout));
  ssize_t r = mps__deadline_init(&d, timeout);
  if (r < 0 || max == 0 || (r = mps__qtok_use(q)) < 0)
    return r;
  if (q->order == MPS_FIFO)
    return mps__ring_get(q, buf, cap, lens, max, &d);
  bool spun = pre_spin(q, true, &d), held = true;
  if ((r = q_lock(q, &d)) < 0) {
    q_tally(q, MPS__ST_GET_TIMEOUTS, r, 0);
    return r;
  }
  int waited = 0;
  for (;;) {
    uint64_t head, tail;
    if ((r = q_counts(q, &head, &tail)) < 0)
      break;
    if (tail != head) {
      r = q_dequeue(q, buf, cap, lens, max, head, tail);
      q_tally(q, MPS__ST_GETS, r, 0);
      break;
    }
    if (atomic_load(&q->s->shut)) {
      r = -EPIPE;
      break;
    }
    if (waited < 0) {
      r = waited;
      q_tally(q, MPS__ST_GET_TIMEOUTS, r, 0);
      break;
    }
    waited = q_wait(q, &q->s->not_empty, &q->s->tail, tail, &spun, &d, &held);
    if (!held)
      return waited;
  }
  q_unlock(q);
  return r;
}

ssize_t mps_queue_get(mps_queue *q, void *buf, size_t cap, double timeout)
{
  size_t len;
  ssize_t r = mps_queue_get_many(q, buf, cap, &len, 1, timeout);
  return r < 0 ? r : (ssize_t)len;
}

/* qsize cannot report an error: a remote queue that cannot be reached
 * counts as empty. */
static size_t remote_qsize(const mps_queue *q)
{
  ssize_t n = mps__rq_qsize(q->remote);
  return n < 0 ? 0 : (size_t)n;
}

size_t mps_queue_qsize(const mps_queue *q)
{
  if (!q_open(q))
    return 0;
  REMOTE(q, remote_qsize(q));
  if (q->order == MPS_FIFO)
    return mps__ring_qsize(q);
  /* head first: the tail read after it is at least as new, so no wrap. */
  uint64_t head = atomic_load(&q->s->head);
  uint64_t n = atomic_load(&q->s->tail) - head;
  return n > q->cap ? q->cap : n;
}

bool mps_queue_empty(const mps_queue *q) { return q_open(q) && mps_queue_qsize(q) == 0; }
bool mps_queue_full(const mps_queue *q) { return q_open(q) && mps_queue_qsize(q) == q->cap; }
size_t mps_queue_maxsize(const mps_queue *q) { return q_open(q) ? q->cap : 0; }
size_t mps_queue_max_msg(const mps_queue *q) { return q_open(q) ? q->max_msg : 0; }

int mps_queue_msg_id(const mps_queue *q, size_t i, char *buf, size_t cap)
{
  if (q == NULL || buf == NULL)
    return -EINVAL;
  REMOTE(q, mps__rq_msg_id(q->remote, i, buf, cap));
  return -ENOTSUP;
}

int mps_queue_redelivered(const mps_queue *q, size_t i)
{
  if (q == NULL)
    return -EINVAL;
  REMOTE(q, mps__rq_redelivered(q->remote, i));
  return 0; /* a local queue delivers each message once */
}

int mps_queue_task_done(mps_queue *q)
{
  if (!q_open(q))
    return -EINVAL;
  REMOTE(q, mps__rq_task_done(q->remote));
  int r = mps__qtok_use(q);
  if (r < 0)
    return r;
  if (q->order == MPS_FIFO)
    return mps__ring_task_done(q);
  if ((r = q_lock(q, &mps__forever)) < 0)
    return r;
  uint64_t done = atomic_load(&q->s->done), tail = atomic_load(&q->s->tail);
  if (done >= tail) {
    r = -EINVAL;
  } else {
    if (done + 1 == tail)
      mps__waitq_wake_held(&q->s->all_done, WAKE_ALL);
    atomic_store(&q->s->done, done + 1);
  }
  q_unlock(q);
  return r;
}

int mps_queue_join(mps_queue *q, double timeout)
{
  mps__deadline d;
  if (!q_open(q))
    return -EINVAL;
  REMOTE(q, mps__rq_join(q->remote, timeout));
  int r = mps__deadline_init(&d, timeout);
  if (r < 0 || (r = mps__qtok_use(q)) < 0)
    return r;
  if (q->order == MPS_FIFO)
    return mps__ring_join(q, &d);
  if ((r = q_lock(q, &d)) < 0)
    return r;
  bool gave_up = false, held = true;
  for (;;) {
    uint64_t done = atomic_load(&q->s->done), tail = atomic_load(&q->s->tail);
    if (done >= tail) {
      r = done == tail ? 0 : -EPROTO;
      break;
    }
    if (gave_up)
      break;
    r = mps__waitq_wait(&q->s->all_done, &q->s->mu, &d, NULL, &held);
    if (!held)
      return r;
    if (r == MPS_OWNER_DIED)
      r = q_repair(q);
    gave_up = r < 0;
  }
  q_unlock(q);
  return r;
}

int mps_queue_shutdown(mps_queue *q)
{
  if (!q_open(q))
    return -EINVAL;
  REMOTE(q, mps__rq_shutdown(q->remote));
  int r = mps__qtok_use(q);
  if (r < 0)
    return r;
  if (q->order == MPS_FIFO)
    return mps__ring_shutdown(q);
  if ((r = q_lock(q, &mps__forever)) < 0)
    return r;
  /* Wake first, holding the mutex: see wait.c on a waker that dies. */
  mps__waitq_wake(&q->s->not_empty, WAKE_ALL);
  mps__waitq_wake(&q->s->not_full, WAKE_ALL);
  atomic_store(&q->s->shut, 1);
  q_unlock(q);
  return 0;
}

/* ---- inspection ----------------------------------------------------------- */

/* The FIFO core's tail and head count its puts and gets already, holes
 * included (claims of dead producers, which gets pass): puts are the
 * tickets claimed less the holes, gets the tickets passed less the holes.
 * A claim whose put is still copying counts as put, and a hole made but
 * not yet passed makes gets one short until a get passes it. */
static void fifo_counters(const struct mps__queue_shm *s, mps_object_info *info)
{
  uint64_t t = atomic_load(&s->tail) & MPS__TICKETS, h = atomic_load(&s->head) & MPS__TICKETS;
  uint64_t holes = atomic_load(&s->ring.skipped);
  mps__info_counter(info, "puts", (int64_t)(t > holes ? t - holes : 0));
  mps__info_counter(info, "gets", (int64_t)(h > holes ? h - holes : 0));
}

/* The FIFO core keeps flags in the high bits of head, tail and done, its
 * own task count, and counts holes as done (queue_internal.h). */
static void q_counts_of(const struct mps__queue_shm *s, uint64_t *depth, uint64_t *unfinished,
                        bool *shut)
{
  uint64_t head = atomic_load(&s->head), tail = atomic_load(&s->tail);
  if (s->order != MPS_FIFO) {
    *depth = tail - head;
    *unfinished = tail - atomic_load(&s->done);
    *shut = atomic_load(&s->shut) != 0;
    return;
  }
  uint64_t t = tail & MPS__TICKETS;
  *depth = t - (head & MPS__TICKETS);
  *unfinished = t - (atomic_load(&s->ring.done) & MPS__TICKETS) - atomic_load(&s->ring.skipped);
  *shut = (tail & MPS__TAIL_CLOSED) != 0;
}

static int q_describe(const void *copy, size_t size, mps_object_info *info)
{
  static const char *const orders[] = {
      [MPS_FIFO] = "fifo", [MPS_LIFO] = "lifo", [MPS_PRIORITY] = "priority"};
  const struct mps__queue_shm *s = copy;
  uint64_t depth, unfinished;
  bool shut;
  if (shm_validate(copy, size) < 0)
    return -EPROTO;
  q_counts_of(s, &depth, &unfinished, &shut);
  if (depth > s->maxsize || unfinished > (UINT64_C(1) << 62))
    return -EPROTO;
  mps__info_num(info, "depth", (int64_t)depth);
  mps__info_num(info, "maxsize", (int64_t)s->maxsize);
  mps__info_num(info, "max_msg", (int64_t)s->max_msg);
  mps__info_text(info, "order", orders[s->order]);
  mps__info_num(info, "unfinished", (int64_t)unfinished);
  mps__info_bool(info, "shutdown", shut);
  if (s->order == MPS_FIFO)
    fifo_counters(s, info);
  return 0;
}

const struct mps__kind_view mps__queue_view = {MPS__KIND_QUEUE,   "queue",
                                               QUEUE_LAYOUT,      sizeof(struct mps__queue_shm),
                                               MPS__FAMILY_QUEUE, q_describe};
