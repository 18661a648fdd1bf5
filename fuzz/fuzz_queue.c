/* libFuzzer target: Queue segments of every order. */
#include "fuzz_common.h"

/* The selector byte is the priority of a put and, with its top bit, asks
 * for a shutdown. */
static void drive_queue(const char *name)
{
  mps_queue *q = mps_queue_open(name);
  if (q != NULL) {
    size_t cap = mps_queue_maxsize(q), max = mps_queue_max_msg(q);
    FUZZ_CHECK(mps_queue_qsize(q) <= cap);
    static unsigned char buf[1 << 16];
    size_t lens[4];
    ssize_t g = mps_queue_get(q, buf, sizeof(buf), FUZZ_T);
    FUZZ_CHECK(g < 0 || (size_t)g <= max);
    int p = mps_queue_put(q, "fuzz", max < 4 ? max : 4, FUZZ_T);
    FUZZ_CHECK(p <= 0);
    mps_queue_put_prio(q, fuzz_sel, "p", max < 1 ? 0 : 1, 0);
    ssize_t k = mps_queue_get_many(q, buf, sizeof(buf), lens, 4, 0);
    FUZZ_CHECK(k <= 4);
    mps_queue_task_done(q);
    mps_queue_join(q, 0);
    if (fuzz_sel & 0x80)
      mps_queue_shutdown(q);
    mps_queue_empty(q);
    mps_queue_full(q);
    FUZZ_CHECK(mps_queue_close(q) == 0);
  }
}

static void (*const drivers[])(const char *) = {drive_queue};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  return fuzz_run(data, size, drivers, 1);
}
