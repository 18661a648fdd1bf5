/* Barrier: `parties` processes wait for each other, round after round.
 *
 * Shared layout: the segment header, then struct barrier_shm: a robust
 * mutex, a wait queue (wait.c), the number of parties, the arrivals in the
 * current round, a broken flag, the round number (generation) and the
 * outcome of the last 64 rounds (bit g%64 set: round g ended broken, by a
 * reset while parties waited). A waiter remembers its round and its arrival
 * index; it returns when the round number moves on (released, or reset: the
 * outcome bit says which) or the barrier breaks.
 *
 * Crash semantics: nothing about a waiter is stored but the arrival count.
 * A party killed while waiting has arrived and stays counted, so the last
 * live party still completes the round and releases the survivors; the dead
 * party's index is simply unused. A party killed before it arrived never
 * arrives: the others wait for it until a timeout (or abort) breaks the
 * barrier. Every field changes by single stores under the mutex.
 *
 * Limit: a waiter that is not scheduled at all while 64 further rounds
 * complete could misread its round's outcome from the 64-round history.
 */
#include "config.h"

#include <stdlib.h>

#include "internal.h"

struct barrier_shm {
  struct mps__hdr hdr;
  mps__mutex mu;
  mps__waitq wq;
  uint32_t parties;
  _Atomic uint32_t count;
  _Atomic uint32_t broken;
  uint32_t pad_;
  _Atomic uint64_t gen;
  uint64_t broken_hist;
};

struct mps_barrier {
  mps__seg seg;
  struct barrier_shm *shm;
};

static int barrier_validate(const struct barrier_shm *shm)
{
  if (shm->parties == 0 || shm->parties > INT32_MAX || atomic_load(&shm->count) >= shm->parties ||
      atomic_load(&shm->broken) > 1)
    return -EPROTO;
  return 0;
}

static int barrier_init(struct barrier_shm *shm, unsigned parties)
{
  shm->parties = parties;
  return mps__mutex_init(&shm->mu, false);
}

static mps_barrier *barrier_make(const char *name, bool create, unsigned parties)
{
  if (create && (parties == 0 || parties > INT32_MAX))
    return mps__fail(-EINVAL);
  mps_barrier *b = calloc(1, sizeof(*b));
  if (b == NULL)
    return mps__fail(-ENOMEM);
  int err;
  size_t size = sizeof(struct barrier_shm);
  if (!create) {
    err = mps__seg_open(&b->seg, name, MPS__KIND_BARRIER, size);
    if (err == 0 && (err = barrier_validate((struct barrier_shm *)b->seg.hdr)) < 0)
      mps__seg_close(&b->seg);
  } else {
    err = name ? mps__seg_create(&b->seg, name, MPS__KIND_BARRIER, size)
               : mps__seg_anon(&b->seg, MPS__KIND_BARRIER, size);
    if (err == 0 && (err = barrier_init((struct barrier_shm *)b->seg.hdr, parties)) < 0)
      mps__seg_abort(&b->seg);
    else if (err == 0)
      mps__seg_publish(&b->seg);
  }
  if (err < 0) {
    free(b);
    return mps__fail(err);
  }
  b->shm = (struct barrier_shm *)b->seg.hdr;
  return b;
}

mps_barrier *mps_barrier_new(unsigned parties) { return barrier_make(NULL, true, parties); }
mps_barrier *mps_barrier_create(const char *name, unsigned parties)
{
  return barrier_make(name ? name : "", true, parties);
}
mps_barrier *mps_barrier_open(const char *name) { return barrier_make(name ? name : "", false, 0); }

int mps_barrier_close(mps_barrier *b)
{
  if (b == NULL)
    return 0;
  mps__seg_close(&b->seg);
  free(b);
  return 0;
}

/* Ends round `gen` and wakes everybody; caller holds the mutex. */
static void round_end(struct barrier_shm *shm, uint64_t gen, bool broken)
{
  uint64_t bit = UINT64_C(1) << (gen % 64);
  shm->broken_hist = broken ? shm->broken_hist | bit : shm->broken_hist & ~bit;
  atomic_store(&shm->count, 0);
  atomic_store(&shm->gen, gen + 1);
  mps__waitq_wake(&shm->wq, INT32_MAX);
}

static void barrier_break(struct barrier_shm *shm)
{
  atomic_store(&shm->broken, 1);
  mps__waitq_wake(&shm->wq, INT32_MAX);
}

/* Sleeps until round `gen` ends or breaks. Caller holds the mutex. */
static int await_round(struct barrier_shm *shm, uint64_t gen, int index, const mps__deadline *d)
{
  int r = 0;
  while (atomic_load(&shm->gen) == gen && !atomic_load(&shm->broken) && r >= 0) {
    r = mps__waitq_wait(&shm->wq, &shm->mu, d);
    if (r == MPS_OWNER_DIED)
      r = 0;
  }
  if (atomic_load(&shm->gen) != gen)
    return (shm->broken_hist >> (gen % 64)) & 1 ? -EPIPE : index;
  if (atomic_load(&shm->broken))
    return -EPIPE;
  barrier_break(shm); /* our timeout breaks the round for everybody */
  return r;
}

int mps_barrier_wait(mps_barrier *b, double timeout)
{
  mps__deadline d;
  if (b == NULL)
    return -EINVAL;
  int r = mps__deadline_init(&d, timeout);
  if (r < 0)
    return r;
  struct barrier_shm *shm = b->shm;
  mps__mutex_enter(&shm->mu);
  uint64_t gen = atomic_load(&shm->gen);
  uint32_t index = atomic_load(&shm->count);
  if (atomic_load(&shm->broken)) {
    r = -EPIPE;
  } else if (index + 1 >= shm->parties) {
    round_end(shm, gen, false);
    r = (int)shm->parties - 1;
  } else {
    atomic_store(&shm->count, index + 1);
    r = await_round(shm, gen, (int)index, &d);
  }
  mps__mutex_unlock(&shm->mu);
  return r;
}

int mps_barrier_abort(mps_barrier *b)
{
  if (b == NULL)
    return -EINVAL;
  mps__mutex_enter(&b->shm->mu);
  barrier_break(b->shm);
  mps__mutex_unlock(&b->shm->mu);
  return 0;
}

int mps_barrier_reset(mps_barrier *b)
{
  if (b == NULL)
    return -EINVAL;
  struct barrier_shm *shm = b->shm;
  mps__mutex_enter(&shm->mu);
  bool waiters = atomic_load(&shm->count) > 0;
  /* Clear `broken` before the new round starts, so that nobody of the new
   * round sees the old break. */
  atomic_store(&shm->broken, 0);
  round_end(shm, atomic_load(&shm->gen), waiters);
  mps__mutex_unlock(&shm->mu);
  return 0;
}

int mps_barrier_parties(mps_barrier *b) { return b == NULL ? -EINVAL : (int)b->shm->parties; }

int mps_barrier_n_waiting(mps_barrier *b)
{
  if (b == NULL)
    return -EINVAL;
  return atomic_load(&b->shm->broken) ? 0 : (int)atomic_load(&b->shm->count);
}

bool mps_barrier_broken(mps_barrier *b) { return b != NULL && atomic_load(&b->shm->broken) != 0; }
