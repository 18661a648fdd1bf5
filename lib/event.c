/* Event: a flag that processes wait for.
 *
 * Shared layout: the segment header, then struct event_shm: a robust mutex,
 * a wait queue (wait.c), the flag and a generation that every set() bumps.
 * A waiter remembers the generation it started in and returns as soon as
 * the flag is set or the generation moved, so a set() followed at once by
 * clear() still releases everybody who was waiting (Python does the same).
 *
 * Crash semantics: nothing about a waiter is stored, so a waiter killed at
 * any point leaves no trace; set() wakes all sleepers, dead ones cost
 * nothing. The flag and generation change by single stores under the mutex.
 *
 * set wakes the sleepers before its stores, holding the mutex, so a setter
 * killed in between leaves them waiting for the robust mutex, which hands
 * them the event as set or not set, never set and unannounced (wait.c).
 */
#include "config.h"

#include "inspect.h"
#include "stats.h"

/* Shared: its size and key offsets are folded into EVENT_LAYOUT. */
struct event_shm {
  struct mps__hdr hdr;
  mps__mutex mu;
  mps__waitq wq;
  _Atomic uint32_t flag;
  _Atomic uint32_t gen;
};

/* Layout word: struct event_shm. */
#define EVENT_LAYOUT                                                                               \
  MPS__FOLD4(MPS__LAYOUT, sizeof(struct event_shm), offsetof(struct event_shm, wq),                \
             offsetof(struct event_shm, flag), offsetof(struct event_shm, gen))

struct mps_event {
  mps__seg seg;
  struct event_shm *shm;
};

MPS__SEG_HANDLE(struct mps_event);

static int event_init(void *shm, const void *arg)
{
  (void)arg;
  return mps__mutex_init(&((struct event_shm *)shm)->mu, false);
}

static int event_validate(const void *shm, size_t size)
{
  const struct event_shm *e = shm;
  (void)size;
  return atomic_load(&e->flag) > 1 ? -EPROTO : mps__mutex_check(&e->mu, false);
}

static mps_event *event_make(enum mps__seg_mode mode, const char *name)
{
  mps__seg_spec spec = {MPS__KIND_EVENT, sizeof(struct event_shm), event_init, event_validate, NULL,
                        EVENT_LAYOUT};
  mps_event *e = mps__seg_object(sizeof(*e), mode, name, &spec);
  if (e != NULL)
    e->shm = (struct event_shm *)e->seg.hdr;
  return e;
}

mps_event *mps_event_new(void) { return event_make(MPS__SEG_ANON, NULL); }
mps_event *mps_event_create(const char *name) { return event_make(MPS__SEG_CREATE, name); }
mps_event *mps_event_open(const char *name) { return event_make(MPS__SEG_OPEN, name); }

int mps_event_close(mps_event *e) { return mps__seg_free_handle(e); }

int mps_event_set(mps_event *e)
{
  if (!mps__seg_live(e))
    return -EINVAL;
  int r = mps__waitq_enter(&e->shm->wq, &e->shm->mu, &e->shm->hdr, &mps__forever);
  if (r < 0)
    return r;
  /* Wake first, holding the mutex: see wait.c on a waker that dies. */
  mps__waitq_wake(&e->shm->wq, INT32_MAX);
  mps__stat_inc(&e->shm->hdr, MPS__ST_WAKEUPS);
  atomic_store(&e->shm->flag, 1);
  atomic_fetch_add(&e->shm->gen, 1);
  mps__mutex_unlock(&e->shm->mu);
  return 0;
}

int mps_event_clear(mps_event *e)
{
  if (!mps__seg_live(e))
    return -EINVAL;
  int r = mps__waitq_enter(&e->shm->wq, &e->shm->mu, &e->shm->hdr, &mps__forever);
  if (r < 0)
    return r;
  atomic_store(&e->shm->flag, 0);
  mps__mutex_unlock(&e->shm->mu);
  return 0;
}

bool mps_event_is_set(const mps_event *e)
{
  return mps__seg_live(e) && atomic_load(&e->shm->flag) != 0;
}

int mps_event_wait(mps_event *e, double timeout)
{
  mps__deadline d;
  if (!mps__seg_live(e))
    return -EINVAL;
  int r = mps__deadline_init(&d, timeout);
  if (r < 0)
    return r;
  struct event_shm *shm = e->shm;
  /* A set flag needs no lock: a stopped process inside a call on this
   * event must not delay a waiter that would return at once. */
  if (atomic_load(&shm->flag) != 0)
    return 0;
  if ((r = mps__waitq_enter(&shm->wq, &shm->mu, &shm->hdr, &d)) < 0) {
    if (atomic_load(&shm->flag) != 0)
      return 0;
    mps__stat_inc(&shm->hdr, MPS__ST_TIMEOUTS);
    return r;
  }
  uint32_t gen = atomic_load(&shm->gen);
  bool held = true;
  if (atomic_load(&shm->flag) == 0)
    mps__stat_inc(&shm->hdr, MPS__ST_WAITS);
  while (atomic_load(&shm->flag) == 0 && atomic_load(&shm->gen) == gen && r >= 0) {
    r = mps__waitq_wait(&shm->wq, &shm->mu, &d, &shm->hdr, &held);
    if (!held) { /* the flag is a single word: one last look without the lock */
      if (atomic_load(&shm->flag) != 0 || atomic_load(&shm->gen) != gen)
        return 0;
      mps__stat_inc(&shm->hdr, MPS__ST_TIMEOUTS);
      return r;
    }
    if (r == MPS_OWNER_DIED)
      r = 0;
  }
  if (atomic_load(&shm->flag) != 0 || atomic_load(&shm->gen) != gen)
    r = 0;
  if (r < 0)
    mps__stat_inc(&shm->hdr, MPS__ST_TIMEOUTS);
  mps__mutex_unlock(&shm->mu);
  return r;
}

/* ---- inspection ----------------------------------------------------------- */

static int event_describe(const void *copy, size_t size, mps_object_info *info)
{
  if (event_validate(copy, size) < 0)
    return -EPROTO;
  mps__info_bool(info, "set", atomic_load(&((const struct event_shm *)copy)->flag) != 0);
  return 0;
}

const struct mps__kind_view mps__event_view = {MPS__KIND_EVENT,  "event",
                                               EVENT_LAYOUT,     sizeof(struct event_shm),
                                               MPS__FAMILY_WAIT, event_describe};
