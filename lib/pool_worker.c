/* The pool's worker: a forked process that takes batches of tasks from its
 * own inbox, runs them and posts their results.
 *
 * Shared layout: the worker's slot (pool_internal.h): progress words, the
 * claim ring and the result area. Only this worker consumes its inbox and
 * writes its progress words; the manager reads them once the worker is
 * dead.
 *
 * Protocol for one batch (seq s, n tasks), each step one store:
 *   1. get it from the inbox (a get killed before its commit took nothing);
 *   2. started = finished = posted = 0, then taken = s;
 *   3. claim s in the ring against a cancellation by the parent (CAS);
 *   4. for task k: started = k + 1, run it, write its entry into the
 *      result area, then finished = k + 1;
 *   5. when the area is full and at the end: post the entries of tasks
 *      posted..finished-1 as one result message, then posted = finished.
 * Crash semantics: from these words and the first seq still in the inbox
 * the manager knows exactly what the dead worker held (pool_manager.c):
 * tasks below `finished` have their result in the area or in the result
 * queue, task `started - 1` (if started > finished) was running and fails
 * with -ECHILD, and tasks from `started` on never ran and run elsewhere.
 * Each task runs at most once.
 */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include "pool_internal.h"

bool mps__pool_claim(struct mps__pool_slot *s, unsigned ring, uint64_t seq, unsigned how)
{
  _Atomic uint64_t *e = &s->claim[seq % ring];
  uint64_t v = atomic_load(e);
  /* The entry holds an older batch's decision until one side stores s's.
   * A ring of twice the inbox depth never holds two undecided batches. */
  while ((v >> 2) < seq)
    if (atomic_compare_exchange_weak(e, &v, seq << 2 | how))
      return true;
  return false;
}

static _Noreturn void worker_exit(struct mps__pool_slot *s, uint32_t reason, int code)
{
  atomic_store(&s->exit_reason, reason);
  _exit(code);
}

/* Posts the results in the area: tasks posted..finished-1 of batch seq. */
static void flush(mps_pool *p, unsigned i, uint64_t seq)
{
  struct mps__pool_slot *s = mps__pool_slot(p, i);
  struct mps__pool_res *area = mps__pool_area(p, i);
  uint64_t posted = atomic_load(&s->posted), finished = atomic_load(&s->finished);
  if (finished == posted)
    return;
  area->kind = MPS__RES_RESULT;
  area->worker = i;
  area->seq = seq;
  area->first = (uint32_t)posted;
  area->count = (uint32_t)(finished - posted);
  size_t len = sizeof(*area) + atomic_load(&s->area_used);
  if (mps_queue_put(p->results, area, len, MPS_FOREVER) < 0)
    worker_exit(s, MPS__EXIT_ERROR, 1);
  MPS__POOL_CRASHPOINT(MPS__CP_POOL_POSTED);
  atomic_store(&s->posted, finished);
  atomic_store(&s->area_used, 0);
}

static void run_batch(mps_pool *p, unsigned i, const struct mps__pool_batch *b)
{
  struct mps__pool_slot *s = mps__pool_slot(p, i);
  char *entries = (char *)(mps__pool_area(p, i) + 1);
  size_t room = p->area_size - sizeof(struct mps__pool_res);
  size_t max = p->opts.max_result, need = mps__pool_entry_size(max);
  mps_task_fn fn = (mps_task_fn)(uintptr_t)b->fn;
  for (uint32_t k = 0; k < b->n; k++) {
    if (atomic_load(&s->area_used) + need > room)
      flush(p, i, b->seq);
    size_t used = atomic_load(&s->area_used);
    struct mps__pool_entry *e = (struct mps__pool_entry *)(entries + used);
    MPS__POOL_CRASHPOINT(MPS__CP_POOL_NEXT);
    atomic_store(&s->started, k + 1);
    MPS__POOL_CRASHPOINT(MPS__CP_POOL_STARTED);
    ssize_t v = fn(b->args + (size_t)k * b->arg_size, b->arg_size, e->data, max);
    MPS__POOL_CRASHPOINT(MPS__CP_POOL_RAN);
    e->value = v; /* above max: no bytes, the parent reports -EMSGSIZE */
    e->len = v > 0 && v <= (ssize_t)max ? (uint64_t)v : 0;
    atomic_store(&s->area_used, used + mps__pool_entry_size((size_t)e->len));
    atomic_store(&s->finished, k + 1);
    MPS__POOL_CRASHPOINT(MPS__CP_POOL_FINISHED);
  }
  flush(p, i, b->seq);
}

static void post_skipped(mps_pool *p, unsigned i, uint64_t seq)
{
  struct mps__pool_res r = {.kind = MPS__RES_SKIPPED, .worker = i, .seq = seq};
  if (mps_queue_put(p->results, &r, sizeof(r), MPS_FOREVER) < 0)
    worker_exit(mps__pool_slot(p, i), MPS__EXIT_ERROR, 1);
}

_Noreturn void mps__pool_worker_main(mps_pool *p, unsigned i, struct mps__pool_batch *b)
{
  struct mps__pool_slot *s = mps__pool_slot(p, i);
  if (p->opts.init != NULL)
    p->opts.init(p->opts.init_arg);
  atomic_store(&s->ready, 1);
  size_t cap = sizeof(*b) + p->batch_max;
  for (uint64_t done = 0;;) {
    if (p->opts.max_tasks_per_child != 0 && done >= p->opts.max_tasks_per_child)
      worker_exit(s, MPS__EXIT_RECYCLE, 0);
    ssize_t r = mps_queue_get(p->w[i].inbox, b, cap, MPS_FOREVER);
    if (r == -EPIPE || (r >= (ssize_t)sizeof(*b) && (b->flags & MPS__BATCH_STOP)))
      worker_exit(s, MPS__EXIT_STOP, 0);
    if (r < (ssize_t)sizeof(*b) || b->arg_size * b->n > (size_t)r - sizeof(*b))
      worker_exit(s, MPS__EXIT_ERROR, 1);
    MPS__POOL_CRASHPOINT(MPS__CP_POOL_GOT);
    atomic_store(&s->started, 0);
    atomic_store(&s->finished, 0);
    atomic_store(&s->posted, 0);
    atomic_store(&s->area_used, 0);
    atomic_store(&s->taken, b->seq);
    MPS__POOL_CRASHPOINT(MPS__CP_POOL_TAKEN);
    if (!mps__pool_claim(s, 2 * p->depth, b->seq, MPS__CLAIM_START)) {
      post_skipped(p, i, b->seq);
      continue;
    }
    run_batch(p, i, b);
    done += b->n;
  }
}
