/* FIFO repair: a dead producer's unpublished tickets become holes.
 *
 * Shared layout: the tokens (queue_internal.h: a robust mutex and an
 * intent word each), `ring.skipped` and the redo record `ring.log`, all
 * written only under the queue's robust mutex.
 *
 * A ticket x below tail that is not published was claimed by a put whose
 * intent still covers it (a put clears its intent only after publishing).
 * If no token whose thread is alive has an intent covering x, its claimer
 * is dead (the kernel marked its token owner-died) and x never will be
 * published: a repairer makes it a hole. "Alive" is the token word, so a
 * producer merely stopped (SIGSTOP) is waited for, and a pid reused by
 * another process changes nothing. A repairer takes the queue mutex, then
 * the dead token (a trylock, so it never waits while holding the mutex,
 * and producers that take a token first and the mutex second cannot
 * deadlock with it), makes the holes, clears the dead intent and releases
 * the token for the next producer. A producer that takes a dead token on
 * its own does the same before it uses it.
 *
 * Crash semantics: each hole is planned into the redo record (the ticket,
 * and `skipped` as it must be afterwards), marked valid, applied (a CAS
 * of the slot word from "unpublished" to SKIP, then the absolute store of
 * skipped) and cleared. A repairer killed anywhere leaves the mutex
 * owner-died and the token it had taken owner-died again; the next holder
 * of the mutex applies a valid record again (the CAS finds SKIP, the store
 * writes the same value), and the token's intent is repaired again by
 * whoever meets it next: a ticket already a hole is not counted twice.
 */
#include "config.h"

#include <limits.h>

#include "queue_internal.h"
#include "stats.h"

#define M52 ((UINT64_C(1) << 52) - 1)

static bool covers(uint64_t intent, uint64_t x)
{
  return intent != 0 && ((x - (intent >> 12)) & M52) < (intent & 0xfff);
}

static unsigned ntok(mps_queue *q)
{
  unsigned n = atomic_load(&q->s->ring.ntok);
  return n < MPS__QTOK ? n : MPS__QTOK;
}

bool mps__ring_dead_claims(mps_queue *q)
{
  /* A repairer that died with its redo record valid: `skipped` is behind
   * until someone applies it. */
  if (atomic_load_explicit(&q->s->ring.log.valid, memory_order_relaxed) &&
      !mps__mutex_owner_alive(&q->s->mu))
    return true;
  for (unsigned k = 0, n = ntok(q); k < n; k++)
    if (atomic_load_explicit(&q->tok[k].intent, memory_order_acquire) != 0 &&
        !mps__mutex_owner_alive(&q->tok[k].mu))
      return true;
  return false;
}

/* Whether a live thread other than the holder of token `self` may still
 * publish x. */
static bool live_claim(mps_queue *q, uint64_t x, unsigned self)
{
  for (unsigned k = 0, n = ntok(q); k < n; k++)
    if (k != self && covers(atomic_load(&q->tok[k].intent), x) &&
        mps__mutex_owner_alive(&q->tok[k].mu))
      return true;
  return false;
}

void mps__ring_wake_slot(mps_queue *q, uint64_t x)
{
  mps__futex_wake(mps__lo32(&mps__q_pos(q, x).sl->state), INT_MAX);
}

/* Applies the valid redo record (mutex held): idempotent. */
static void log_apply(mps_queue *q)
{
  struct mps__rlog *log = &q->s->ring.log;
  uint64_t x = log->ticket;
  struct mps__pos p = mps__q_pos(q, x);
  _Atomic uint64_t *state = &p.sl->state;
  uint64_t st = atomic_load(state);
  uint64_t hole = mps__st_pub(q, p, MPS__ST_SKIP);
  while (mps__st_is_unpub(st, p))
    if (atomic_compare_exchange_weak(state, &st, hole)) {
      if (st & MPS__ST_W)
        mps__ring_wake_slot(q, x);
      break;
    }
  MPS__CRASHPOINT(MPS__CP_REPAIR_SKIPPED);
  atomic_store(&q->s->ring.skipped, log->skipped);
  MPS__CRASHPOINT(MPS__CP_REPAIR_COUNTED);
  atomic_store(&log->valid, 0);
  /* A joiner may be waiting for exactly this hole. */
  if (atomic_load(&q->s->ring.done) & MPS__DONE_W)
    mps__futex_wake(mps__lo32(&q->s->ring.done), INT_MAX);
}

int mps__ring_lock(mps_queue *q, const mps__deadline *d)
{
  int r = mps__mutex_lock(&q->s->mu, d ? d : &mps__forever);
  if (r < 0)
    return r;
  if (r == MPS_OWNER_DIED)
    mps__stat_recovered(&q->s->hdr, MPS__REPAIR_QUEUE_LOG);
  if (atomic_load(&q->s->ring.log.valid))
    log_apply(q); /* its repairer died */
  return 0;
}

static void make_hole(mps_queue *q, uint64_t x)
{
  struct mps__rlog *log = &q->s->ring.log;
  log->ticket = x;
  log->skipped = atomic_load(&q->s->ring.skipped) + 1;
  atomic_store(&log->valid, 1);
  MPS__CRASHPOINT(MPS__CP_REPAIR_LOGGED);
  log_apply(q);
}

/* Token k is held by the caller, its previous thread died: its claimed
 * and unpublished tickets that no live thread may publish become holes,
 * and its intent is cleared. Mutex held. */
static void repair_intent(mps_queue *q, unsigned k)
{
  uint64_t iv = atomic_load(&q->tok[k].intent), holes = 0;
  if (iv == 0)
    return;
  MPS__CRASHPOINT(MPS__CP_REPAIR_TOKEN);
  uint64_t head = atomic_load(&q->s->head) & MPS__TICKETS;
  uint64_t tail = atomic_load(&q->s->tail) & MPS__TICKETS;
  /* The intent keeps 52 bits of its ticket: the claim is the nearest
   * ticket at or below tail with those bits (a claim never made, whose
   * CAS failed or never ran, lands at or above tail and covers nothing). */
  uint64_t t = tail - ((tail - (iv >> 12)) & M52), n = iv & 0xfff;
  for (uint64_t x = t; x - t < n; x++) {
    if (x - head >= tail - head)
      continue; /* committed already, or never claimed */
    /* Intents first: a live claimer clears its intent only after it
     * published, so if its intent is gone the state read next shows it. */
    if (live_claim(q, x, k))
      continue;
    struct mps__pos p = mps__q_pos(q, x);
    if (mps__st_is_unpub(atomic_load(&p.sl->state), p))
      make_hole(q, x), holes++;
  }
  if (holes > 0) { /* stats.h: the mutex is held */
    mps__stat_add(&q->s->hdr, MPS__ST_HOLES, holes);
    mps__stat_recovered(&q->s->hdr, MPS__REPAIR_QUEUE_HOLES);
  }
  MPS__CRASHPOINT(MPS__CP_REPAIR_CLEAR);
  atomic_store(&q->tok[k].intent, 0);
}

int mps__ring_repair_token(mps_queue *q, unsigned k, const mps__deadline *d)
{
  int r = mps__ring_lock(q, d);
  if (r < 0)
    return r;
  repair_intent(q, k);
  mps__mutex_unlock(&q->s->mu);
  return 0;
}

int mps__ring_repair(mps_queue *q, const mps__deadline *d)
{
  static const mps__deadline once = {.kind = MPS__ONCE};
  int r = mps__ring_lock(q, d);
  if (r < 0)
    return r;
  for (unsigned k = 0, n = ntok(q); k < n; k++) {
    mps__mutex *tm = &q->tok[k].mu;
    if (atomic_load(&q->tok[k].intent) == 0 || mps__mutex_owner_alive(tm))
      continue;
    /* Busy: another thread took the dead token and repairs it itself. */
    if (mps__mutex_lock(tm, &once) < 0)
      continue;
    repair_intent(q, k);
    mps__mutex_unlock(tm);
  }
  mps__mutex_unlock(&q->s->mu);
  return 0;
}
