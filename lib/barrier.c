/* Barrier: `parties` processes wait for each other, round after round.
 *
 * Shared layout: the segment header, then struct barrier_shm: a robust
 * mutex, a wait queue (wait.c), the number of parties, one state word that
 * packs the round number (generation, 32 bits), the broken flag and the
 * arrivals in the current round, and the outcome of the last 64 rounds
 * (bit g%64 set: round g ended broken, by a reset while parties waited). A waiter remembers its
 * round and its arrival index; it returns when the round number moves on (released, or reset: the
 * outcome bit says which) or the barrier breaks.
 *
 * Crash semantics: nothing about a waiter is stored but the arrival count.
 * A party killed while waiting has arrived and stays counted, so the last
 * live party still completes the round and releases the survivors; the dead
 * party's index is simply unused. A party killed before it arrived never
 * arrives: the others wait for it until a timeout (or abort) breaks the
 * barrier. Every change of round, arrivals or broken flag is one store of
 * the state word under the mutex, so a process killed between two stores
 * never leaves a round half ended (arrivals reset but round unchanged would
 * merge two rounds); the outcome bit is written before that store. Sleepers
 * are woken before the store, while the mutex is held, so a process killed
 * in between leaves them waiting for the robust mutex (wait.c).
 *
 * Limit: a waiter that is not scheduled at all while 64 further rounds
 * complete could misread its round's outcome from the 64-round history.
 */
#include "config.h"

#include "inspect.h"
#include "stats.h"

/* Shared: its size and key offsets are folded into BARRIER_LAYOUT. */
struct barrier_shm {
  struct mps__hdr hdr;
  mps__mutex mu;
  mps__waitq wq;
  uint32_t parties;
  uint32_t pad_;
  _Atomic uint64_t state; /* gen << 32 | broken << 31 | count */
  uint64_t broken_hist;
};

/* Layout word: struct barrier_shm. */
#define BARRIER_LAYOUT                                                                             \
  MPS__FOLD4(MPS__LAYOUT, sizeof(struct barrier_shm), offsetof(struct barrier_shm, parties),       \
             offsetof(struct barrier_shm, state), offsetof(struct barrier_shm, broken_hist))

#define BROKEN_BIT (UINT64_C(1) << 31)

static uint32_t st_gen(uint64_t s) { return (uint32_t)(s >> 32); }
static uint32_t st_count(uint64_t s) { return (uint32_t)(s & (BROKEN_BIT - 1)); }
static bool st_broken(uint64_t s) { return (s & BROKEN_BIT) != 0; }
static uint64_t st_make(uint32_t gen, uint32_t count) { return (uint64_t)gen << 32 | count; }

struct mps_barrier {
  mps__seg seg;
  struct barrier_shm *shm;
};

MPS__SEG_HANDLE(struct mps_barrier);

static int barrier_validate(const void *p, size_t size)
{
  const struct barrier_shm *shm = p;
  (void)size;
  if (shm->parties == 0 || shm->parties > MPS_BARRIER_PARTIES_MAX ||
      st_count(atomic_load(&shm->state)) >= shm->parties)
    return -EPROTO;
  return mps__mutex_check(&shm->mu, false);
}

static int barrier_init(void *p, const void *parties)
{
  struct barrier_shm *shm = p;
  shm->parties = *(const unsigned *)parties;
  return mps__mutex_init(&shm->mu, false);
}

static mps_barrier *barrier_make(enum mps__seg_mode mode, const char *name, unsigned parties)
{
  if (mode != MPS__SEG_OPEN && (parties == 0 || parties > MPS_BARRIER_PARTIES_MAX))
    return mps__fail(-EINVAL);
  mps__seg_spec spec = {MPS__KIND_BARRIER, sizeof(struct barrier_shm),
                        barrier_init,      barrier_validate,
                        &parties,          BARRIER_LAYOUT};
  mps_barrier *b = mps__seg_object(sizeof(*b), mode, name, &spec);
  if (b != NULL)
    b->shm = (struct barrier_shm *)b->seg.hdr;
  return b;
}

mps_barrier *mps_barrier_new(unsigned parties)
{
  return barrier_make(MPS__SEG_ANON, NULL, parties);
}
mps_barrier *mps_barrier_create(const char *name, unsigned parties)
{
  return barrier_make(MPS__SEG_CREATE, name, parties);
}
mps_barrier *mps_barrier_open(const char *name) { return barrier_make(MPS__SEG_OPEN, name, 0); }

int mps_barrier_close(mps_barrier *b) { return mps__seg_free_handle(b); }

/* Ends round `gen` and wakes everybody; caller holds the mutex. */
static void round_end(struct barrier_shm *shm, uint32_t gen, bool broken)
{
  uint64_t bit = UINT64_C(1) << (gen % 64);
  shm->broken_hist = broken ? shm->broken_hist | bit : shm->broken_hist & ~bit;
  mps__waitq_wake(&shm->wq, INT32_MAX); /* first: see wait.c on a waker that dies */
  mps__stat_inc(&shm->hdr, MPS__ST_WAKEUPS);
  atomic_store(&shm->state, st_make(gen + 1, 0));
}

static void barrier_break(struct barrier_shm *shm)
{
  mps__waitq_wake(&shm->wq, INT32_MAX);
  mps__stat_inc(&shm->hdr, MPS__ST_WAKEUPS);
  atomic_fetch_or(&shm->state, BROKEN_BIT);
}

/* Breaks round gen without the mutex, which a stopped process holds past
 * our deadline: one compare-and-swap, so that it can break only that
 * round, and only if nobody ended it meanwhile. Woken before and after:
 * sleepers woken first recheck once they get the mutex, as after any
 * waker that dies between its wake and its store. */
static void barrier_break_unlocked(struct barrier_shm *shm, uint32_t gen)
{
  mps__waitq_wake(&shm->wq, INT32_MAX);
  uint64_t s = atomic_load(&shm->state);
  while (st_gen(s) == gen && !st_broken(s) &&
         !atomic_compare_exchange_weak(&shm->state, &s, s | BROKEN_BIT))
    ;
  mps__waitq_wake(&shm->wq, INT32_MAX);
}

/* Sleeps until round `gen` ends or breaks. Caller holds the mutex; it
 * still does on return if *held. */
static int await_round(struct barrier_shm *shm, uint32_t gen, int index, const mps__deadline *d,
                       bool *held)
{
  int r = 0;
  uint64_t s;
  mps__stat_inc(&shm->hdr, MPS__ST_WAITS);
  while (s = atomic_load(&shm->state), st_gen(s) == gen && !st_broken(s) && r >= 0) {
    r = mps__waitq_wait(&shm->wq, &shm->mu, d, &shm->hdr, held);
    if (!*held) {
      mps__stat_inc(&shm->hdr, MPS__ST_TIMEOUTS);
      barrier_break_unlocked(shm, gen);
      return r;
    }
    if (r == MPS_OWNER_DIED)
      r = 0;
  }
  if (st_gen(s) != gen)
    return (shm->broken_hist >> (gen % 64)) & 1 ? -EPIPE : index;
  if (st_broken(s))
    return -EPIPE;
  mps__stat_inc(&shm->hdr, MPS__ST_TIMEOUTS);
  barrier_break(shm); /* our timeout breaks the round for everybody */
  return r;
}

int mps_barrier_wait(mps_barrier *b, double timeout)
{
  mps__deadline d;
  if (!mps__seg_live(b))
    return -EINVAL;
  int r = mps__deadline_init(&d, timeout);
  if (r < 0)
    return r;
  struct barrier_shm *shm = b->shm;
  if ((r = mps__waitq_enter(&shm->wq, &shm->mu, &shm->hdr, &d)) < 0)
    return r; /* not arrived: the round goes on without us */
  uint64_t s = atomic_load(&shm->state);
  uint32_t gen = st_gen(s), index = st_count(s);
  bool held = true;
  if (st_broken(s)) {
    r = -EPIPE;
  } else if (index + 1 >= shm->parties) {
    round_end(shm, gen, false);
    r = (int)shm->parties - 1;
  } else {
    atomic_store(&shm->state, st_make(gen, index + 1));
    r = await_round(shm, gen, (int)index, &d, &held);
  }
  if (held)
    mps__mutex_unlock(&shm->mu);
  return r;
}

int mps_barrier_abort(mps_barrier *b)
{
  if (!mps__seg_live(b))
    return -EINVAL;
  int r = mps__waitq_enter(&b->shm->wq, &b->shm->mu, &b->shm->hdr, &mps__forever);
  if (r < 0)
    return r;
  barrier_break(b->shm);
  mps__mutex_unlock(&b->shm->mu);
  return 0;
}

int mps_barrier_reset(mps_barrier *b)
{
  if (!mps__seg_live(b))
    return -EINVAL;
  struct barrier_shm *shm = b->shm;
  int r = mps__waitq_enter(&shm->wq, &shm->mu, &shm->hdr, &mps__forever);
  if (r < 0)
    return r;
  uint64_t s = atomic_load(&shm->state);
  /* One store starts the new round unbroken and empty; parties still
   * waiting in the old one learn from its outcome bit that it broke. */
  round_end(shm, st_gen(s), st_count(s) > 0);
  mps__mutex_unlock(&shm->mu);
  return 0;
}

int mps_barrier_parties(const mps_barrier *b)
{
  return !mps__seg_live(b) ? -EINVAL : (int)b->shm->parties;
}

int mps_barrier_n_waiting(const mps_barrier *b)
{
  if (!mps__seg_live(b))
    return -EINVAL;
  uint64_t s = atomic_load(&b->shm->state);
  return st_broken(s) ? 0 : (int)st_count(s);
}

bool mps_barrier_broken(const mps_barrier *b)
{
  return mps__seg_live(b) && st_broken(atomic_load(&b->shm->state));
}

/* ---- inspection ----------------------------------------------------------- */

static int barrier_describe(const void *copy, size_t size, mps_object_info *info)
{
  const struct barrier_shm *shm = copy;
  if (barrier_validate(copy, size) < 0)
    return -EPROTO;
  uint64_t s = atomic_load(&shm->state);
  mps__info_num(info, "parties", shm->parties);
  mps__info_num(info, "waiting", st_broken(s) ? 0 : st_count(s));
  mps__info_bool(info, "broken", st_broken(s));
  return 0;
}

const struct mps__kind_view mps__barrier_view = {MPS__KIND_BARRIER, "barrier",
                                                 BARRIER_LAYOUT,    sizeof(struct barrier_shm),
                                                 MPS__FAMILY_WAIT,  barrier_describe};
