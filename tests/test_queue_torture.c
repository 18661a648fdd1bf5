/* Queue crash consistency: producers and consumers are SIGKILLed at random
 * moments, hundreds of times, and replaced while messages flow. Afterwards
 * no message was delivered twice or torn, none is missing beyond the one
 * each killed process may have had in hand, and the queue still works.
 * A deadlock shows as a round in which not one message is delivered for
 * STALL_S seconds (wait_progress). */
#include "helpers.h"

#include <stdatomic.h>
#include <stdint.h>

#define MAXPROC 4 /* producers, and consumers, at most */
#define MAX_MSG 1024
#define MAX_IDS (1u << 24)
/* Producers take no id past this one: they wait for the stop instead, so
 * that a fast queue on a slow-to-fork machine never runs out of ids. */
#define ID_LIMIT (MAX_IDS - 4096)
#define PROGRESS 40 /* deliveries required between two kills */
/* A deadlock: no single delivery for this long. Each delivery restarts the
 * clock, so a slow machine only has to deliver one message in this time,
 * not PROGRESS of them: a run once took 10 s for PROGRESS at load 34. */
#define STALL_S 30.0

struct shared {
  _Atomic uint64_t next_id;   /* ids handed to producers */
  _Atomic uint64_t delivered; /* gets that returned a message */
  _Atomic uint32_t stop;      /* producers return */
  _Atomic uint8_t got[MAX_IDS];
};

#define BATCH 4 /* messages per put_many / get_many in the batch test */

static mps_queue *q;
static struct shared *sh;
static bool batch; /* producers and consumers use the batch calls */
static int nprod = 2, ncons = 2;

/* A message: its id, then bytes derived from it, so that a torn or mixed
 * message is seen. Its length varies with the id. */
static size_t fill(unsigned char *buf, uint64_t id)
{
  size_t len = 8 + (size_t)(id * 2654435761u % (MAX_MSG - 8));
  memcpy(buf, &id, 8);
  for (size_t i = 8; i < len; i++)
    buf[i] = (unsigned char)(id * 31 + i);
  return len;
}

static int check(const unsigned char *buf, ssize_t n)
{
  uint64_t id;
  unsigned char want[MAX_MSG];
  if (n < 8)
    return -1;
  memcpy(&id, buf, 8);
  if (id >= MAX_IDS || (ssize_t)fill(want, id) != n || memcmp(want, buf, (size_t)n) != 0)
    return -1;
  return (int)id;
}

/* Puts BATCH fresh messages with one put_many (it may put fewer: the rest
 * are retried, so every id handed out is put or in hand when killed). */
/* Out of ids: idle until the test stops the producers. */
static int idle_until_stop(void)
{
  struct timespec pause = {0, 1000 * 1000};
  while (!atomic_load(&sh->stop))
    nanosleep(&pause, NULL);
  return 0;
}

static int produce_batch(void)
{
  static unsigned char buf[BATCH][MAX_MSG];
  const void *msgs[BATCH];
  size_t lens[BATCH];
  if (atomic_load(&sh->next_id) >= ID_LIMIT)
    return idle_until_stop();
  for (int i = 0; i < BATCH; i++) {
    uint64_t id = atomic_fetch_add(&sh->next_id, 1);
    lens[i] = fill(buf[i], id);
    msgs[i] = buf[i];
  }
  for (size_t done = 0; done < BATCH;) {
    ssize_t r = mps_queue_put_many(q, msgs + done, lens + done, BATCH - done, 20.0);
    if (r == -EPIPE)
      return 0;
    if (r < 0)
      return 10 + (int)(-r & 0x3f);
    done += (size_t)r;
  }
  return -1; /* go on */
}

static int producer(void *arg)
{
  (void)arg;
  unsigned char buf[MAX_MSG];
  while (batch && !atomic_load(&sh->stop)) {
    int r = produce_batch();
    if (r >= 0)
      return r;
  }
  while (!batch && !atomic_load(&sh->stop)) {
    if (atomic_load(&sh->next_id) >= ID_LIMIT)
      return idle_until_stop();
    uint64_t id = atomic_fetch_add(&sh->next_id, 1);
    size_t len = fill(buf, id);
    int r = mps_queue_put_prio(q, (int)(id % 5), buf, len, 20.0);
    if (r != 0 && r != -EPIPE)
      return 10 + (-r & 0x3f);
  }
  return 0;
}

/* Takes up to BATCH messages with one get_many and records each. */
static int consume_batch(void)
{
  static unsigned char buf[BATCH * MAX_MSG];
  size_t lens[BATCH];
  ssize_t n = mps_queue_get_many(q, buf, sizeof(buf), lens, BATCH, 20.0);
  if (n == -EPIPE)
    return 0;
  if (n <= 0)
    return 10 + (int)(-n & 0x3f);
  size_t off = 0;
  for (ssize_t i = 0; i < n; off += lens[i], i++) {
    int id = check(buf + off, (ssize_t)lens[i]);
    if (id < 0)
      return 3;
    atomic_fetch_add(&sh->got[id], 1);
    atomic_fetch_add(&sh->delivered, 1);
    mps_queue_task_done(q);
  }
  return -1; /* go on */
}

static int consumer(void *arg)
{
  (void)arg;
  unsigned char buf[MAX_MSG];
  while (batch) {
    int r = consume_batch();
    if (r >= 0)
      return r;
  }
  for (;;) { /* until shutdown and drained */
    ssize_t n = mps_queue_get(q, buf, sizeof(buf), 20.0);
    if (n == -EPIPE)
      return 0;
    int id = check(buf, n);
    if (id < 0)
      return n < 0 ? 10 + (int)(-n & 0x3f) : 3;
    atomic_fetch_add(&sh->got[id], 1);
    atomic_fetch_add(&sh->delivered, 1);
    mps_queue_task_done(q);
  }
}

/* The load average, for the watchdog's message. */
static double loadavg(void)
{
  double l = -1;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f != NULL && fscanf(f, "%lf", &l) != 1)
    l = -1;
  if (f != NULL)
    fclose(f);
  return l;
}

/* Waits for PROGRESS more deliveries. Fails only when the count stands
 * still for STALL_S seconds: progress is counted one delivery at a time,
 * so a loaded machine that delivers slowly never trips it, and a deadlock
 * (every process asleep, nothing delivered) still does. */
static void wait_progress(uint64_t from)
{
  uint64_t seen = atomic_load(&sh->delivered);
  double since = test_now();
  struct timespec pause = {0, 200 * 1000};
  while (seen < from + PROGRESS) {
    if (atomic_load(&sh->next_id) >= ID_LIMIT)
      return; /* the producers idle on purpose */
    nanosleep(&pause, NULL);
    uint64_t now = atomic_load(&sh->delivered);
    if (now != seen) {
      seen = now;
      since = test_now();
    }
    cr_assert(test_now() - since < STALL_S,
              "not one delivery in %.0f s: a deadlock (delivered %llu, load %.1f)", STALL_S,
              (unsigned long long)seen, loadavg());
  }
}

/* Each kill may take the messages its victim had in hand: one for the
 * single calls, a whole batch for the batch calls. */
static void torture(mps_order order, int kills)
{
  uint64_t in_hand = batch ? BATCH : 1;
  mps_queue_opts o = {.maxsize = 16, .max_msg = MAX_MSG, .order = order};
  q = mps_queue_new(&o);
  mps_value *v = mps_value_new_sized(sizeof(struct shared), false);
  cr_assert_not_null(q);
  cr_assert_not_null(v);
  sh = mps_value_ptr(v);
  pid_t prod[MAXPROC], cons[MAXPROC];
  for (int i = 0; i < nprod; i++)
    prod[i] = child_run(producer, NULL);
  for (int i = 0; i < ncons; i++)
    cons[i] = child_run(consumer, NULL);
  srand(1234 + order);
  int k;
  for (k = 0; k < kills; k++) {
    /* Out of ids (a fast machine): stop killing, keep what was done. */
    if (atomic_load(&sh->next_id) > MAX_IDS / 4 * 3)
      break;
    wait_progress(atomic_load(&sh->delivered));
    bool is_prod = rand() % 2;
    pid_t *slot = is_prod ? &prod[rand() % nprod] : &cons[rand() % ncons];
    struct timespec at = {0, (rand() % 500) * 1000};
    nanosleep(&at, NULL); /* a random moment, not an ordering */
    kill(*slot, SIGKILL);
    child_expect_signal(*slot, SIGKILL);
    *slot = child_run(is_prod ? producer : consumer, NULL);
  }
  cr_assert_geq(k, kills / 4, "only %d kills before running out of ids", k);
  kills = k;
  wait_progress(atomic_load(&sh->delivered));
  /* Stop: producers end after their current put; shutdown lets the
   * consumers drain the queue and then return. */
  atomic_store(&sh->stop, 1);
  for (int i = 0; i < nprod; i++)
    child_expect_exit(prod[i], 0);
  cr_assert_eq(mps_queue_shutdown(q), 0);
  for (int i = 0; i < ncons; i++)
    child_expect_exit(cons[i], 0);
  cr_assert(mps_queue_empty(q));

  uint64_t ids = atomic_load(&sh->next_id), missing = 0;
  cr_assert_lt(ids, MAX_IDS);
  for (uint64_t i = 0; i < ids; i++) {
    uint8_t n = atomic_load(&sh->got[i]);
    cr_assert_leq(n, 1, "message %llu delivered %d times", (unsigned long long)i, n);
    missing += n == 0;
  }
  cr_assert_leq(missing, in_hand * (uint64_t)kills, "%llu missing after %d kills",
                (unsigned long long)missing, kills);
  cr_log_info("order %d: %llu messages, %d kills, %llu lost in hand\n", order,
              (unsigned long long)ids, kills, (unsigned long long)missing);
  mps_value_close(v);
  mps_queue_close(q);
}

Test(queue_torture, fifo_sigkill, .timeout = 60) { torture(MPS_FIFO, 500); }
Test(queue_torture, priority_sigkill, .timeout = 60) { torture(MPS_PRIORITY, 500); }
Test(queue_torture, lifo_sigkill, .timeout = 60) { torture(MPS_LIFO, 200); }

Test(queue_torture, fifo_batch_calls_sigkill, .timeout = 60)
{
  batch = true;
  torture(MPS_FIFO, 300);
}

/* Four producers and four consumers on a machine with fewer CPUs: claims
 * are often preempted between their CAS and their publish, consumers
 * often wait for a live claimer, and kills land among them. */
Test(queue_torture, fifo_four_to_four_sigkill, .timeout = 60)
{
  nprod = ncons = 4;
  torture(MPS_FIFO, 200);
}

Test(queue_torture, fifo_four_to_four_batch_sigkill, .timeout = 60)
{
  nprod = ncons = 4;
  batch = true;
  torture(MPS_FIFO, 150);
}
