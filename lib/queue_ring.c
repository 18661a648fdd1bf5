/* The FIFO queue's core: a bounded ring of slots where producers and
 * consumers never take a lock.
 *
 * Shared layout (queue_internal.h): `tail` counts the tickets ever
 * claimed by puts (bit 63: shut down), `head` the tickets ever committed
 * by gets (bit 63: a producer sleeps for room); ticket x lives in slot
 * x % maxsize, whose `state` word says whether x is published (FULL, or
 * SKIP for a hole) and whether consumers sleep on it. `ring.done` counts
 * task_done calls (bit 63: joiners sleep) and `ring.skipped` the holes.
 * Each producing thread holds a liveness token, a robust mutex of its own
 * in the segment, with the intent word saying which tickets it is
 * claiming (queue_token.c). head, tail, done, each token and each slot
 * sit on their own cache lines.
 *
 * A put stores its intent (ticket t, count k), claims t..t+k-1 with one
 * CAS on tail, writes the payloads, publishes them back to front (the
 * first one last, with an exchange that sees sleeping consumers), and
 * clears its intent. A get copies the published messages from head on,
 * then commits them with one CAS on head; a losing CAS discards the copy.
 *
 * Crash semantics. A message is wholly in the queue or not: consumers
 * read a slot only once its state says FULL for that ticket, and the
 * state is stored after the payload. A put killed before its CAS claimed
 * nothing. A put killed after its CAS and before publishing ticket x
 * leaves x unpublished; the kernel marks its token owner-died, and the
 * first consumer (or joiner) that finds x in its way while no live
 * token's intent covers it turns x into a hole (SKIP) under the queue's
 * robust mutex, through a redo record (queue_repair.c). A hole counts as
 * done for join and in `skipped`. A get killed before its CAS took
 * nothing; killed after it, it loses what it had copied (at most its
 * batch), and nothing is ever delivered twice, because a CAS on head
 * hands each ticket to exactly one get. task_done is one CAS. Sleepers
 * mark the word they sleep on (W in a slot, bit 63 in head or done); the
 * next change of that word clears the mark and wakes them (one, which
 * wakes the next: sleep_chained), so a killed sleeper costs at most one
 * spurious wake, and every sleep is a bounded slice, so a waker or a
 * woken sleeper killed before it passed the wake on costs at most one
 * slice. A producer that is alive but stopped (SIGSTOP) between its
 * claim and its publish is waited for, never skipped: its token says it
 * is alive. Shutdown sets the closed bit in tail under the mutex; later
 * claims fail, earlier ones are drained.
 */
#include "config.h"

#include <limits.h>
#include <string.h>

#include "queue_internal.h"
#include "stats.h"

/* Sleeps are cut into slices this long: what a killed waker costs. */
#define SLICE_NS (20 * 1000 * 1000L)
#define M52      ((UINT64_C(1) << 52) - 1)
#define PHASE    (3u << 1)

/* A sleep of one slice on a slot or on head. Wakers wake one sleeper
 * (waking every consumer of a slot for one message would make them all
 * race for it); a sleeper that wakes passes the wake on to the next one
 * on the same word before it looks for work, so all of them wake, one
 * after the other. A sleeper killed between the two costs the rest one
 * slice at most. */
static void sleep_chained(_Atomic uint32_t *word, uint32_t expected, const mps__deadline *d)
{
  mps__deadline slice;
  mps__deadline_slice(d, SLICE_NS, &slice);
  if (mps__futex_wait(word, expected, &slice) == 0)
    mps__futex_wake(word, 1);
}

/* ---- put ---------------------------------------------------------------- */

static void write_slot(struct mps__slot *sl, const void *msg, size_t len)
{
  sl->len = len;
  if (len == 0)
    return;
#ifdef MPS_CRASHPOINTS
  memcpy(sl->data, msg, len / 2);
  MPS__CRASHPOINT(MPS__CP_PUT_PAYLOAD);
  memcpy(sl->data + len / 2, (const char *)msg + len / 2, len - len / 2);
#else
  memcpy(sl->data, msg, len);
#endif
}

/* Writes and publishes tickets t..t+k-1, the first one last: consumers
 * cannot pass t before it is published, so only t's slot can have
 * sleepers, and only t needs the exchange that sees them. */
static void publish(mps_queue *q, uint64_t t, uint64_t k, const void *const *msgs,
                    const size_t *lens)
{
  for (uint64_t j = k - 1; j > 0; j--) {
    struct mps__pos p = mps__q_pos(q, t + j);
    write_slot(p.sl, msgs[j], lens[j]);
    atomic_store_explicit(&p.sl->state, mps__st_pub(q, p, MPS__ST_FULL), memory_order_release);
    MPS__CRASHPOINT(MPS__CP_PUT_PUBLISH);
  }
  struct mps__pos p = mps__q_pos(q, t);
  write_slot(p.sl, msgs[0], lens[0]);
  uint64_t prev = atomic_exchange(&p.sl->state, mps__st_pub(q, p, MPS__ST_FULL));
  MPS__CRASHPOINT(MPS__CP_PUT_WAKE);
  if (prev & MPS__ST_W)
    mps__futex_wake(mps__lo32(&p.sl->state), 1); /* the rest: sleep_chained */
}

/* The peak depth.
 *
 * A put knows its tickets' end but not where head is now, only the head
 * cached in its handle, which may be a lap old; reading head on every put
 * would move the consumers' line to the producer each time. So the peak
 * (stats.h; no mutex here) is taken when a claim reloads head anyway:
 * besides when the cached head shows no room, a claim reloads it once
 * the cached head shows a depth of reload_at, the deepest this handle
 * has recorded plus maxsize/16 (at least 1; 0 at first). The depth it
 * then records is what the queue held when the put read head, plus the
 * put's own messages (a put that finds the queue full records maxsize):
 * above the true peak only by the gets made during that one claim, and
 * below it by at most maxsize/16 (1 under 16 places), more by a batch
 * put's size. A put pays no more on its common path than a compare with
 * reload_at instead of maxsize, and a shared read at most once per
 * maxsize/16 puts, none once the peak is within maxsize/16 of full.
 * Built without the counters, reload_at is maxsize, as it was before
 * them. */

static inline uint64_t reload_at(const mps_queue *q)
{
#if MPS__STATS
  return atomic_load_explicit(&q->reload_at, memory_order_relaxed);
#else
  return q->cap;
#endif
}

/* A claim that has just read head finds the queue `depth` deep. */
static void peak_counted(mps_queue *q, uint64_t depth)
{
#if MPS__STATS
  if (depth <= atomic_load_explicit(&q->peak_seen, memory_order_relaxed) || depth > q->cap)
    return; /* no new peak (or head damaged: never above maxsize) */
  uint64_t grain = q->cap / 16 ? q->cap / 16 : 1;
  atomic_store_explicit(&q->peak_seen, depth, memory_order_relaxed);
  atomic_store_explicit(&q->reload_at, depth + grain < q->cap ? depth + grain : q->cap,
                        memory_order_relaxed);
  mps__stat_max_lockfree(&q->s->hdr, MPS__ST_PEAK, depth);
#else
  (void)q, (void)depth;
#endif
}

/* Claims up to n tickets: returns how many (at least 1) with *tp the
 * first, 0 when there is no room, -EPIPE, or -EPROTO (a damaged segment).
 * The free room is counted from a recent head cached in the handle,
 * reloaded only when it shows none (or a depth of reload_at, for the peak
 * counter, above); a tail read before that head was cached can be behind
 * it, which must read as "reload", never as a huge room. */
static ssize_t claim(mps_queue *q, struct mps__qtok *tok, size_t n, uint64_t *tp)
{
  uint64_t t = atomic_load_explicit(&q->s->tail, memory_order_relaxed);
  for (;;) {
    if (t & MPS__TAIL_CLOSED)
      return -EPIPE;
    uint64_t h = atomic_load_explicit(&q->head_cache, memory_order_relaxed);
    bool fresh = t - h >= reload_at(q);
    if (fresh) {
      h = atomic_load_explicit(&q->s->head, memory_order_acquire) & MPS__TICKETS;
      atomic_store_explicit(&q->head_cache, h, memory_order_relaxed);
      if ((int64_t)(t - h) < 0) {
        /* Tail never falls behind head, so one read after head's is at
         * least head; otherwise the segment is damaged, and waiting for
         * it would spin for ever. */
        t = atomic_load_explicit(&q->s->tail, memory_order_acquire);
        if ((int64_t)((t & MPS__TICKETS) - h) < 0)
          return -EPROTO;
        continue;
      }
      if (t - h >= q->cap) {
        peak_counted(q, q->cap); /* full */
        *tp = t;
        return 0;
      }
    }
    uint64_t k = q->cap - (t - h);
    k = k < n ? k : n;
    k = k < MPS__INTENT_MAX ? k : MPS__INTENT_MAX;
    /* Right after the claim below, or a racer's that beats it, the queue
     * holds t - h + k messages (claims included), less the gets made
     * since head was read. */
    if (fresh)
      peak_counted(q, t - h + k);
    /* Stored before the claim: whoever sees the new tail (its CAS is a
     * release) sees the intent, so a stalled consumer always finds the
     * live claimer of a ticket below tail. */
    atomic_store_explicit(&tok->intent, (t & M52) << 12 | k, memory_order_relaxed);
    MPS__CRASHPOINT(MPS__CP_PUT_INTENT);
    if (atomic_compare_exchange_weak(&q->s->tail, &t, t + k)) {
      *tp = t;
      return (ssize_t)k;
    }
  }
}

/* No room for ticket t: spin once, then sleep a slice on head. 0 to
 * retry, or the deadline's error. */
static int wait_room(mps_queue *q, uint64_t t, bool *spun, const mps__deadline *d)
{
  if (mps__deadline_passed(d))
    return mps__deadline_error(d);
  _Atomic uint64_t *head = &q->s->head;
  if (!*spun) {
    *spun = true;
    mps__spin_while_eq(head, atomic_load_explicit(head, memory_order_relaxed));
    return 0;
  }
  /* Mark, then recheck: a get that commits after the mark wakes us; the
   * shutdown's fetch_or on tail and our load of it are both seq_cst. */
  uint64_t raw = atomic_fetch_or(head, MPS__HEAD_HW) | MPS__HEAD_HW;
  if (t - (raw & MPS__TICKETS) < q->cap || (atomic_load(&q->s->tail) & MPS__TAIL_CLOSED))
    return 0;
  MPS__CRASHPOINT(MPS__CP_PUT_SLEEP);
  sleep_chained(mps__lo32(head), (uint32_t)raw, d);
  return 0;
}

static int timeout_counted(mps_queue *q, unsigned id, int r)
{
  if (r == -ETIMEDOUT || r == -EAGAIN)
    mps__stat_add_lockfree(&q->s->hdr, id, 1);
  return r;
}

ssize_t mps__ring_put(mps_queue *q, const void *const *msgs, const size_t *lens, size_t n,
                      const mps__deadline *d)
{
  int k = mps__qtok_get(q, d);
  if (k < 0)
    return k;
  struct mps__qtok *tok = &q->tok[k];
  MPS__CRASHPOINT(MPS__CP_PUT_TOKEN);
  bool spun = false;
  for (;;) {
    uint64_t t;
    ssize_t c = claim(q, tok, n, &t);
    if (c > 0) {
      MPS__CRASHPOINT(MPS__CP_PUT_CLAIMED);
      publish(q, t, (uint64_t)c, msgs, lens);
      MPS__CRASHPOINT(MPS__CP_PUT_CLEAR);
      atomic_store_explicit(&tok->intent, 0, memory_order_release);
      return c;
    }
    /* A failed claim's intent must not outlive it: a consumer would wait
     * for a live producer that itself waits for room. */
    atomic_store_explicit(&tok->intent, 0, memory_order_relaxed);
    if (c < 0)
      return c;
    int r = wait_room(q, t, &spun, d);
    if (r < 0)
      return timeout_counted(q, MPS__ST_PUT_TIMEOUTS, r);
  }
}

/* ---- get ---------------------------------------------------------------- */

struct taken {
  uint64_t j;   /* tickets passed: messages copied and holes */
  size_t nfull; /* messages copied */
  bool toobig;  /* stopped at a message that does not fit */
  bool bad;     /* stopped at a length above max_msg */
  bool stale;   /* head moved on under us */
};

/* Copies the published messages from ticket h on (at most max, as many
 * as fit) and passes holes. Lengths are checked before any copy: a racer
 * that lost to another get may read a slot being rewritten. */
static void take(mps_queue *q, uint64_t h, unsigned char *buf, size_t cap, size_t *lens, size_t max,
                 struct taken *tk)
{
  size_t off = 0, nfull = 0;
  uint64_t x = h;
  bool stale = false, bad = false, toobig = false;
  /* Stop at max before looking at the next slot: its line is the one
   * the producers are writing now. */
  for (; x - h < q->cap && nfull < max; x++) {
    struct mps__pos p = mps__q_pos(q, x);
    uint64_t st = atomic_load_explicit(&p.sl->state, memory_order_acquire);
    if (!mps__st_is_pub(q, st, p)) {
      stale = !mps__st_is_unpub(st, p);
      break;
    }
    if ((st & PHASE) == MPS__ST_SKIP)
      continue;
    uint64_t len = p.sl->len;
    bad = len > q->max_msg;
    toobig = !bad && len > cap - off;
    if (bad || toobig)
      break;
    if (len > 0)
      memcpy(buf + off, p.sl->data, len);
    lens[nfull++] = len;
    off += len;
  }
  /* Filled once, from locals: byte flags stored one by one and read back
   * together stall the store buffer. */
  *tk = (struct taken){x - h, nfull, toobig, bad, stale};
}

/* Nothing published at h: h is empty, or claimed by a put that has not
 * published yet. Spins once, makes holes of dead claims, else sleeps a
 * slice on the slot. 0 to retry, -EPIPE, or the deadline's error. */
static int wait_msg(mps_queue *q, uint64_t h, bool *spun, const mps__deadline *d)
{
  struct mps__pos p = mps__q_pos(q, h);
  struct mps__slot *sl = p.sl;
  uint64_t st = atomic_load_explicit(&sl->state, memory_order_acquire);
  if (!mps__st_is_unpub(st, p))
    return 0;
  /* Spin before reading tail: a consumer that reads the producers' line
   * on every miss costs the next put a cache miss. A closed queue is
   * found after the spin. */
  if (!*spun && d->kind != MPS__ONCE) {
    *spun = true;
    mps__spin_while_eq2(&sl->state, st, &q->s->head, h);
    return 0;
  }
  uint64_t t = atomic_load(&q->s->tail);
  bool empty = (t & MPS__TICKETS) == h;
  if (empty && (t & MPS__TAIL_CLOSED))
    return -EPIPE;
  if (empty && d->kind == MPS__ONCE)
    return -EAGAIN;
  if (!*spun) { /* timeout 0 and a put in progress: give it a spin */
    *spun = true;
    mps__spin_while_eq2(&sl->state, st, &q->s->head, h);
    return 0;
  }
  if (!empty && mps__ring_dead_claims(q)) {
    int r = mps__ring_repair(q, d);
    return r < 0 ? r : 0;
  }
  if (mps__deadline_passed(d))
    return mps__deadline_error(d);
  if (!(st & MPS__ST_W) && !atomic_compare_exchange_strong(&sl->state, &st, st | MPS__ST_W))
    return 0;
  t = atomic_load(&q->s->tail); /* seq_cst after the mark: see shutdown */
  if ((t & MPS__TAIL_CLOSED) && (t & MPS__TICKETS) == h)
    return -EPIPE;
  MPS__CRASHPOINT(MPS__CP_GET_SLEEP);
  sleep_chained(mps__lo32(&sl->state), (uint32_t)(st | MPS__ST_W), d);
  return 0;
}

/* The new head word for a commit to `to`, and whether to wake producers
 * sleeping for room. They are woken once a quarter of the ring is free,
 * not at every commit: woken for one free place, a producer fills it and
 * sleeps again, which costs the consumer a syscall per message. Below
 * that the mark stays set, and a producer whose room never comes sleeps
 * out its slice and finds what room there is. */
static uint64_t head_word(mps_queue *q, uint64_t raw, uint64_t to, bool *wake)
{
  *wake = false;
  if (!(raw & MPS__HEAD_HW))
    return to;
  uint64_t tail = atomic_load_explicit(&q->s->tail, memory_order_relaxed) & MPS__TICKETS;
  uint64_t room = q->cap - (tail - to), enough = q->cap / 4 ? q->cap / 4 : 1;
  *wake = tail - to > q->cap || room >= enough; /* (a stale tail: wake) */
  return *wake ? to : to | MPS__HEAD_HW;
}

/* Commits tickets h..h+j-1 if head is still h (a producer's sleep mark
 * may have been added meanwhile). */
static bool commit(mps_queue *q, uint64_t raw, uint64_t h, uint64_t j)
{
  bool wake;
  while (!atomic_compare_exchange_weak(&q->s->head, &raw, head_word(q, raw, h + j, &wake)))
    if ((raw & MPS__TICKETS) != h)
      return false;
  MPS__CRASHPOINT(MPS__CP_GET_COMMITTED);
  if (wake)
    mps__futex_wake(mps__lo32(&q->s->head), 1); /* the rest: sleep_chained */
  return true;
}

static bool head_is(mps_queue *q, uint64_t h)
{
  return (atomic_load(&q->s->head) & MPS__TICKETS) == h;
}

ssize_t mps__ring_get(mps_queue *q, void *buf, size_t cap, size_t *lens, size_t max,
                      const mps__deadline *d)
{
  bool spun = false;
  for (;;) {
    uint64_t raw = atomic_load_explicit(&q->s->head, memory_order_acquire);
    uint64_t h = raw & MPS__TICKETS;
    struct taken tk;
    take(q, h, buf, cap, lens, max, &tk);
    if (tk.stale) {
      /* A slot of another lap while head is still here cannot be: head
       * only moves forward, and no put reaches ticket h + cap before a
       * get passed h. A damaged or forged queue (found by fuzz_queue,
       * where it looped for ever). Else head moved under us: whatever
       * was copied is worth nothing. */
      if (head_is(q, h))
        return -EPROTO;
      continue;
    }
    if (tk.j == 0) {
      /* A length is only trusted once head shows that nobody took and
       * rewrote the slot while we read it. */
      if (tk.bad || tk.toobig) {
        if (head_is(q, h))
          return tk.bad ? -EPROTO : -EMSGSIZE;
        continue;
      }
      int r = wait_msg(q, h, &spun, d);
      if (r < 0)
        return timeout_counted(q, MPS__ST_GET_TIMEOUTS, r);
      continue;
    }
    MPS__CRASHPOINT(MPS__CP_GET_COPIED);
    if (commit(q, raw, h, tk.j) && tk.nfull > 0)
      return (ssize_t)tk.nfull;
  }
}

/* ---- counts, task_done, join, shutdown --------------------------------- */

size_t mps__ring_qsize(const mps_queue *q)
{
  /* head first: the tail read after it is at least as new. */
  uint64_t h = atomic_load(&q->s->head) & MPS__TICKETS;
  uint64_t n = (atomic_load(&q->s->tail) & MPS__TICKETS) - h;
  return n > q->cap ? (size_t)q->cap : (size_t)n;
}

uint64_t mps__ring_head(const mps_queue *q) { return atomic_load(&q->s->head) & MPS__TICKETS; }
uint64_t mps__ring_tail(const mps_queue *q) { return atomic_load(&q->s->tail) & MPS__TICKETS; }

int mps__ring_task_done(mps_queue *q)
{
  _Atomic uint64_t *done = &q->s->ring.done;
  uint64_t dv = atomic_load(done);
  for (;;) {
    uint64_t tail = atomic_load(&q->s->tail) & MPS__TICKETS;
    uint64_t skipped = atomic_load(&q->s->ring.skipped);
    if ((dv & MPS__TICKETS) + skipped >= tail) {
      if (!mps__ring_dead_claims(q))
        return -EINVAL;
      int r = mps__ring_repair(q, NULL); /* the holes may not be counted yet */
      if (r < 0)
        return r;
      continue;
    }
    MPS__CRASHPOINT(MPS__CP_DONE_BEFORE);
    if (atomic_compare_exchange_weak(done, &dv, (dv & MPS__TICKETS) + 1))
      break;
  }
  MPS__CRASHPOINT(MPS__CP_DONE_AFTER);
  if (dv & MPS__DONE_W)
    mps__futex_wake(mps__lo32(done), INT_MAX);
  return 0;
}

/* Whether every ticket is done or a hole: tail read before and after, so
 * that the sum is compared with one tail. */
static bool all_done(mps_queue *q)
{
  uint64_t t1 = atomic_load(&q->s->tail) & MPS__TICKETS;
  uint64_t s = atomic_load(&q->s->ring.skipped);
  uint64_t dv = atomic_load(&q->s->ring.done) & MPS__TICKETS;
  uint64_t t2 = atomic_load(&q->s->tail) & MPS__TICKETS;
  return t1 == t2 && dv + s >= t1;
}

int mps__ring_join(mps_queue *q, const mps__deadline *d)
{
  _Atomic uint64_t *done = &q->s->ring.done;
  for (;;) {
    if (all_done(q))
      return 0;
    /* A hole left by a dead producer is done too: make it, even when no
     * consumer is there to find it. */
    if (mps__ring_dead_claims(q)) {
      int r = mps__ring_repair(q, d);
      if (r < 0)
        return r;
      continue;
    }
    if (mps__deadline_passed(d))
      return mps__deadline_error(d);
    uint64_t dv = atomic_fetch_or(done, MPS__DONE_W) | MPS__DONE_W;
    if (all_done(q))
      return 0;
    mps__deadline slice;
    mps__deadline_slice(d, SLICE_NS, &slice);
    mps__futex_wait(mps__lo32(done), (uint32_t)dv, &slice);
  }
}

int mps__ring_shutdown(mps_queue *q)
{
  int r = mps__ring_lock(q, NULL);
  if (r < 0)
    return r;
  MPS__CRASHPOINT(MPS__CP_SHUT_LOCKED);
  atomic_fetch_or(&q->s->tail, MPS__TAIL_CLOSED);
  MPS__CRASHPOINT(MPS__CP_SHUT_CLOSED);
  /* Consumers sleep only on the slot of the head ticket (a later ticket
   * cannot be waited for before it), producers on head. Both recheck the
   * closed bit after marking their word (seq_cst, as the fetch_or). */
  uint64_t h = atomic_load(&q->s->head) & MPS__TICKETS;
  mps__futex_wake(mps__lo32(&mps__q_pos(q, h).sl->state), INT_MAX);
  mps__futex_wake(mps__lo32(&q->s->head), INT_MAX);
  mps__mutex_unlock(&q->s->mu);
  return 0;
}
