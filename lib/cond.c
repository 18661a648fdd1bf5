/* Condition: a condition variable over a robust lock, between processes.
 *
 * Shared layout: the segment header, then struct cond_shm: the condition's
 * own mutex (used when it has no borrowed lock), the next waiter ticket, a
 * high-water mark of used slots, and MPS_COND_MAX_WAITERS waiter slots.
 * Each slot has a robust mutex, a state word (FREE, WAITING, SIGNALED) and
 * the ticket of its waiter. Everything but the slot mutexes is guarded by
 * the condition's lock, which every caller of wait and notify holds.
 *
 * A waiter takes a free slot by locking its mutex, which it keeps until it
 * leaves wait; it marks the slot WAITING with the next ticket and sleeps on
 * the state word (wait.c). notify(n) marks the n oldest WAITING slots
 * SIGNALED and wakes each one's sleeper, so exactly those waiters return,
 * and nobody who starts waiting later can take their notification.
 *
 * Crash semantics: a waiter killed while waiting still holds its slot
 * mutex, so the kernel marks that mutex owner-died. notify tries each slot
 * it is about to signal: a slot whose owner died is freed and skipped, and
 * the notification goes to the next live waiter instead. A waiter killed
 * after being signalled counts as woken. Slots of dead waiters are also
 * reclaimed by the next waiter that needs a slot. The lock itself follows
 * the MPS_OWNER_DIED rule, also when wait reacquires it.
 */
#include "config.h"

#include <linux/futex.h>
#include <unistd.h>

#include "inspect.h"
#include "stats.h"

enum { SLOT_FREE, SLOT_WAITING, SLOT_SIGNALED };

/* Shared: its size and key offsets are folded into COND_LAYOUT. */
struct cond_slot {
  mps__mutex mu;
  _Atomic uint32_t state;
  uint32_t pad_;
  uint64_t ticket;
};

/* Shared: its size and key offsets are folded into COND_LAYOUT. */
struct cond_shm {
  struct mps__hdr hdr;
  mps__mutex mu;
  uint64_t next_ticket;
  uint32_t hi;       /* slots [hi, MAX) have never been used */
  uint32_t own_lock; /* OWN_NONE (borrowed), OWN_LOCK or OWN_RLOCK */
  struct cond_slot slots[MPS_COND_MAX_WAITERS];
};

enum { OWN_NONE, OWN_LOCK, OWN_RLOCK };

/* Layout word: struct cond_shm and its slots. */
#define COND_LAYOUT                                                                                \
  MPS__FOLD6(MPS__LAYOUT, sizeof(struct cond_shm), offsetof(struct cond_shm, next_ticket),         \
             offsetof(struct cond_shm, own_lock), offsetof(struct cond_shm, slots),                \
             sizeof(struct cond_slot), offsetof(struct cond_slot, ticket))

struct mps_cond {
  mps__seg seg;
  struct cond_shm *shm;
  mps__mutex *mu; /* the condition's lock, here or in another segment */
  bool recursive; /* mu is an RLock's: wait releases every level */
};

MPS__SEG_HANDLE(struct mps_cond);

static int cond_init(void *p, const void *own_lock)
{
  struct cond_shm *shm = p;
  shm->own_lock = *(const uint32_t *)own_lock;
  int err = shm->own_lock != OWN_NONE ? mps__mutex_init(&shm->mu, shm->own_lock == OWN_RLOCK) : 0;
  for (int i = 0; err == 0 && i < MPS_COND_MAX_WAITERS; i++)
    err = mps__mutex_init(&shm->slots[i].mu, false);
  return err;
}

/* Only a condition with its own lock can be named. */
static int cond_validate(const void *p, size_t size)
{
  const struct cond_shm *shm = p;
  (void)size;
  /* Every mutex in it must be one glibc can take. */
  int err = shm->own_lock != OWN_LOCK ? -EPROTO : mps__mutex_check(&shm->mu, false);
  for (int i = 0; err == 0 && i < MPS_COND_MAX_WAITERS; i++)
    err = mps__mutex_check(&shm->slots[i].mu, false);
  return err;
}

/* lock: a borrowed Lock's or RLock's mutex, or NULL for one of the
 * condition's own (recursive or not). */
static mps_cond *cond_make(enum mps__seg_mode mode, const char *name, mps__mutex *lock,
                           bool recursive)
{
  uint32_t own_lock = lock != NULL ? OWN_NONE : recursive ? OWN_RLOCK : OWN_LOCK;
  mps__seg_spec spec = {
      MPS__KIND_COND, sizeof(struct cond_shm), cond_init, cond_validate, &own_lock, COND_LAYOUT};
  mps_cond *c = mps__seg_object(sizeof(*c), mode, name, &spec);
  if (c == NULL)
    return NULL;
  c->shm = (struct cond_shm *)c->seg.hdr;
  c->mu = lock == NULL ? &c->shm->mu : lock;
  c->recursive = recursive;
  return c;
}

mps_cond *mps_cond_new(mps_lock *lock)
{
  if (lock != NULL && !mps__seg_live(lock))
    return mps__fail(-EINVAL);
  return cond_make(MPS__SEG_ANON, NULL, lock ? lock->mu : NULL, false);
}

/* An RLock handle is a Lock handle with another C type (lock.c). */
mps_cond *mps_cond_new_rlock(mps_rlock *lock)
{
  if (lock != NULL && !mps__seg_live(lock))
    return mps__fail(-EINVAL);
  return cond_make(MPS__SEG_ANON, NULL, lock ? ((mps_lock *)lock)->mu : NULL, true);
}

mps_cond *mps_cond_create(const char *name)
{
  return cond_make(MPS__SEG_CREATE, name, NULL, false);
}
mps_cond *mps_cond_open(const char *name) { return cond_make(MPS__SEG_OPEN, name, NULL, false); }

int mps_cond_close(mps_cond *c) { return mps__seg_free_handle(c); }

int mps_cond_acquire(mps_cond *c, double timeout)
{
  mps__deadline d;
  if (!mps__seg_live(c))
    return -EINVAL;
  int err = mps__deadline_init(&d, timeout);
  err = err < 0 ? err : mps__mutex_lock(c->mu, &d);
  if (err == MPS_OWNER_DIED)
    mps__stat_recovered(&c->shm->hdr, MPS__REPAIR_LOCK);
  return err;
}

int mps_cond_release(mps_cond *c) { return !mps__seg_live(c) ? -EINVAL : mps__mutex_unlock(c->mu); }

static uint32_t slots_used(const struct cond_shm *shm)
{
  return shm->hi < MPS_COND_MAX_WAITERS ? shm->hi : MPS_COND_MAX_WAITERS;
}

/* Takes slot s's mutex if nobody alive holds it. */
static bool slot_take(struct cond_shm *shm, struct cond_slot *s)
{
  int r = mps__mutex_trylock(&s->mu); /* a damaged slot is never taken */
  if (r == MPS_OWNER_DIED)            /* its waiter died; the slot is free again */
    mps__stat_recovered(&shm->hdr, MPS__REPAIR_COND_SLOT);
  return r >= 0;
}

/* A free slot, now ours, or NULL. Caller holds the condition's lock. */
static struct cond_slot *slot_claim(struct cond_shm *shm)
{
  for (uint32_t i = 0; i < MPS_COND_MAX_WAITERS; i++) {
    struct cond_slot *s = &shm->slots[i];
    if (!slot_take(shm, s))
      continue;
    if (i >= shm->hi)
      shm->hi = i + 1;
    s->ticket = shm->next_ticket++;
    atomic_store(&s->state, SLOT_WAITING);
    return s;
  }
  return NULL;
}

static void slot_free(struct cond_slot *s)
{
  atomic_store(&s->state, SLOT_FREE);
  mps__mutex_unlock(&s->mu);
}

/* A WAITING slot whose waiter is alive: its mutex is held by someone else.
 * Slots of dead waiters are freed on the way. */
static bool slot_alive(struct cond_shm *shm, struct cond_slot *s)
{
  if (!slot_take(shm, s))
    return true;
  slot_free(s);
  return false;
}

/* wait with the lock held and checked, on deadline d. */
static int wait_until(mps_cond *c, const mps__deadline *d)
{
  struct cond_slot *s = slot_claim(c->shm);
  /* A full table is not a lack of memory: the caller may retry once a
   * waiter leaves, so it gets its own code. */
  if (s == NULL)
    return -EUSERS;
  mps__stat_inc(&c->shm->hdr, MPS__ST_WAITS);
  bool died = false;
  int r = 0;
  /* An RLock is released completely while we sleep, as Python's Condition
   * does: the levels above one go here, the last in the wait itself, and
   * all come back before we return. We hold it, so neither step blocks. */
  unsigned extra = c->recursive ? mps__mutex_depth(c->mu) - 1 : 0;
  for (unsigned i = 0; i < extra; i++)
    (void)mps__mutex_unlock(c->mu);
  while (atomic_load(&s->state) == SLOT_WAITING && r >= 0) {
    r = mps__word_wait(&s->state, SLOT_WAITING, c->mu, d);
    if (r == MPS_OWNER_DIED) {
      died = true;
      r = 0;
    }
  }
  for (unsigned i = 0; i < extra; i++)
    (void)mps__mutex_lock(c->mu, &mps__forever);
  /* A timeout that raced with notify still counts as notified: notify has
   * already spent one of its n on us. */
  if (atomic_load(&s->state) == SLOT_SIGNALED)
    r = 0;
  slot_free(s);
  if (died)
    mps__stat_recovered(&c->shm->hdr, MPS__REPAIR_LOCK);
  else if (r < 0)
    mps__stat_inc(&c->shm->hdr, MPS__ST_TIMEOUTS);
  return died ? MPS_OWNER_DIED : r;
}

int mps_cond_wait(mps_cond *c, double timeout)
{
  mps__deadline d;
  if (!mps__seg_live(c))
    return -EINVAL;
  int r = mps__deadline_init(&d, timeout);
  if (r < 0)
    return r;
  return mps__mutex_held(c->mu) ? wait_until(c, &d) : -EPERM;
}

int mps_cond_wait_for(mps_cond *c, int (*pred)(void *), void *arg, double timeout)
{
  mps__deadline d;
  if (!mps__seg_live(c) || pred == NULL)
    return -EINVAL;
  int r = mps__deadline_init(&d, timeout);
  if (r < 0)
    return r;
  if (!mps__mutex_held(c->mu))
    return -EPERM;
  /* One deadline for all the waits, so spurious wake-ups never extend it. */
  while (!pred(arg)) {
    r = wait_until(c, &d);
    if (r == MPS_OWNER_DIED || r == -EUSERS)
      return r;
    if (r < 0)
      return pred(arg) ? 0 : r;
  }
  return 0;
}

/* The WAITING slot with the smallest ticket, or NULL. */
static struct cond_slot *oldest_waiter(struct cond_shm *shm)
{
  struct cond_slot *best = NULL;
  for (uint32_t i = 0; i < slots_used(shm); i++) {
    struct cond_slot *s = &shm->slots[i];
    if (atomic_load(&s->state) == SLOT_WAITING && (best == NULL || s->ticket < best->ticket))
      best = s;
  }
  return best;
}

/* Wake first, then mark: a waiter woken before the mark waits for the lock
 * we hold and finds the mark when it gets the lock, or, if we die before
 * marking, gets the lock with owner-died and no notification (wait.c). */
static void slot_signal(struct cond_slot *s)
{
  mps__futex_wake(&s->state, 1);
  atomic_store(&s->state, SLOT_SIGNALED);
}

int mps_cond_notify(mps_cond *c, unsigned n)
{
  if (!mps__seg_live(c))
    return -EINVAL;
  if (!mps__mutex_held(c->mu))
    return -EPERM;
  unsigned woken = 0;
  struct cond_slot *s;
  while (woken < n && (s = oldest_waiter(c->shm)) != NULL) {
    if (!slot_alive(c->shm, s))
      continue; /* freed: the next oldest gets this notification */
    slot_signal(s);
    woken++;
  }
  if (woken > 0)
    mps__stat_inc(&c->shm->hdr, MPS__ST_WAKEUPS);
  return (int)woken;
}

int mps_cond_notify_all(mps_cond *c)
{
  if (!mps__seg_live(c))
    return -EINVAL;
  if (!mps__mutex_held(c->mu))
    return -EPERM;
  int woken = 0;
  for (uint32_t i = 0; i < slots_used(c->shm); i++) {
    struct cond_slot *s = &c->shm->slots[i];
    if (atomic_load(&s->state) == SLOT_WAITING && slot_alive(c->shm, s)) {
      slot_signal(s);
      woken++;
    }
  }
  if (woken > 0)
    mps__stat_inc(&c->shm->hdr, MPS__ST_WAKEUPS);
  return woken;
}

/* ---- inspection ----------------------------------------------------------- */

/* Waiters are the WAITING slots; a dead waiter's slot counts until the
 * next notify or wait frees it (a copy cannot try its mutex). */
static int cond_describe(const void *copy, size_t size, mps_object_info *info)
{
  const struct cond_shm *shm = copy;
  if (cond_validate(copy, size) < 0)
    return -EPROTO;
  int64_t waiting = 0;
  for (uint32_t i = 0; i < slots_used(shm); i++)
    waiting += atomic_load(&shm->slots[i].state) == SLOT_WAITING;
  mps__info_num(info, "waiters", waiting);
  mps__info_mutex(info, &shm->mu);
  return 0;
}

const struct mps__kind_view mps__cond_view = {MPS__KIND_COND,   "condition",
                                              COND_LAYOUT,      sizeof(struct cond_shm),
                                              MPS__FAMILY_WAIT, cond_describe};
