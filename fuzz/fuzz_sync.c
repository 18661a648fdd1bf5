/* libFuzzer target: Semaphore, Event, Condition and Barrier segments. */
#include "fuzz_common.h"

static void drive_semaphore(const char *name)
{
  mps_semaphore *s = mps_semaphore_open(name);
  if (s == NULL)
    return;
  int v = mps_semaphore_value(s);
  FUZZ_CHECK(v >= 0 && v <= (int)MPS_SEMAPHORE_MAX);
  if (mps_semaphore_acquire(s, FUZZ_T) == 0)
    mps_semaphore_release(s);
  mps_semaphore_acquire(s, 0);
  mps_semaphore_release(s);
  FUZZ_CHECK(mps_semaphore_close(s) == 0);
}

static void drive_event(const char *name)
{
  mps_event *e = mps_event_open(name);
  if (e == NULL)
    return;
  bool was = mps_event_is_set(e);
  int r = mps_event_wait(e, FUZZ_T);
  FUZZ_CHECK(!was || r == 0 || r == -EPROTO);
  mps_event_set(e);
  mps_event_wait(e, 0);
  mps_event_clear(e);
  FUZZ_CHECK(mps_event_close(e) == 0);
}

static int never(void *arg)
{
  (void)arg;
  return 0;
}

static void drive_cond(const char *name)
{
  mps_cond *c = mps_cond_open(name);
  if (c == NULL)
    return;
  int r = mps_cond_acquire(c, FUZZ_T);
  if (r >= 0) {
    mps_cond_notify(c, 1);
    int w = mps_cond_wait(c, FUZZ_T);
    mps_cond_wait_for(c, never, NULL, 0);
    mps_cond_notify_all(c);
    if (w != -EPROTO)
      mps_cond_release(c);
  }
  FUZZ_CHECK(mps_cond_notify(c, 1) < 0); /* lock not held */
  FUZZ_CHECK(mps_cond_close(c) == 0);
}

static void drive_barrier(const char *name)
{
  mps_barrier *b = mps_barrier_open(name);
  if (b == NULL)
    return;
  int parties = mps_barrier_parties(b), n = mps_barrier_n_waiting(b);
  FUZZ_CHECK(parties > 0 && n >= 0 && n < parties);
  int r = mps_barrier_wait(b, FUZZ_T);
  FUZZ_CHECK(r < parties);
  mps_barrier_broken(b);
  mps_barrier_abort(b);
  mps_barrier_reset(b);
  mps_barrier_wait(b, 0);
  FUZZ_CHECK(mps_barrier_close(b) == 0);
}

static void (*const drivers[])(const char *) = {drive_semaphore, drive_event, drive_cond,
                                                drive_barrier};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  return fuzz_run(data, size, drivers, sizeof(drivers) / sizeof(drivers[0]));
}
