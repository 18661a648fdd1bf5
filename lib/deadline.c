/* Timeouts as absolute deadlines on CLOCK_MONOTONIC, and every clock
 * computation of the library.
 *
 * A public timeout (double seconds, negative: forever, 0: once) is turned
 * into a deadline once per call; every wait inside the call uses the same
 * deadline, so retries after spurious wake-ups never extend it. Nothing
 * here is shared memory.
 */
#include "config.h"

#include <limits.h>
#include <math.h>

#include "internal.h"

#define NS_PER_S 1000000000L

/* Beyond this a timeout is as good as forever, and the arithmetic below
 * stays far from overflowing time_t. */
#define MPS__TIMEOUT_MAX (1e9)

const mps__deadline mps__forever = {.kind = MPS__FOREVER};
const mps__deadline mps__once = {.kind = MPS__ONCE};

static struct timespec now_ts(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts;
}

static void ts_add_ns(struct timespec *t, long ns)
{
  t->tv_nsec += ns % NS_PER_S;
  t->tv_sec += ns / NS_PER_S;
  if (t->tv_nsec >= NS_PER_S) {
    t->tv_sec++;
    t->tv_nsec -= NS_PER_S;
  }
}

static bool ts_before(const struct timespec *a, const struct timespec *b)
{
  return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

double mps__now(void)
{
  struct timespec ts = now_ts();
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int64_t mps__now_ns(void)
{
  struct timespec ts = now_ts();
  return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

int64_t mps__wall_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

void mps__monotonic_to_realtime(const struct timespec *mono, struct timespec *rt)
{
  struct timespec now = now_ts();
  clock_gettime(CLOCK_REALTIME, rt);
  long ns = (long)(mono->tv_sec - now.tv_sec) * NS_PER_S + (mono->tv_nsec - now.tv_nsec);
  if (ns > 0)
    ts_add_ns(rt, ns);
}

int mps__deadline_init(mps__deadline *d, double timeout)
{
  if (isnan(timeout))
    return -EINVAL;
  if (timeout < 0 || timeout > MPS__TIMEOUT_MAX) {
    d->kind = MPS__FOREVER;
    return 0;
  }
  if (timeout == 0) {
    d->kind = MPS__ONCE;
    return 0;
  }
  d->kind = MPS__TIMED;
  d->at = now_ts();
  double whole = floor(timeout);
  d->at.tv_sec += (time_t)whole;
  ts_add_ns(&d->at, (long)((timeout - whole) * 1e9));
  return 0;
}

bool mps__deadline_slice(const mps__deadline *d, long ns, mps__deadline *out)
{
  out->kind = MPS__TIMED;
  out->at = now_ts();
  ts_add_ns(&out->at, ns);
  if (d->kind != MPS__TIMED || ts_before(&out->at, &d->at))
    return false;
  out->at = d->at;
  return true;
}

bool mps__deadline_passed(const mps__deadline *d)
{
  if (d->kind != MPS__TIMED)
    return d->kind == MPS__ONCE;
  struct timespec now = now_ts();
  return !ts_before(&now, &d->at);
}

int mps__deadline_error(const mps__deadline *d)
{
  return d->kind == MPS__ONCE ? -EAGAIN : -ETIMEDOUT;
}

int mps__deadline_left(const mps__deadline *d, struct timespec *left)
{
  if (d->kind != MPS__TIMED) {
    *left = (struct timespec){0};
    return d->kind == MPS__ONCE ? -ETIMEDOUT : 0;
  }
  struct timespec now = now_ts();
  left->tv_sec = d->at.tv_sec - now.tv_sec;
  left->tv_nsec = d->at.tv_nsec - now.tv_nsec;
  if (left->tv_nsec < 0) {
    left->tv_sec--;
    left->tv_nsec += NS_PER_S;
  }
  return left->tv_sec < 0 ? -ETIMEDOUT : 0;
}

int mps__deadline_poll_ms(const mps__deadline *d)
{
  struct timespec left;
  if (d->kind == MPS__FOREVER)
    return -1;
  if (mps__deadline_left(d, &left) < 0)
    return 0;
  if (left.tv_sec >= INT_MAX / 1000 - 1)
    return INT_MAX;
  /* Rounded up: a poll that returns a little early would only loop. */
  return (int)(left.tv_sec * 1000 + (left.tv_nsec + 999999) / 1000000);
}
