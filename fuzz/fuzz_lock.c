/* libFuzzer target: Lock, RLock, Value, Array and SharedMemory segments. */
#include "fuzz_common.h"

static void drive_lock(const char *name)
{
  mps_lock *l = mps_lock_open(name);
  if (l == NULL)
    return;
  for (int i = 0; i < 2; i++) {
    int r = mps_lock_acquire(l, i ? FUZZ_T : 0);
    FUZZ_CHECK(r == 0 || r == MPS_OWNER_DIED || r < 0);
    if (r >= 0)
      FUZZ_CHECK(mps_lock_release(l) == 0);
  }
  FUZZ_CHECK(mps_lock_release(l) < 0); /* not ours */
  FUZZ_CHECK(mps_lock_close(l) == 0);
}

static void drive_rlock(const char *name)
{
  mps_rlock *l = mps_rlock_open(name);
  if (l == NULL)
    return;
  int a = mps_rlock_acquire(l, FUZZ_T);
  int b = a >= 0 ? mps_rlock_acquire(l, 0) : -1;
  if (b >= 0)
    mps_rlock_release(l);
  if (a >= 0)
    mps_rlock_release(l);
  mps_rlock_release(l);
  FUZZ_CHECK(mps_rlock_close(l) == 0);
}

static void drive_lock_of(mps_lock *l)
{
  if (l == NULL)
    return;
  int r = mps_lock_acquire(l, FUZZ_T);
  if (r >= 0)
    FUZZ_CHECK(mps_lock_release(l) == 0);
}

static void drive_value(const char *name)
{
  mps_value *v = mps_value_open(name);
  if (v == NULL)
    return;
  fuzz_touch(mps_value_ptr(v), mps_value_size(v));
  drive_lock_of(mps_value_get_lock(v));
  mps_value_type(v);
  FUZZ_CHECK(mps_value_close(v) == 0);
}

static void drive_array(const char *name)
{
  mps_array *a = mps_array_open(name);
  if (a == NULL)
    return;
  size_t n = mps_array_len(a), elem = mps_type_size(mps_array_type(a));
  FUZZ_CHECK(elem > 0 && n > 0);
  fuzz_touch(mps_array_data(a), n * elem);
  drive_lock_of(mps_array_get_lock(a));
  FUZZ_CHECK(mps_array_close(a) == 0);
}

static void drive_shm(const char *name)
{
  mps_shm *s = mps_shm_open(name);
  if (s == NULL)
    return;
  fuzz_touch(mps_shm_data(s), mps_shm_size(s));
  FUZZ_CHECK(mps_shm_close(s) == 0);
}

static void (*const drivers[])(const char *) = {drive_lock, drive_rlock, drive_value, drive_array,
                                                drive_shm};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  return fuzz_run(data, size, drivers, sizeof(drivers) / sizeof(drivers[0]));
}
