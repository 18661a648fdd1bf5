/* Test-only crash points: compiled only into the test suite's own copy of
 * the library (tests/libmpshare-crash.la, built with -DMPS_CRASHPOINTS),
 * never into the installed one.
 *
 * MPS__CRASHPOINT(id) marks one window of a queue call (the list is enum
 * mps__crash in queue_internal.h). A test arms one point in one process:
 * that process SIGKILLs itself on the point's n-th hit, so that every
 * window can be walked deterministically instead of hoping that a random
 * kill lands in it. A point can also raise another signal (SIGSTOP: a
 * producer stopped in a window). The state is process-local; other
 * processes of the test run the same code unarmed.
 */
#include "config.h"

#include <signal.h>
#include <unistd.h>

#include "queue_internal.h"

static _Atomic int armed = MPS__CP_NONE;
static _Atomic unsigned left;
static _Atomic int sig = SIGKILL;

void mps__crash_arm_signal(enum mps__crash id, unsigned hit, int signo)
{
  atomic_store(&sig, signo);
  atomic_store(&left, hit);
  atomic_store(&armed, hit > 0 ? (int)id : MPS__CP_NONE);
}

void mps__crash_arm(enum mps__crash id, unsigned hit) { mps__crash_arm_signal(id, hit, SIGKILL); }

void mps__crashpoint(enum mps__crash id)
{
  if (atomic_load_explicit(&armed, memory_order_relaxed) == (int)id &&
      atomic_fetch_sub(&left, 1) == 1)
    kill(getpid(), atomic_load(&sig));
}

uint64_t mps__queue_skipped(mps_queue *q) { return atomic_load(&q->s->ring.skipped); }

uint64_t mps__queue_tickets(mps_queue *q) { return mps__ring_tail(q); }
