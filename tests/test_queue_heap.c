/* The priority heap's redo plans (lib/queue_heap.c), white-box: linked
 * statically to reach the internal functions. A process killed after any
 * number of a plan's stores leaves a heap that the recovering process
 * repairs by applying the whole plan again; this checks that for every
 * prefix of every plan, on random heaps, along with the heap order and the
 * slot permutation the queue relies on. */
#include "helpers.h"

#include <stdint.h>

#include "internal.h"

#define CAP 64

static struct mps__qent heap[CAP];

static void apply(struct mps__qent *h, const struct mps__qlog *log, uint32_t upto)
{
  for (uint32_t i = 0; i < upto; i++)
    h[log->w[i].pos] = log->w[i].e;
}

static bool before(const struct mps__qent *a, const struct mps__qent *b)
{
  return a->prio < b->prio || (a->prio == b->prio && a->seq < b->seq);
}

static void check_heap(const struct mps__qent *h, uint64_t count)
{
  bool used[CAP] = {false};
  for (uint64_t i = 0; i < CAP; i++) {
    cr_assert_lt(h[i].slot, CAP);
    cr_assert(!used[h[i].slot], "slot %u twice", h[i].slot);
    used[h[i].slot] = true;
    if (i > 0 && i < count)
      cr_assert(!before(&h[i], &h[(i - 1) / 2]), "heap order at %llu", (unsigned long long)i);
  }
}

/* Every crash point of the plan, then recovery, gives the planned heap. */
static void check_plan(const struct mps__qlog *log)
{
  struct mps__qent want[CAP];
  memcpy(want, heap, sizeof(heap));
  apply(want, log, log->n);
  for (uint32_t crash = 0; crash <= log->n; crash++) {
    struct mps__qent h[CAP];
    memcpy(h, heap, sizeof(heap));
    apply(h, log, crash);  /* the dead process got this far */
    apply(h, log, log->n); /* the next locker applies the record again */
    cr_assert_arr_eq(h, want, sizeof(h), "crash after %u of %u stores", crash, log->n);
  }
  memcpy(heap, want, sizeof(heap));
}

Test(queue_heap, redo_plans_survive_a_crash_after_any_store, .timeout = 30)
{
  static struct mps__qlog log;
  for (uint32_t i = 0; i < CAP; i++)
    heap[i] = (struct mps__qent){0, i, 0};
  srand(7);
  uint64_t count = 0, seq = 0;
  for (int step = 0; step < 20000; step++) {
    bool push = count == 0 || (count < CAP && rand() % 2);
    if (push) {
      struct mps__qent e = {rand() % 5, heap[count].slot, seq++};
      mps__heap_plan_push(heap, count, e, &log);
      cr_assert_leq(log.n, MPS__QLOG_MAX);
      check_plan(&log);
      count++;
    } else {
      struct mps__qent root = heap[0];
      mps__heap_plan_pop(heap, count, &log);
      cr_assert_leq(log.n, MPS__QLOG_MAX);
      check_plan(&log);
      count--;
      cr_assert_eq(heap[count].slot, root.slot, "the root's slot is free again");
      for (uint64_t i = 0; i < count; i++)
        cr_assert(!before(&heap[i], &root), "popped the smallest");
    }
    check_heap(heap, count);
  }
}
