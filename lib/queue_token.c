/* Per-thread liveness tokens of FIFO queues, and the lifetime of a queue
 * handle shared by several threads.
 *
 * Shared layout: MPS__QTOK tokens after the queue's counters, each a
 * robust process-shared mutex and an intent word (queue_internal.h).
 *
 * A thread that puts into a FIFO queue takes a free token once and holds
 * it across calls: taking and releasing a robust mutex on every put would
 * cost two locked instructions per call. The kernel marks the token
 * owner-died when the thread dies (or execs), which is what tells
 * consumers that its claims will never be published. A token found
 * owner-died is repaired before it is used again (queue_repair.c).
 *
 * Process-local state: each thread keeps a list of the handles it used
 * and the token it holds in each. Every entry holds a reference on the
 * handle, and so does the open handle itself; close drops the caller's
 * entry (releasing its token) and the open reference, a thread's exit
 * (a pthread key destructor) drops its entries, and the last reference
 * unmaps. So the segment is never unmapped while a thread is inside a
 * call or holds a token in it: glibc links held robust mutexes into a
 * per-thread list through the mutexes themselves, and the kernel walks
 * it at exit, so unmapping a held one would corrupt that list. A forked
 * child holds no token (glibc gives it an empty robust list): the atfork
 * handler forgets the inherited ones and recounts the references that
 * threads of the child can still drop.
 */
#include "config.h"

#include <stdlib.h>
#include <time.h>

#include "queue_internal.h"

struct qrec {
  mps_queue *q;
  int tok; /* held token, -1: none */
  struct qrec *next;
};

static _Thread_local struct qrec *recs; /* most recently used first */
static pthread_key_t rec_key;
static pthread_once_t rec_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t open_mu = PTHREAD_MUTEX_INITIALIZER;
static mps_queue *open_list;

static void unlink_open(mps_queue *q)
{
  if ((*q->prev_open = q->next_open) != NULL)
    q->next_open->prev_open = q->prev_open;
}

static void drop_ref(mps_queue *q)
{
  if (atomic_fetch_sub(&q->refs, 1) != 1)
    return;
  pthread_mutex_lock(&open_mu);
  unlink_open(q);
  pthread_mutex_unlock(&open_mu);
  mps__seg_free_handle(q);
}

static void rec_release(struct qrec *r)
{
  if (r->tok < 0)
    return;
  struct mps__qtok *t = &r->q->tok[r->tok];
  atomic_store(&t->intent, 0);
  mps__mutex_unlock(&t->mu);
  r->tok = -1;
}

static void thread_exit(void *unused)
{
  (void)unused;
  struct qrec *r = recs;
  recs = NULL;
  while (r != NULL) {
    struct qrec *next = r->next;
    rec_release(r);
    drop_ref(r->q);
    free(r);
    r = next;
  }
}

static void fork_prepare(void) { pthread_mutex_lock(&open_mu); }
static void fork_parent(void) { pthread_mutex_unlock(&open_mu); }

/* Only the forking thread lives on: its tokens are its parent thread's,
 * and only its own entries can ever drop their references. */
static void fork_child(void)
{
  for (struct qrec *r = recs; r != NULL; r = r->next)
    r->tok = -1;
  mps_queue *dead = NULL;
  for (mps_queue *q = open_list, *next; q != NULL; q = next) {
    next = q->next_open;
    unsigned n = q->closed ? 0 : 1;
    for (struct qrec *r = recs; r != NULL; r = r->next)
      n += r->q == q;
    atomic_store(&q->refs, n);
    if (n == 0) {
      unlink_open(q);
      q->next_open = dead;
      dead = q;
    }
  }
  pthread_mutex_unlock(&open_mu);
  for (mps_queue *q = dead, *next; q != NULL; q = next) {
    next = q->next_open;
    mps__seg_free_handle(q);
  }
}

static void rec_init(void)
{
  pthread_key_create(&rec_key, thread_exit);
  pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void mps__qtok_register(mps_queue *q)
{
  pthread_once(&rec_once, rec_init);
  atomic_store(&q->refs, 1);
  pthread_mutex_lock(&open_mu);
  q->next_open = open_list;
  q->prev_open = &open_list;
  if (open_list != NULL)
    open_list->prev_open = &q->next_open;
  open_list = q;
  pthread_mutex_unlock(&open_mu);
}

/* The calling thread's entry for q, moved to the front; made if `make`. */
static struct qrec *rec_of(mps_queue *q, bool make)
{
  for (struct qrec **pp = &recs; *pp != NULL; pp = &(*pp)->next)
    if ((*pp)->q == q) {
      struct qrec *r = *pp;
      *pp = r->next;
      r->next = recs;
      return recs = r;
    }
  if (!make)
    return NULL;
  struct qrec *r = malloc(sizeof(*r));
  if (r == NULL)
    return NULL;
  *r = (struct qrec){q, -1, recs};
  atomic_fetch_add(&q->refs, 1);
  pthread_setspecific(rec_key, (void *)1); /* any non-NULL: run the destructor */
  return recs = r;
}

int mps__qtok_use(mps_queue *q)
{
  if (recs != NULL && recs->q == q)
    return 0;
  return rec_of(q, true) ? 0 : -ENOMEM;
}

void mps__qtok_close(mps_queue *q)
{
  struct qrec *r = rec_of(q, false);
  if (r != NULL) {
    recs = r->next;
    rec_release(r);
    free(r);
    drop_ref(q);
  }
  q->closed = true;
  drop_ref(q);
}

static void note_used(mps_queue *q, unsigned k)
{
  _Atomic uint32_t *n = &q->s->ring.ntok;
  uint32_t seen = atomic_load(n);
  while (seen < k + 1 && !atomic_compare_exchange_weak(n, &seen, k + 1))
    ;
}

/* Takes the first free token, or one whose thread died (repairing its
 * claims first). Waits, in short naps, only when every token is held by
 * a live thread. */
static int tok_take(mps_queue *q, const mps__deadline *d)
{
  static const mps__deadline once = {.kind = MPS__ONCE};
  for (;;) {
    for (unsigned k = 0; k < MPS__QTOK; k++) {
      mps__mutex *m = &q->tok[k].mu;
      if (mps__mutex_owner_alive(m))
        continue;
      int r = mps__mutex_lock(m, &once);
      if (r < 0)
        continue;
      note_used(q, k);
      if (atomic_load(&q->tok[k].intent) != 0 && (r = mps__ring_repair_token(q, k, d)) < 0) {
        mps__mutex_unlock(m);
        return r;
      }
      return (int)k;
    }
    if (mps__deadline_passed(d))
      return mps__deadline_error(d);
    nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
  }
}

int mps__qtok_get(mps_queue *q, const mps__deadline *d)
{
  struct qrec *r = recs;
  if (r == NULL || r->q != q) {
    if ((r = rec_of(q, true)) == NULL)
      return -ENOMEM;
  }
  if (r->tok < 0) {
    int k = tok_take(q, d);
    if (k < 0)
      return k;
    r->tok = k;
  }
  return r->tok;
}
