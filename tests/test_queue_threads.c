/* FIFO queues with threads, fork and exec: several threads of one process
 * putting at once; a forked child using a handle (and a token) it
 * inherited; close while another thread is inside a call; threads that
 * exit after a put, and processes that exec after one, give their
 * liveness token back. Linked with the test copy of the library, whose
 * crash points let a forked child die in the middle of a put. */
#include "helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>

#include "queue_internal.h"

#define EXEC_ENV "MPS_TEST_QUEUE_EXEC"

static mps_queue *q;

static mps_queue *make(size_t maxsize)
{
  mps_queue_opts o = {.maxsize = maxsize, .max_msg = 16, .order = MPS_FIFO};
  mps_queue *r = mps_queue_new(&o);
  cr_assert_not_null(r, "mps_queue_new: %s", strerror(errno));
  return r;
}

/* An exec'd copy of this program: opens the named queue, puts its
 * number, and execs /bin/true while it still holds its token. */
__attribute__((constructor)) static void exec_peer(void)
{
  const char *name = getenv(EXEC_ENV);
  if (name == NULL)
    return;
  mps_queue *pq = mps_queue_open(name);
  uint32_t v = (uint32_t)atoi(getenv(EXEC_ENV "_N"));
  if (pq == NULL || mps_queue_put(pq, &v, sizeof(v), 10.0) != 0)
    _exit(10);
  execl("/bin/true", "true", (char *)NULL);
  _exit(11);
}

/* ---- several threads putting at once ------------------------------------- */

#define THREADS    4
#define PER_THREAD 20000

static void *put_thread(void *arg)
{
  uint32_t id = (uint32_t)(uintptr_t)arg;
  for (uint32_t i = 0; i < PER_THREAD; i++) {
    uint32_t v = id * PER_THREAD + i;
    if (mps_queue_put(q, &v, sizeof(v), 20.0) != 0)
      return (void *)1;
  }
  return NULL;
}

static int get_all(void *arg)
{
  (void)arg;
  uint32_t next[THREADS] = {0};
  for (unsigned n = 0; n < THREADS * PER_THREAD; n++) {
    uint32_t v;
    if (mps_queue_get(q, &v, sizeof(v), 20.0) != sizeof(v) || v >= THREADS * PER_THREAD)
      return 1;
    if (v % PER_THREAD != next[v / PER_THREAD]++)
      return 2; /* each thread's messages in order, none twice, none lost */
  }
  return mps_queue_empty(q) ? 0 : 3;
}

Test(queue_threads, threads_put_at_once, .timeout = 60)
{
  q = make(64);
  pid_t c = child_run(get_all, NULL);
  pthread_t t[THREADS];
  for (uintptr_t i = 0; i < THREADS; i++)
    cr_assert_eq(pthread_create(&t[i], NULL, put_thread, (void *)i), 0);
  for (int i = 0; i < THREADS; i++) {
    void *r;
    pthread_join(t[i], &r);
    cr_assert_null(r);
  }
  child_expect_exit(c, 0);
  mps_queue_close(q);
}

/* ---- fork with a handle and a token -------------------------------------- */

static int child_puts_and_dies(void *arg)
{
  (void)arg;
  uint32_t v = 2;
  if (mps_queue_put(q, &v, sizeof(v), 5.0) != 0) /* its own token */
    return 1;
  mps__crash_arm(MPS__CP_PUT_CLAIMED, 1);
  v = 3;
  int r = mps_queue_put(q, &v, sizeof(v), 5.0);
  return 20 + r; /* not reached: killed after its claim */
}

Test(queue_threads, forked_child_uses_inherited_handle, .timeout = 30)
{
  q = make(8);
  uint32_t v = 1;
  cr_assert_eq(mps_queue_put(q, &v, sizeof(v), 0), 0); /* this thread holds a token */
  /* The child inherits the handle and our token cache, not our token: its
   * claims must be its own, or its death would look like ours (alive) and
   * its hole would never be skipped. */
  child_expect_signal(child_run(child_puts_and_dies, NULL), SIGKILL);
  v = 4;
  cr_assert_eq(mps_queue_put(q, &v, sizeof(v), 0), 0);
  for (uint32_t want = 1; want <= 4; want++) {
    if (want == 3)
      continue; /* the dead child's hole */
    uint32_t got = 0;
    cr_assert_eq(mps_queue_get(q, &got, sizeof(got), 5.0), (ssize_t)sizeof(got));
    cr_assert_eq(got, want);
  }
  cr_assert(mps_queue_empty(q));
  for (int i = 0; i < 3; i++)
    cr_assert_eq(mps_queue_task_done(q), 0);
  cr_assert_eq(mps_queue_join(q, 5.0), 0, "the hole counts as done");
  mps_queue_close(q);
}

/* ---- close while another thread is inside a call ------------------------- */

/* How many mappings of the named segment this process has. */
static int mappings(const char *name)
{
  FILE *f = fopen("/proc/self/maps", "r");
  cr_assert_not_null(f);
  char line[512];
  int n = 0;
  while (fgets(line, sizeof(line), f) != NULL)
    n += strstr(line, name + 1) != NULL; /* "/dev/shm/mps-test-..." */
  fclose(f);
  return n;
}

static _Atomic pid_t getter_tid;

static void *blocked_get(void *arg)
{
  (void)arg;
  atomic_store(&getter_tid, (pid_t)syscall(SYS_gettid));
  uint32_t v = 0;
  ssize_t n = mps_queue_get(q, &v, sizeof(v), 20.0);
  return (void *)(uintptr_t)(n == sizeof(v) && v == 7 ? 0 : 1);
}

static void *put_then_wait(void *arg)
{
  int *fds = arg;
  uint32_t v = 8;
  if (mps_queue_put(q, &v, sizeof(v), 5.0) != 0) /* takes a token */
    return (void *)1;
  char c;
  return (void *)(uintptr_t)(read(fds[0], &c, 1) == 1 ? 0 : 2);
}

Test(queue_threads, close_while_another_thread_is_inside, .timeout = 30)
{
  char name[64];
  test_name(name, "queue-close");
  mps_queue_opts o = {.maxsize = 4, .max_msg = 16, .order = MPS_FIFO};
  q = mps_queue_create(name, &o);
  cr_assert_not_null(q);
  mps_queue *other = mps_queue_open(name);
  cr_assert_not_null(other);

  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, blocked_get, NULL), 0);
  while (atomic_load(&getter_tid) == 0)
    sched_yield();
  wait_until_blocked(atomic_load(&getter_tid));
  cr_assert_eq(mappings(name), 2);
  mps_queue_close(q); /* the getter sleeps inside a call on q */
  cr_assert_eq(mappings(name), 2, "unmapped under a sleeping call");
  uint32_t v = 7;
  cr_assert_eq(mps_queue_put(other, &v, sizeof(v), 0), 0);
  void *r;
  pthread_join(t, &r);
  cr_assert_null(r, "the getter got its message");
  /* The getter thread exited: its reference went with it. */
  cr_assert_eq(mappings(name), 1, "the last user unmapped it");
  mps_queue_close(other);
  cr_assert_eq(mappings(name), 0);

  /* A thread holding a token keeps the mapping until it exits, and the
   * token is then free again. */
  q = mps_queue_open(name);
  other = mps_queue_open(name);
  cr_assert_not_null(q);
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  cr_assert_eq(pthread_create(&t, NULL, put_then_wait, fds), 0);
  cr_assert_eq(mps_queue_get(other, &v, sizeof(v), 5.0), (ssize_t)sizeof(v));
  mps_queue_close(q); /* the putter holds a token in q's mapping */
  cr_assert_eq(mappings(name), 2, "unmapped under a held token");
  pipe_put(fds[1]);
  pthread_join(t, &r);
  cr_assert_null(r);
  cr_assert_eq(mappings(name), 1);
  cr_assert_eq(atomic_load(&other->s->ring.ntok), 1);
  cr_assert(!mps__mutex_owner_alive(&other->tok[0].mu), "the token was given back");
  mps_queue_close(other);
  cr_assert_eq(mappings(name), 0);
  close(fds[0]);
  close(fds[1]);
  mps_unlink(name);
  assert_no_segments_left();
}

/* ---- tokens come back from exited threads and exec'd processes ---------- */

static void *put_one(void *arg)
{
  uint32_t v = (uint32_t)(uintptr_t)arg;
  return (void *)(uintptr_t)(mps_queue_put(q, &v, sizeof(v), 5.0) == 0 ? 0 : 1);
}

Test(queue_threads, exited_threads_give_tokens_back, .timeout = 60)
{
  enum { N = MPS__QTOK + 44 }; /* more threads than tokens, one after another */
  q = make(N);
  for (uintptr_t i = 0; i < N; i++) {
    pthread_t t;
    void *r;
    cr_assert_eq(pthread_create(&t, NULL, put_one, (void *)i), 0);
    pthread_join(t, &r);
    cr_assert_null(r, "thread %zu could not put", (size_t)i);
  }
  cr_assert_leq(atomic_load(&q->s->ring.ntok), 1, "each thread reused the token of the last");
  for (uint32_t i = 0; i < N; i++) {
    uint32_t v;
    cr_assert_eq(mps_queue_get(q, &v, sizeof(v), 0), (ssize_t)sizeof(v));
    cr_assert_eq(v, i);
  }
  mps_queue_close(q);
}

Test(queue_threads, execd_processes_give_tokens_back, .timeout = 60)
{
  enum { N = MPS__QTOK + 4 };
  char name[64], num[16];
  test_name(name, "queue-exec");
  mps_queue_opts o = {.maxsize = N, .max_msg = 16, .order = MPS_FIFO};
  q = mps_queue_create(name, &o);
  cr_assert_not_null(q);
  for (int i = 0; i < N; i++) {
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
      snprintf(num, sizeof(num), "%d", i);
      setenv(EXEC_ENV, name, 1);
      setenv(EXEC_ENV "_N", num, 1);
      execl("/proc/self/exe", "test_queue_threads", (char *)NULL);
      _exit(127);
    }
    child_expect_exit(pid, 0);
  }
  cr_assert_leq(atomic_load(&q->s->ring.ntok), 1, "an exec gave its token back");
  for (uint32_t i = 0; i < N; i++) {
    uint32_t v;
    cr_assert_eq(mps_queue_get(q, &v, sizeof(v), 0), (ssize_t)sizeof(v));
    cr_assert_eq(v, i);
  }
  cr_assert_eq(mps_queue_join(q, 0), -EAGAIN);
  for (int i = 0; i < N; i++)
    cr_assert_eq(mps_queue_task_done(q), 0);
  cr_assert_eq(mps_queue_join(q, 0), 0);
  mps_queue_close(q);
  mps_unlink(name);
  assert_no_segments_left();
}

/* ---- a producer stopped between its claim and its publish --------------- */

static int stopping_producer(void *arg)
{
  (void)arg;
  uint32_t v = 1;
  mps__crash_arm_signal(MPS__CP_PUT_CLAIMED, 1, SIGSTOP);
  return mps_queue_put(q, &v, sizeof(v), 5.0) == 0 ? 0 : 1;
}

Test(queue_threads, stopped_producer_is_waited_for, .timeout = 30)
{
  q = make(4);
  pid_t p = child_run(stopping_producer, NULL);
  int status;
  cr_assert_eq(waitpid(p, &status, WUNTRACED), p);
  cr_assert(WIFSTOPPED(status), "stopped between its claim and its publish");
  cr_assert_eq(mps_queue_qsize(q), 1, "the claim is made");
  uint32_t v = 0;
  cr_assert_eq(mps_queue_get(q, &v, sizeof(v), 0.3), -ETIMEDOUT, "waited for, not skipped");
  cr_assert_eq(mps__queue_skipped(q), 0);
  kill(p, SIGCONT);
  cr_assert_eq(mps_queue_get(q, &v, sizeof(v), 5.0), (ssize_t)sizeof(v));
  cr_assert_eq(v, 1);
  child_expect_exit(p, 0);
  mps_queue_close(q);
}
