/* Timeouts as absolute deadlines on CLOCK_MONOTONIC.
 *
 * A public timeout (double seconds, negative: forever, 0: once) is turned
 * into a deadline once per call; every wait inside the call uses the same
 * deadline, so retries after spurious wake-ups never extend it.
 */
#include "config.h"

#include <limits.h>
#include <math.h>

#include "internal.h"

/* Beyond this a timeout is as good as forever, and the arithmetic below
 * stays far from overflowing time_t. */
#define MPS__TIMEOUT_MAX (1e9)

double mps__now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
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
  clock_gettime(CLOCK_MONOTONIC, &d->at);
  double whole = floor(timeout);
  d->at.tv_sec += (time_t)whole;
  d->at.tv_nsec += (long)((timeout - whole) * 1e9);
  if (d->at.tv_nsec >= 1000000000L) {
    d->at.tv_sec++;
    d->at.tv_nsec -= 1000000000L;
  }
  return 0;
}

void mps__deadline_slice(const mps__deadline *d, long ns, mps__deadline *out)
{
  out->kind = MPS__TIMED;
  clock_gettime(CLOCK_MONOTONIC, &out->at);
  out->at.tv_nsec += ns;
  while (out->at.tv_nsec >= 1000000000L) {
    out->at.tv_sec++;
    out->at.tv_nsec -= 1000000000L;
  }
  if (d->kind == MPS__TIMED && (d->at.tv_sec < out->at.tv_sec || (d->at.tv_sec == out->at.tv_sec &&
                                                                  d->at.tv_nsec < out->at.tv_nsec)))
    out->at = d->at;
}

bool mps__deadline_passed(const mps__deadline *d)
{
  if (d->kind != MPS__TIMED)
    return d->kind == MPS__ONCE;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec > d->at.tv_sec || (now.tv_sec == d->at.tv_sec && now.tv_nsec >= d->at.tv_nsec);
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
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  left->tv_sec = d->at.tv_sec - now.tv_sec;
  left->tv_nsec = d->at.tv_nsec - now.tv_nsec;
  if (left->tv_nsec < 0) {
    left->tv_sec--;
    left->tv_nsec += 1000000000L;
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
