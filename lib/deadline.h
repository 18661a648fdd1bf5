/* Timeouts and every clock computation of lib/ (deadline.c), private. */
#ifndef MPSHARE_DEADLINE_H
#define MPSHARE_DEADLINE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

enum mps__deadline_kind { MPS__FOREVER, MPS__ONCE, MPS__TIMED };

/* A timeout turned into an absolute point on CLOCK_MONOTONIC, once, at the
 * start of a call, so that retries inside the call do not extend it. */
typedef struct mps__deadline {
  enum mps__deadline_kind kind;
  struct timespec at; /* MPS__TIMED only */
} mps__deadline;

/* For calls that take no timeout, and for one try. */
extern const mps__deadline mps__forever;
extern const mps__deadline mps__once;

/* 0, or -EINVAL for NaN. */
int mps__deadline_init(mps__deadline *d, double timeout);
bool mps__deadline_passed(const mps__deadline *d);
/* The error for "gave up waiting": -EAGAIN for timeout 0, else -ETIMEDOUT. */
int mps__deadline_error(const mps__deadline *d);
/* Seconds on CLOCK_MONOTONIC. */
double mps__now(void);
/* Nanoseconds on CLOCK_MONOTONIC, for spinners' budgets. */
int64_t mps__now_ns(void);
/* Nanoseconds since the epoch on CLOCK_REALTIME, for the times a segment
 * records for people (creation, crash recoveries), never for waiting. */
int64_t mps__wall_ns(void);
/* The earlier of d and ns nanoseconds from now, as a timed deadline: one
 * bounded slice of a longer sleep. True if it is d's own end (the last
 * slice); never for MPS__FOREVER. */
bool mps__deadline_slice(const mps__deadline *d, long ns, mps__deadline *out);
/* The time left before d (TIMED), for ppoll(): 0, or -ETIMEDOUT once it
 * has passed (ONCE: always passed; FOREVER: 0 with *left zero). */
int mps__deadline_left(const mps__deadline *d, struct timespec *left);
/* The time left before d in poll()'s milliseconds, rounded up: -1 for
 * FOREVER, 0 once passed. */
int mps__deadline_poll_ms(const mps__deadline *d);
/* The CLOCK_REALTIME time that is now as far away as `mono` on
 * CLOCK_MONOTONIC, for calls that only take the former. */
void mps__monotonic_to_realtime(const struct timespec *mono, struct timespec *rt);

#endif
