/* Live counters and the ring of the last crash recoveries of every object.
 *
 * Shared layout: struct mps__stats in every segment header (internal.h):
 * MPS__STAT_SHARDS cache lines of MPS__STAT_N counters, then the number of
 * recoveries ever recorded and a ring of the last MPS__RECOVERY_RING
 * (entry n % 16 holds the n-th). The increments are inline (stats.h); this
 * file records recoveries and reads the block back.
 *
 * Crash semantics: writers hold the object's mutex, or count with atomic
 * read-modify-writes (stats.h). A process killed between the load and the
 * store of an increment under the mutex loses that one count; a
 * recorder killed while writing an entry leaves it half written, and the
 * count is stored after the entry, so that entry is not shown until the
 * next recovery overwrites it. Readers take the block as it is, without a
 * lock: a count read while another process adds may be one behind.
 */
#include "config.h"

#include "stats.h"

void mps__stat_recovered(struct mps__hdr *h, enum mps__repair what)
{
  uint64_t n = atomic_load_explicit(&h->stats.recoveries, memory_order_relaxed);
  struct mps__recovery *r = &h->stats.ring[n % MPS__RECOVERY_RING];
  r->pid = mps__self_pid();
  r->what = what;
  r->time_ns = mps__wall_ns();
  atomic_store_explicit(&h->stats.recoveries, n + 1, memory_order_release);
}

uint64_t mps__stat_read(const struct mps__hdr *h, unsigned id, bool is_max)
{
  uint64_t v = 0;
  if (id >= MPS__STAT_N)
    return 0;
  for (unsigned i = 0; i < MPS__STAT_SHARDS; i++) {
    uint64_t c = atomic_load_explicit(&h->stats.shard[i].c[id], memory_order_relaxed);
    v = is_max ? (c > v ? c : v) : v + c;
  }
  return v;
}

static const char *const repair_names[MPS__REPAIR_END_] = {
    [MPS__REPAIR_LOCK] = "lock owner died; lock made consistent",
    [MPS__REPAIR_WAKE] = "holder died inside; all sleepers woken",
    [MPS__REPAIR_QUEUE_LOG] = "holder died inside; redo record checked, sleepers woken",
    [MPS__REPAIR_COND_SLOT] = "waiter died; its slot freed",
    [MPS__REPAIR_QUEUE_HOLES] = "producer died mid-put; its claimed slots made holes",
};

const char *mps__repair_name(uint32_t what)
{
  return what < MPS__REPAIR_END_ ? repair_names[what] : NULL;
}
