/* The priority queue's binary heap, as plans of stores.
 *
 * The heap is an array of maxsize entries in the queue's segment. Entries
 * 0..count-1 form a min-heap ordered by (prio, seq); the entries from count
 * on are free, and only their slot field is meaningful: together the slot
 * fields are always a permutation of the payload slots, so the slot of
 * heap[count] is the free slot the next put writes into.
 *
 * Nothing here writes to the heap. A push or a pop is planned as the list
 * of (position, entry) stores that it makes, each computed from the heap as
 * it was before the first store. queue.c writes the plan to the redo record,
 * marks it valid, applies it and clears it; a process that finds a valid
 * record after its owner died applies it again, which is harmless since
 * every store writes an absolute value.
 */
#include "config.h"

#include "internal.h"

static bool before(const struct mps__qent *a, const struct mps__qent *b)
{
  return a->prio < b->prio || (a->prio == b->prio && a->seq < b->seq);
}

static void plan(struct mps__qlog *log, uint64_t pos, struct mps__qent e)
{
  log->w[log->n].pos = pos;
  log->w[log->n].e = e;
  log->n++;
}

void mps__heap_plan_push(const struct mps__qent *heap, uint64_t count, struct mps__qent e,
                         struct mps__qlog *log)
{
  uint64_t p = count;
  log->n = 0;
  while (p > 0) {
    uint64_t parent = (p - 1) / 2;
    if (!before(&e, &heap[parent]))
      break;
    plan(log, p, heap[parent]);
    p = parent;
  }
  plan(log, p, e);
}

void mps__heap_plan_pop(const struct mps__qent *heap, uint64_t count, struct mps__qlog *log)
{
  uint64_t n = count - 1, p = 0;
  struct mps__qent last = heap[n], freed = {0, heap[0].slot, 0};
  log->n = 0;
  if (n > 0) {
    for (;;) {
      uint64_t c = 2 * p + 1;
      if (c >= n)
        break;
      if (c + 1 < n && before(&heap[c + 1], &heap[c]))
        c++;
      if (!before(&heap[c], &last))
        break;
      plan(log, p, heap[c]);
      p = c;
    }
    plan(log, p, last);
  }
  plan(log, n, freed);
}
