/* FIFO queue crash points, walked one by one: a process is SIGKILLed at
 * each enumerated window of put, put_many, get, get_many, task_done,
 * shutdown and of the repair of a dead producer's claim (the crash points
 * of lib/queue_internal.h, compiled only into the test suite's copy of
 * the library), on its 1st, 2nd and 3rd hit, with capacities 1, 2 and 16.
 * After each kill the survivors drain the queue and check: no message
 * delivered twice, none torn, every message whose put returned delivered
 * in order, the holes counted exactly (claimed - delivered of the killed
 * call), join completes, and the queue still works. Every wait is
 * bounded, so a deadlock fails the case instead of hanging it. */
#include "helpers.h"

#include <stdatomic.h>
#include <stdint.h>

#include "queue_internal.h"
#include "stats.h"

#define MAX_MSG 40
#define MSGS    8 /* messages a producer victim tries to put */
#define BATCH   3 /* per put_many / get_many */
#define MAX_ID  64

struct shared {
  _Atomic uint64_t put_done; /* ids 0..put_done-1: their put returned */
  _Atomic uint64_t got_done; /* messages the victim consumer's gets returned */
  _Atomic uint8_t got[MAX_ID];
  _Atomic uint64_t last; /* consumer: last id + 1, to check FIFO order */
};

static mps_queue *q;
static struct shared *sh;
static mps_value *shv;
static const unsigned caps[] = {1, 2, 16};
static unsigned kills[MPS__CP_COUNT]; /* victims killed per window */

static size_t fill(unsigned char *buf, uint64_t id)
{
  size_t len = 8 + (size_t)(id * 7 % (MAX_MSG - 8));
  memcpy(buf, &id, 8);
  for (size_t i = 8; i < len; i++)
    buf[i] = (unsigned char)(id * 31 + i);
  return len;
}

/* The id of a well-formed message, or -1. */
static int check(const unsigned char *buf, ssize_t n)
{
  uint64_t id;
  unsigned char want[MAX_MSG];
  if (n < 8)
    return -1;
  memcpy(&id, buf, 8);
  if (id >= MAX_ID || (ssize_t)fill(want, id) != n || memcmp(want, buf, (size_t)n) != 0)
    return -1;
  return (int)id;
}

/* Records a delivered message; 0, or a nonzero reason for a child. */
static int record(const unsigned char *buf, ssize_t n)
{
  int id = check(buf, n);
  if (id < 0)
    return 3; /* torn */
  if (atomic_fetch_add(&sh->got[id], 1) != 0)
    return 4; /* twice */
  if ((uint64_t)id < atomic_load(&sh->last))
    return 5; /* out of order */
  atomic_store(&sh->last, (uint64_t)id + 1);
  return 0;
}

static void setup(unsigned cap)
{
  mps_queue_opts o = {.maxsize = cap, .max_msg = MAX_MSG, .order = MPS_FIFO};
  q = mps_queue_new(&o);
  cr_assert_not_null(q);
  shv = mps_value_new_sized(sizeof(struct shared), false);
  cr_assert_not_null(shv);
  sh = mps_value_ptr(shv);
}

static void teardown(void)
{
  mps_value_close(shv);
  mps_queue_close(q);
}

/* Runs fn in a child armed at (cp, hit); returns true if the crash point
 * killed it, false if it returned 0 without reaching it (asserted). */
struct victim {
  enum mps__crash cp;
  unsigned hit;
  int (*fn)(void *);
  void *arg;
};

static int victim_main(void *arg)
{
  struct victim *v = arg;
  mps__crash_arm(v->cp, v->hit);
  int r = v->fn(v->arg);
  return r == 0 ? 99 : r; /* 99: ran to the end without dying */
}

static bool run_victim(struct victim *v, const char *what)
{
  pid_t pid = child_run(victim_main, v);
  int status = child_wait(pid);
  if (WIFSIGNALED(status)) {
    cr_assert_eq(WTERMSIG(status), SIGKILL, "%s: signal %d", what, WTERMSIG(status));
    kills[v->cp]++;
    return true;
  }
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 99, "%s: victim failed, status 0x%x", what,
            status);
  return false;
}

static int put_ids(uint64_t from, uint64_t n, bool batch, double timeout)
{
  unsigned char buf[BATCH][MAX_MSG];
  const void *msgs[BATCH];
  size_t lens[BATCH];
  for (uint64_t id = from; id < from + n;) {
    size_t k = batch ? (size_t)(from + n - id < BATCH ? from + n - id : BATCH) : 1;
    for (size_t i = 0; i < k; i++) {
      lens[i] = fill(buf[i], id + i);
      msgs[i] = buf[i];
    }
    ssize_t r = batch ? mps_queue_put_many(q, msgs, lens, k, timeout)
                      : (ssize_t)(mps_queue_put(q, msgs[0], lens[0], timeout) == 0 ? 1 : -1);
    if (r <= 0)
      return 10;
    id += (uint64_t)r;
    atomic_store(&sh->put_done, id);
  }
  return 0;
}

/* Gets until the queue is empty for `idle` seconds or shut down; records
 * and marks each message done. */
static int drain(double idle, bool batch)
{
  unsigned char buf[BATCH * MAX_MSG];
  size_t lens[BATCH];
  for (;;) {
    ssize_t n = mps_queue_get_many(q, buf, sizeof(buf), lens, batch ? BATCH : 1, idle);
    if (n == -EPIPE || n == -ETIMEDOUT || n == -EAGAIN)
      return 0;
    if (n <= 0)
      return 10;
    size_t off = 0;
    for (ssize_t i = 0; i < n; off += lens[i++]) {
      int r = record(buf + off, (ssize_t)lens[i]);
      if (r != 0)
        return r;
      if (mps_queue_task_done(q) != 0)
        return 6;
    }
    atomic_fetch_add(&sh->got_done, (uint64_t)n);
  }
}

#define SENTINEL (MAX_ID - 1)

/* Gets until the sentinel message, which the parent puts once the victim
 * is dead, so that this consumer also passes whatever holes it left. */
static int consumer_main(void *arg)
{
  (void)arg;
  unsigned char buf[MAX_MSG];
  for (;;) {
    ssize_t n = mps_queue_get(q, buf, sizeof(buf), 10.0);
    if (check(buf, n) == SENTINEL)
      return mps_queue_task_done(q) == 0 ? 0 : 6;
    int r = n < 0 ? 10 : record(buf, n);
    if (r != 0 || mps_queue_task_done(q) != 0)
      return r ? r : 6;
    atomic_fetch_add(&sh->got_done, 1);
  }
}

/* What every case ends with: the queue drained, the holes exact, join
 * done, and the queue still moving messages. */
static void check_after(const char *what, uint64_t delivered_min, uint64_t skipped_want,
                        uint64_t lost)
{
  cr_assert_eq(drain(0, true), 0, "%s: drain", what);
  uint64_t tickets = mps__queue_tickets(q), delivered = 0;
  for (unsigned i = 0; i < MAX_ID; i++)
    delivered += atomic_load(&sh->got[i]);
  /* join completes, and leaves every hole counted (a repairer killed
   * with its redo record pending is finished by the next one). */
  cr_assert_eq(mps_queue_join(q, 5.0), 0, "%s: join", what);
  uint64_t skipped = mps__queue_skipped(q);
  cr_assert_geq(delivered, delivered_min, "%s: lost a message whose put returned", what);
  for (uint64_t i = 0; i < atomic_load(&sh->put_done); i++)
    cr_assert_eq(atomic_load(&sh->got[i]), 1, "%s: message %llu", what, (unsigned long long)i);
  if (skipped_want != UINT64_MAX)
    cr_assert_eq(skipped, skipped_want, "%s: %llu holes", what, (unsigned long long)skipped);
  cr_assert_eq(delivered + skipped + lost, tickets,
               "%s: %llu delivered + %llu holes + %llu lost != %llu claimed", what,
               (unsigned long long)delivered, (unsigned long long)skipped, (unsigned long long)lost,
               (unsigned long long)tickets);
  cr_assert(mps_queue_empty(q), "%s", what);
  unsigned char m[MAX_MSG], b[MAX_MSG];
  size_t len = fill(m, MAX_ID - 1);
  cr_assert_eq(mps_queue_put(q, m, len, 5.0), 0, "%s: put after", what);
  cr_assert_eq(mps_queue_get(q, b, sizeof(b), 5.0), (ssize_t)len, "%s: get after", what);
}

/* ---- producers killed in put / put_many --------------------------------- */

struct prod_arg {
  bool batch;
};

static int producer_victim(void *arg)
{
  return put_ids(0, MSGS, ((struct prod_arg *)arg)->batch, 5.0);
}

/* The holes a put killed at cp leaves, of the k tickets it claimed: all
 * of them before any is written, at least the first (published last)
 * once some are written, and none once the first is published. */
static void holes_for(enum mps__crash cp, uint64_t k, uint64_t *lo, uint64_t *hi)
{
  switch (cp) {
  case MPS__CP_PUT_CLAIMED:
    *lo = *hi = k;
    break;
  case MPS__CP_PUT_PAYLOAD:
    *lo = 1, *hi = k;
    break;
  case MPS__CP_PUT_PUBLISH:
    *lo = 1, *hi = k - 1;
    break;
  default:
    *lo = *hi = 0;
  }
}

static void producer_case(enum mps__crash cp, unsigned hit, unsigned cap, bool batch)
{
  char what[96];
  snprintf(what, sizeof(what), "window %d hit %u cap %u %s", cp, hit, cap,
           batch ? "put_many" : "put");
  setup(cap);
  pid_t cons = child_run(consumer_main, NULL);
  struct prod_arg pa = {batch};
  struct victim v = {cp, hit, producer_victim, &pa};
  bool killed = run_victim(&v, what);
  uint64_t done = atomic_load(&sh->put_done);
  uint64_t claimed = mps__queue_tickets(q) - done;
  unsigned char m[MAX_MSG];
  cr_assert_eq(mps_queue_put(q, m, fill(m, SENTINEL), 5.0), 0, "%s: sentinel", what);
  child_expect_exit(cons, 0);
  cr_assert_eq(mps__queue_tickets(q), done + claimed + 1, "%s", what);
  cr_assert_leq(claimed, batch ? BATCH : 1, "%s", what);
  if (killed && (cp == MPS__CP_PUT_TOKEN || cp == MPS__CP_PUT_INTENT))
    cr_assert_eq(claimed, 0, "%s: nothing claimed yet", what);
  uint64_t lo = 0, hi = 0;
  if (killed)
    holes_for(cp, claimed, &lo, &hi);
  /* The sentinel was delivered, not recorded: count it as "lost". The
   * exact number of holes is checked there: delivered + holes = claimed. */
  check_after(what, done, UINT64_MAX, 1);
  uint64_t holes = mps__queue_skipped(q);
  cr_assert(holes >= lo && holes <= hi, "%s: %llu holes of %llu claimed", what,
            (unsigned long long)holes, (unsigned long long)claimed);
  /* The live counters (stats.h) agree: each hole counted once, and each
   * repair that made holes is in the recovery ring. */
  struct mps__hdr *h = &q->s->hdr;
  cr_assert_eq(mps__stat_read(h, MPS__ST_HOLES, false), holes, "%s: holes counter", what);
  cr_assert_eq(atomic_load(&h->stats.recoveries) > 0, holes > 0, "%s: recovery ring", what);
  if (holes > 0)
    cr_assert_eq(h->stats.ring[0].what, MPS__REPAIR_QUEUE_HOLES, "%s", what);
  teardown();
}

static void walk_producer(enum mps__crash cp)
{
  for (unsigned c = 0; c < 3; c++)
    for (unsigned hit = 1; hit <= 3; hit++)
      for (int batch = 0; batch < 2; batch++)
        producer_case(cp, hit, caps[c], batch);
  cr_assert_gt(kills[cp], 0, "window %d never hit", cp);
}

Test(queue_crash, put_token, .timeout = 60) { walk_producer(MPS__CP_PUT_TOKEN); }
Test(queue_crash, put_intent, .timeout = 60) { walk_producer(MPS__CP_PUT_INTENT); }
Test(queue_crash, put_claimed, .timeout = 60) { walk_producer(MPS__CP_PUT_CLAIMED); }
Test(queue_crash, put_mid_payload, .timeout = 60) { walk_producer(MPS__CP_PUT_PAYLOAD); }
Test(queue_crash, put_part_published, .timeout = 60) { walk_producer(MPS__CP_PUT_PUBLISH); }
Test(queue_crash, put_before_wake, .timeout = 60) { walk_producer(MPS__CP_PUT_WAKE); }
Test(queue_crash, put_before_clear, .timeout = 60) { walk_producer(MPS__CP_PUT_CLEAR); }

/* ---- consumers killed in get / get_many ---------------------------------- */

struct cons_arg {
  bool batch;
};

static int consumer_victim(void *arg) { return drain(0, ((struct cons_arg *)arg)->batch); }

static void consumer_case(enum mps__crash cp, unsigned hit, unsigned cap, bool batch)
{
  char what[96];
  snprintf(what, sizeof(what), "window %d hit %u cap %u %s", cp, hit, cap,
           batch ? "get_many" : "get");
  setup(cap);
  uint64_t n = cap < MSGS ? cap : MSGS;
  cr_assert_eq(put_ids(0, n, true, 0), 0);
  struct cons_arg ca = {batch};
  struct victim v = {cp, hit, consumer_victim, &ca};
  bool killed = run_victim(&v, what);
  atomic_store(&sh->put_done, 0); /* the victim's losses are checked here */
  cr_assert_eq(drain(0, true), 0, "%s", what);
  uint64_t delivered = 0;
  for (unsigned i = 0; i < MAX_ID; i++)
    delivered += atomic_load(&sh->got[i]);
  uint64_t lost = n - delivered;
  if (!killed || cp == MPS__CP_GET_COPIED)
    cr_assert_eq(lost, 0, "%s: %llu lost before the commit", what, (unsigned long long)lost);
  else
    cr_assert_leq(lost, batch ? BATCH : 1, "%s: %llu lost", what, (unsigned long long)lost);
  /* The lost ones were taken: mark them done for join. */
  for (uint64_t i = 0; i < lost; i++)
    cr_assert_eq(mps_queue_task_done(q), 0);
  check_after(what, 0, 0, lost);
  teardown();
}

static void walk_consumer(enum mps__crash cp)
{
  for (unsigned c = 0; c < 3; c++)
    for (unsigned hit = 1; hit <= 3; hit++)
      for (int batch = 0; batch < 2; batch++)
        consumer_case(cp, hit, caps[c], batch);
  cr_assert_gt(kills[cp], 0, "window %d never hit", cp);
}

Test(queue_crash, get_copied, .timeout = 60) { walk_consumer(MPS__CP_GET_COPIED); }
Test(queue_crash, get_committed, .timeout = 60) { walk_consumer(MPS__CP_GET_COMMITTED); }

/* ---- sleepers killed with their mark set --------------------------------- */

static int sleeping_getter(void *arg)
{
  (void)arg;
  unsigned char b[MAX_MSG];
  return mps_queue_get(q, b, sizeof(b), 10.0) == -ETIMEDOUT ? 0 : 1; /* killed asleep */
}

static int sleeping_putter(void *arg)
{
  (void)arg;
  return put_ids(MAX_ID - 2, 1, false, 10.0);
}

static int getter_expect_one(void *arg)
{
  (void)arg;
  unsigned char b[MAX_MSG];
  return record(b, mps_queue_get(q, b, sizeof(b), 5.0));
}

Test(queue_crash, sleepers_killed, .timeout = 60)
{
  for (unsigned c = 0; c < 3; c++) {
    char what[64];
    snprintf(what, sizeof(what), "getter asleep, cap %u", caps[c]);
    setup(caps[c]);
    struct victim v = {MPS__CP_GET_SLEEP, 1, sleeping_getter, NULL};
    cr_assert(run_victim(&v, what), "%s: never slept", what);
    pid_t g = child_run(getter_expect_one, NULL);
    cr_assert_eq(put_ids(0, 1, false, 5.0), 0);
    child_expect_exit(g, 0);
    cr_assert_eq(mps_queue_task_done(q), 0);
    check_after(what, 1, 0, 0);
    teardown();

    snprintf(what, sizeof(what), "putter asleep, cap %u", caps[c]);
    setup(caps[c]);
    cr_assert_eq(put_ids(0, caps[c], true, 0), 0);
    struct victim p = {MPS__CP_PUT_SLEEP, 1, sleeping_putter, NULL};
    cr_assert(run_victim(&p, what), "%s: never slept", what);
    cr_assert_eq(mps__queue_tickets(q), caps[c], "%s: the sleeper claimed nothing", what);
    check_after(what, caps[c], 0, 0);
    teardown();
  }
}

/* ---- task_done ------------------------------------------------------------ */

static int joiner(void *arg)
{
  (void)arg;
  return mps_queue_join(q, 10.0) == 0 ? 0 : 1;
}

static int task_done_victim(void *arg)
{
  unsigned n = *(unsigned *)arg;
  for (unsigned i = 0; i < n; i++)
    if (mps_queue_task_done(q) != 0)
      return 1;
  return 0;
}

Test(queue_crash, task_done, .timeout = 60)
{
  enum mps__crash cps[] = {MPS__CP_DONE_BEFORE, MPS__CP_DONE_AFTER};
  for (unsigned c = 0; c < 3; c++)
    for (unsigned w = 0; w < 2; w++)
      for (unsigned hit = 1; hit <= 3; hit++) {
        char what[64];
        snprintf(what, sizeof(what), "window %d hit %u cap %u", cps[w], hit, caps[c]);
        setup(caps[c]);
        unsigned n = caps[c];
        cr_assert_eq(put_ids(0, n, true, 0), 0);
        unsigned char b[16 * MAX_MSG];
        size_t lens[16];
        cr_assert_eq(mps_queue_get_many(q, b, sizeof(b), lens, 16, 0), (ssize_t)n);
        pid_t j = child_run(joiner, NULL);
        struct victim v = {cps[w], hit, task_done_victim, &n};
        bool killed = run_victim(&v, what);
        unsigned done = !killed ? n : cps[w] == MPS__CP_DONE_BEFORE ? hit - 1 : hit;
        for (unsigned i = done; i < n; i++)
          cr_assert_eq(mps_queue_task_done(q), 0, "%s: task_done %u", what, i);
        cr_assert_eq(mps_queue_task_done(q), -EINVAL, "%s: counted exactly", what);
        child_expect_exit(j, 0);
        cr_assert_eq(mps_queue_join(q, 0), 0);
        teardown();
      }
  cr_assert_gt(kills[MPS__CP_DONE_BEFORE], 0);
  cr_assert_gt(kills[MPS__CP_DONE_AFTER], 0);
}

/* ---- shutdown -------------------------------------------------------------- */

static int shutdown_victim(void *arg)
{
  (void)arg;
  for (int i = 0; i < 3; i++)
    if (mps_queue_shutdown(q) != 0)
      return 1;
  return 0;
}

static int getter_until_pipe(void *arg)
{
  (void)arg;
  int r = drain(-1, false);
  return r != 0 ? r : mps_queue_put(q, "x", 1, 0) == -EPIPE ? 0 : 7;
}

Test(queue_crash, shutdown, .timeout = 60)
{
  enum mps__crash cps[] = {MPS__CP_SHUT_LOCKED, MPS__CP_SHUT_CLOSED};
  for (unsigned c = 0; c < 3; c++)
    for (unsigned w = 0; w < 2; w++)
      for (unsigned hit = 1; hit <= 3; hit++) {
        char what[64];
        snprintf(what, sizeof(what), "window %d hit %u cap %u", cps[w], hit, caps[c]);
        setup(caps[c]);
        cr_assert_eq(put_ids(0, 1, false, 0), 0);
        pid_t g = child_run(getter_until_pipe, NULL);
        struct victim v = {cps[w], hit, shutdown_victim, NULL};
        bool killed = run_victim(&v, what);
        /* Killed before the queue was closed (the first call's window),
         * shut it down again: the dead holder's mutex is recovered. */
        if (killed && cps[w] == MPS__CP_SHUT_LOCKED && hit == 1)
          cr_assert_eq(mps_queue_shutdown(q), 0, "%s", what);
        child_expect_exit(g, 0);
        cr_assert_eq(atomic_load(&sh->got[0]), 1, "%s: drained before -EPIPE", what);
        cr_assert_eq(mps_queue_put(q, "x", 1, 0), -EPIPE, "%s", what);
        cr_assert_eq(mps_queue_join(q, 5.0), 0, "%s", what);
        teardown();
      }
  cr_assert_gt(kills[MPS__CP_SHUT_LOCKED], 0);
  cr_assert_gt(kills[MPS__CP_SHUT_CLOSED], 0);
}

/* ---- the repair itself ------------------------------------------------------ */

/* A producer that claims up to two tickets and dies before publishing:
 * the holes the repair victim will be working on. */
static int hole_maker(void *arg)
{
  (void)arg;
  mps__crash_arm(MPS__CP_PUT_CLAIMED, 1);
  put_ids(0, 2, true, 5.0);
  return 99;
}

static int repair_by_get(void *arg)
{
  (void)arg;
  return drain(0, false);
}

/* A put that takes the dead token over (the first free one) and repairs
 * it itself; with the queue full of holes it may then find no room. */
static int repair_by_put(void *arg)
{
  (void)arg;
  unsigned char m[MAX_MSG];
  int r = mps_queue_put(q, m, fill(m, 2), 0);
  return r == 0 || r == -EAGAIN ? 0 : 1;
}

static void repair_case(enum mps__crash cp, unsigned hit, unsigned cap, bool by_put)
{
  char what[96];
  snprintf(what, sizeof(what), "window %d hit %u cap %u, repaired by a %s", cp, hit, cap,
           by_put ? "put" : "get");
  setup(cap);
  child_expect_signal(child_run(hole_maker, NULL), SIGKILL);
  uint64_t holes = mps__queue_tickets(q);
  cr_assert_eq(holes, cap < 2 ? cap : 2, "%s", what);
  struct victim v = {cp, hit, by_put ? repair_by_put : repair_by_get, NULL};
  run_victim(&v, what);
  /* Whatever the victim had done, the survivors finish the repair: a
   * redo record is applied again, a dead token repaired again. */
  check_after(what, 0, holes, 0);
  teardown();
}

static void walk_repair(enum mps__crash cp)
{
  for (unsigned c = 0; c < 3; c++)
    for (unsigned hit = 1; hit <= 3; hit++)
      for (int by_put = 0; by_put < 2; by_put++)
        repair_case(cp, hit, caps[c], by_put);
  cr_assert_gt(kills[cp], 0, "window %d never hit", cp);
}

Test(queue_crash, repair_token_taken, .timeout = 60) { walk_repair(MPS__CP_REPAIR_TOKEN); }
Test(queue_crash, repair_logged, .timeout = 60) { walk_repair(MPS__CP_REPAIR_LOGGED); }
Test(queue_crash, repair_hole_made, .timeout = 60) { walk_repair(MPS__CP_REPAIR_SKIPPED); }
Test(queue_crash, repair_counted, .timeout = 60) { walk_repair(MPS__CP_REPAIR_COUNTED); }
Test(queue_crash, repair_before_clear, .timeout = 60) { walk_repair(MPS__CP_REPAIR_CLEAR); }

/* ---- a dead producer's intent over a live producer's claim --------------- */

static int sync_up[2], sync_down[2];

/* Puts id 0 (taking the first token), lets the victim die, then claims
 * id 1 and stops itself before publishing it. */
static int stopping_claimer(void *arg)
{
  (void)arg;
  if (put_ids(0, 1, false, 5.0) != 0)
    return 1;
  pipe_put(sync_up[1]);
  pipe_get(sync_down[0]);
  mps__crash_arm_signal(MPS__CP_PUT_CLAIMED, 1, SIGSTOP);
  return put_ids(1, 1, false, 5.0);
}

static int intent_victim(void *arg)
{
  (void)arg;
  return put_ids(1, 1, false, 5.0);
}

/* The victim dies after storing its intent for ticket 1, before its CAS;
 * the live producer then claims ticket 1 and stops. The dead intent
 * covers ticket 1 too: a repair must see the live claim and wait for it,
 * never make its ticket a hole. */
Test(queue_crash, dead_intent_over_live_claim, .timeout = 60)
{
  for (unsigned c = 1; c < 3; c++) {
    char what[64];
    snprintf(what, sizeof(what), "cap %u", caps[c]);
    setup(caps[c]);
    cr_assert_eq(pipe(sync_up), 0);
    cr_assert_eq(pipe(sync_down), 0);
    pid_t p = child_run(stopping_claimer, NULL);
    pipe_get(sync_up[0]);
    struct victim v = {MPS__CP_PUT_INTENT, 1, intent_victim, NULL};
    cr_assert(run_victim(&v, what), "%s", what);
    pipe_put(sync_down[1]);
    int status;
    cr_assert_eq(waitpid(p, &status, WUNTRACED), p);
    cr_assert(WIFSTOPPED(status), "%s", what);
    unsigned char b[MAX_MSG];
    cr_assert_eq(record(b, mps_queue_get(q, b, sizeof(b), 5.0)), 0, "%s", what);
    cr_assert_eq(mps_queue_get(q, b, sizeof(b), 0.3), -ETIMEDOUT, "%s: waited for", what);
    cr_assert_eq(mps__queue_skipped(q), 0, "%s: a live claim made a hole", what);
    kill(p, SIGCONT);
    child_expect_exit(p, 0);
    cr_assert_eq(record(b, mps_queue_get(q, b, sizeof(b), 5.0)), 0, "%s", what);
    cr_assert_eq(atomic_load(&sh->got[1]), 1, "%s", what);
    for (int i = 0; i < 4; i++)
      close(i < 2 ? sync_up[i] : sync_down[i - 2]);
    cr_assert_eq(mps_queue_task_done(q), 0);
    cr_assert_eq(mps_queue_task_done(q), 0);
    check_after(what, 2, 0, 0);
    teardown();
  }
}

/* ---- a repairer stopped while it holds the mutex ------------------------- */

static int stopping_repairer(void *arg)
{
  (void)arg;
  mps__crash_arm_signal(MPS__CP_REPAIR_LOGGED, 1, SIGSTOP);
  return drain(0, false);
}

/* A timed get that needs the mutex held by a stopped repairer gives up at
 * its deadline instead of waiting for the repairer to run again. */
Test(queue_crash, stopped_repairer_does_not_stretch_a_timeout, .timeout = 30)
{
  setup(4);
  child_expect_signal(child_run(hole_maker, NULL), SIGKILL);
  pid_t r = child_run(stopping_repairer, NULL);
  int status;
  cr_assert_eq(waitpid(r, &status, WUNTRACED), r);
  cr_assert(WIFSTOPPED(status), "stopped inside the repair");
  unsigned char b[MAX_MSG];
  double t0 = test_now();
  cr_assert_eq(mps_queue_get(q, b, sizeof(b), 0.2), -ETIMEDOUT);
  double took = test_now() - t0;
  cr_assert(took >= 0.2 && took < 2.0, "took %.3f s", took);
  cr_assert_eq(mps_queue_get(q, b, sizeof(b), 0), -EAGAIN);
  kill(r, SIGCONT);
  child_expect_exit(r, 0);
  check_after("stopped repairer", 0, 2, 0);
  teardown();
}
