/* libFuzzer target: inspecting or opening a forged segment never crashes.
 *
 * Each input becomes a named segment whose header is valid (magic, layout
 * words, the kind chosen by the first input byte, the real size), followed
 * by the input's bytes where the object's own fields are: mps_inspect must
 * describe it or refuse it with EPROTO, and the opener must refuse it with
 * EPROTO or accept it and then survive a few calls on it.
 * `make fuzz` builds it with clang; see CONTRIBUTING.md. With
 * MPS_FUZZ_INSPECT_ONLY set in the environment it checks mps_inspect only.
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "inspect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Each kind with its layout word (inspect.h). */
static const struct mps__kind_view *const views[] = {
    &mps__lock_view,      &mps__rlock_view, &mps__value_view, &mps__array_view,   &mps__shm_view,
    &mps__semaphore_view, &mps__event_view, &mps__cond_view,  &mps__barrier_view, &mps__queue_view,
};

static int forge(const char *name, const struct mps__kind_view *v, const uint8_t *body, size_t len)
{
  size_t size = sizeof(struct mps__hdr) + len;
  int fd = shm_open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
    return -1;
  struct mps__hdr h = {
      .layout = MPS__LAYOUT, .kind = v->kind, .size = size, .obj_layout = v->layout};
  atomic_init(&h.magic, MPS__MAGIC);
  int ok = pwrite(fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
           pwrite(fd, body, len, sizeof(h)) == (ssize_t)len;
  close(fd);
  return ok ? 0 : -1;
}

/* The name goes as soon as the object is open, so that a crash further on
 * leaves nothing in /dev/shm. */
#define OPEN(call) (opened = (call), shm_unlink(name), opened)

static void poke(enum mps__kind kind, const char *name)
{
  void *opened;
  char buf[64];
  switch (kind) {
  case MPS__KIND_LOCK: {
    mps_lock *l = OPEN(mps_lock_open(name));
    if (l != NULL && mps_lock_acquire(l, 0) >= 0)
      (void)mps_lock_release(l);
    mps_lock_close(l);
    break;
  }
  case MPS__KIND_VALUE: {
    mps_value *v = OPEN(mps_value_open(name));
    if (v != NULL)
      memset(mps_value_ptr(v), 0, mps_value_size(v));
    mps_value_close(v);
    break;
  }
  case MPS__KIND_ARRAY:
    mps_array_close(OPEN(mps_array_open(name)));
    break;
  case MPS__KIND_SHM:
    mps_shm_close(OPEN(mps_shm_open(name)));
    break;
  case MPS__KIND_SEMAPHORE: {
    mps_semaphore *s = OPEN(mps_semaphore_open(name));
    if (s != NULL && mps_semaphore_acquire(s, 0) == 0)
      (void)mps_semaphore_release(s);
    mps_semaphore_close(s);
    break;
  }
  case MPS__KIND_EVENT:
    mps_event_close(OPEN(mps_event_open(name)));
    break;
  case MPS__KIND_COND:
    mps_cond_close(OPEN(mps_cond_open(name)));
    break;
  case MPS__KIND_BARRIER: {
    mps_barrier *b = OPEN(mps_barrier_open(name));
    (void)mps_barrier_n_waiting(b);
    mps_barrier_close(b);
    break;
  }
  case MPS__KIND_QUEUE: {
    mps_queue *q = OPEN(mps_queue_open(name));
    if (q != NULL && mps_queue_get(q, buf, sizeof(buf), 0) >= 0)
      (void)mps_queue_put(q, buf, 1, 0);
    mps_queue_close(q);
    break;
  }
  default:
    mps_rlock_close(OPEN(mps_rlock_open(name)));
    break;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  const struct mps__kind_view *v = views[data[0] % (sizeof(views) / sizeof(views[0]))];
  char name[64];
  snprintf(name, sizeof(name), "/mps-fuzz-%d", (int)getpid());
  if (forge(name, v, data + 1, size - 1) == 0) {
    mps_object_info info;
    int err = mps_inspect(name, &info);
    if (err != 0 && err != -EPROTO)
      __builtin_trap();
    if (getenv("MPS_FUZZ_INSPECT_ONLY") == NULL)
      poke(v->kind, name);
  }
  shm_unlink(name);
  return 0;
}
