/* Semaphore and BoundedSemaphore: a counter in shared memory.
 *
 * Shared layout: the segment header, then struct sem_shm: a robust mutex
 * guarding the count, a wait queue (wait.c) that acquirers sleep on, the
 * count, and for a bounded semaphore its bound (the initial value). Both
 * kinds are one segment kind; `bounded` tells them apart.
 *
 * Crash semantics: the count changes by one store under the mutex, so a
 * process killed anywhere leaves it either taken or not, never half done. A
 * process that dies holding a unit does not give it back (POSIX and Python
 * behave the same). release wakes every sleeper rather than one: a single
 * woken sleeper that is killed before it takes the unit would otherwise
 * leave the others asleep next to a free unit. The losers recheck and sleep
 * again. release wakes the sleepers before it stores the new count, while
 * it holds the mutex, so a releaser killed in between leaves the woken
 * sleepers waiting for the robust mutex, not asleep next to a free unit
 * (wait.c).
 */
#include "config.h"

#include "inspect.h"
#include "stats.h"

/* Shared: its size and key offsets are folded into SEM_LAYOUT. */
struct sem_shm {
  struct mps__hdr hdr;
  mps__mutex mu;
  mps__waitq wq;
  _Atomic uint32_t value;
  uint32_t bounded; /* 0 or 1 */
  uint32_t bound;   /* bounded only: the largest value release may reach */
};

/* Layout word: struct sem_shm. */
#define SEM_LAYOUT                                                                                 \
  MPS__FOLD4(MPS__LAYOUT, sizeof(struct sem_shm), offsetof(struct sem_shm, wq),                    \
             offsetof(struct sem_shm, value), offsetof(struct sem_shm, bound))

struct mps_semaphore {
  mps__seg seg;
  struct sem_shm *shm;
};

MPS__SEG_HANDLE(struct mps_semaphore);

struct sem_start {
  unsigned value;
  bool bounded;
};

static int sem_init(void *p, const void *arg)
{
  struct sem_shm *shm = p;
  const struct sem_start *st = arg;
  atomic_store(&shm->value, st->value);
  shm->bounded = st->bounded;
  shm->bound = st->bounded ? st->value : MPS_SEMAPHORE_MAX;
  return mps__mutex_init(&shm->mu, false);
}

/* A named segment is trusted only if its numbers make sense. */
static int sem_validate(const void *p, size_t size)
{
  const struct sem_shm *shm = p;
  uint32_t v = atomic_load(&shm->value);
  (void)size;
  if (shm->bounded > 1 || shm->bound > MPS_SEMAPHORE_MAX || v > shm->bound)
    return -EPROTO;
  return mps__mutex_check(&shm->mu, false);
}

static mps_semaphore *sem_make(enum mps__seg_mode mode, const char *name, unsigned value,
                               bool bounded)
{
  if (mode != MPS__SEG_OPEN && value > MPS_SEMAPHORE_MAX)
    return mps__fail(-EINVAL);
  struct sem_start st = {value, bounded};
  mps__seg_spec spec = {MPS__KIND_SEMAPHORE, sizeof(struct sem_shm), sem_init, sem_validate, &st,
                        SEM_LAYOUT};
  mps_semaphore *s = mps__seg_object(sizeof(*s), mode, name, &spec);
  if (s != NULL)
    s->shm = (struct sem_shm *)s->seg.hdr;
  return s;
}

mps_semaphore *mps_semaphore_new(unsigned value)
{
  return sem_make(MPS__SEG_ANON, NULL, value, false);
}

mps_semaphore *mps_bounded_semaphore_new(unsigned value)
{
  return sem_make(MPS__SEG_ANON, NULL, value, true);
}

mps_semaphore *mps_semaphore_create(const char *name, unsigned value)
{
  return sem_make(MPS__SEG_CREATE, name, value, false);
}

mps_semaphore *mps_bounded_semaphore_create(const char *name, unsigned value)
{
  return sem_make(MPS__SEG_CREATE, name, value, true);
}

mps_semaphore *mps_semaphore_open(const char *name)
{
  return sem_make(MPS__SEG_OPEN, name, 0, false);
}

int mps_semaphore_close(mps_semaphore *s) { return mps__seg_free_handle(s); }

int mps_semaphore_acquire(mps_semaphore *s, double timeout)
{
  mps__deadline d;
  if (!mps__seg_live(s))
    return -EINVAL;
  int r = mps__deadline_init(&d, timeout);
  if (r < 0)
    return r;
  struct sem_shm *shm = s->shm;
  if ((r = mps__waitq_enter(&shm->wq, &shm->mu, &shm->hdr, &d)) < 0) {
    mps__stat_inc(&shm->hdr, MPS__ST_TIMEOUTS);
    return r;
  }
  bool held = true;
  for (bool waited = false;; waited = true) {
    uint32_t v = atomic_load(&shm->value);
    if (v > 0) {
      atomic_store(&shm->value, v - 1);
      r = 0;
      break;
    }
    if (!waited)
      mps__stat_inc(&shm->hdr, MPS__ST_WAITS);
    if (r < 0) { /* timed out, and no unit came in the meantime */
      mps__stat_inc(&shm->hdr, MPS__ST_TIMEOUTS);
      break;
    }
    r = mps__waitq_wait(&shm->wq, &shm->mu, &d, &shm->hdr, &held);
    if (!held)
      return r;
    if (r == MPS_OWNER_DIED)
      r = 0;
  }
  mps__mutex_unlock(&shm->mu);
  return r;
}

int mps_semaphore_release(mps_semaphore *s)
{
  if (!mps__seg_live(s))
    return -EINVAL;
  struct sem_shm *shm = s->shm;
  int r = mps__waitq_enter(&shm->wq, &shm->mu, &shm->hdr, &mps__forever);
  if (r < 0)
    return r;
  uint32_t v = atomic_load(&shm->value);
  if (v >= shm->bound || v >= MPS_SEMAPHORE_MAX) {
    r = -EOVERFLOW;
  } else {
    /* Wake first, holding the mutex: see wait.c on a waker that dies. */
    mps__waitq_wake(&shm->wq, INT32_MAX);
    mps__stat_inc(&shm->hdr, MPS__ST_WAKEUPS);
    atomic_store(&shm->value, v + 1);
  }
  mps__mutex_unlock(&shm->mu);
  return r;
}

int mps_semaphore_value(const mps_semaphore *s)
{
  return !mps__seg_live(s) ? -EINVAL : (int)atomic_load(&s->shm->value);
}

/* ---- inspection ----------------------------------------------------------- */

static int sem_describe(const void *copy, size_t size, mps_object_info *info)
{
  const struct sem_shm *shm = copy;
  if (sem_validate(copy, size) < 0)
    return -EPROTO;
  if (shm->bounded)
    info->kind = "bounded_semaphore";
  mps__info_num(info, "value", atomic_load(&shm->value));
  mps__info_num(info, "bound", shm->bound);
  return 0;
}

const struct mps__kind_view mps__semaphore_view = {MPS__KIND_SEMAPHORE, "semaphore",
                                                   SEM_LAYOUT,          sizeof(struct sem_shm),
                                                   MPS__FAMILY_WAIT,    sem_describe};
