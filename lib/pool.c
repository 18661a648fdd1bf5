/* Process pool: forked workers fed by a task queue, results and futures.
 *
 * Shared layout (one anonymous segment, kind POOL): the header, a
 * `cancel_below` watermark and a ring of recently cancelled task ids, then
 * one cache-line-aligned slot per worker. A slot holds the worker's state
 * word and the buffer its task message is received into, so the task id a
 * worker holds is always readable by the parent. Tasks and results travel
 * through two mps_queues: task = {id, fn, len, arg}, result = {id, ret,
 * kind, data}. Shared memory holds ids, never pointers, except the task
 * function's address, which is the same in every worker (they are forks of
 * the parent).
 *
 * Parent side (process-private): futures live in a hash table by id, under
 * one process-wide pthread mutex and condition variable (future.c, shared
 * by every pool so that wait_any works across pools). A manager thread
 * forks the workers and waits on their pidfds; a collector thread drains
 * the result queue into the futures.
 *
 * Crash semantics: a worker killed at any point either left its task in the
 * task queue (a get that did not return leaves the message queued), or holds
 * its id in its slot. The manager reaps it, puts a DEATH record for that id
 * into the result queue and starts a replacement. The collector reads the
 * result queue in order, so a result the worker put before dying is seen
 * first; a DEATH record for a future still pending fails it with -ECHILD.
 * The one ambiguous instant is a worker killed inside get after the message
 * was copied into its slot but before it was removed from the queue: that
 * future fails with -ECHILD and the task may still run elsewhere (its result
 * is then dropped). Nothing waits forever.
 */
#include "config.h"

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "pool_internal.h"
#include "remote.h"

#define WORKERS_MAX 1024u
#define LIMIT_MAX ((size_t)64 << 20)

/* ---- worker side -------------------------------------------------------- */

static bool is_cancelled(struct pool_shm *shm, uint64_t id)
{
  return id < atomic_load(&shm->cancel_below) ||
         atomic_load(&shm->ring[id % POOL_RING]) == id;
}

/* Runs one received task and puts its result. */
static void worker_run(mps_pool *p, struct pool_slot *s, struct res_msg *res)
{
  struct task_msg *t = slot_task(s);
  mps_task_fn fn = (mps_task_fn)(uintptr_t)t->fn;
  ssize_t r = fn(t->arg, t->len, res->data, p->max_result);
  if (r > (ssize_t)p->max_result)
    r = -EMSGSIZE;
  res->id = t->id;
  res->kind = RES_RESULT;
  res->ret = r;
  size_t n = sizeof(*res) + (r > 0 ? (size_t)r : 0);
  /* Fails only once the pool is torn down: nobody waits for it then. */
  if (mps_queue_put(p->results, res, n, MPS_FOREVER) < 0)
    return;
}

static _Noreturn void worker_exit(struct pool_slot *s, uint32_t reason, int code)
{
  atomic_store(&s->exit_reason, reason);
  _exit(code);
}

static _Noreturn void worker_main(mps_pool *p, struct pool_slot *s, struct res_msg *res)
{
  atomic_store(&s->state, SLOT_INIT);
  if (p->opts.init != NULL)
    p->opts.init(p->opts.init_arg);
  struct task_msg *t = slot_task(s);
  for (unsigned done = 0;; done++) {
    if (p->opts.max_tasks_per_child != 0 && done == p->opts.max_tasks_per_child)
      worker_exit(s, EXIT_RECYCLE, 0);
    atomic_store(&s->state, SLOT_IDLE);
    __atomic_store_n(&t->id, 0, __ATOMIC_RELEASE);
    ssize_t r = mps_queue_get(p->tasks, t, p->task_msg_max, MPS_FOREVER);
    if (r == -EPIPE)
      worker_exit(s, EXIT_STOP, 0);
    if (r < (ssize_t)sizeof(*t))
      worker_exit(s, EXIT_ERROR, 1);
    /* Announce the task before checking for its cancellation; the parent
     * announces a cancellation before looking at the slots (pool_try_cancel),
     * so one of the two always sees the other. */
    atomic_store(&s->state, SLOT_GOT);
    uint32_t got = SLOT_GOT;
    if (is_cancelled(p->shm, t->id)) {
      atomic_compare_exchange_strong(&s->state, &got, SLOT_SKIPPED);
      continue;
    }
    if (!atomic_compare_exchange_strong(&s->state, &got, SLOT_RUNNING))
      continue; /* the parent cancelled it under our feet */
    worker_run(p, s, res);
  }
}

/* ---- manager thread: forks, reaps and replaces workers ------------------ */

static int spawn(mps_pool *p, unsigned i)
{
  struct pool_slot *s = pool_slot(p, i);
  atomic_store(&s->exit_reason, EXIT_CRASH);
  atomic_store(&s->state, SLOT_INIT);
  __atomic_store_n(&slot_task(s)->id, 0, __ATOMIC_RELEASE);
  /* The worker's result buffer is allocated before the fork: the child of
   * a threaded process must not count on malloc, whose locks another
   * thread may have held at the fork (glibc copes; ASan's allocator and
   * others deadlock). */
  struct res_msg *res = malloc(sizeof(*res) + p->max_result);
  if (res == NULL)
    return -ENOMEM;
  /* Workers die with the manager thread that forks them, even if the
   * parent crashes. */
  pid_t pid = mps__fork(true);
  if (pid == 0)
    worker_main(p, s, res);
  free(res);
  if (pid < 0)
    return pid;
  /* Without a pidfd the manager checks this worker with waitid instead. */
  int fd = mps__pidfd_open(pid);
  if (fd < 0)
    fd = -1;
  pthread_mutex_lock(&mps__hub.mu);
  p->w[i].pid = pid;
  p->w[i].pidfd = fd;
  p->live++;
  pthread_mutex_unlock(&mps__hub.mu);
  return 0;
}

/* Workers that die before their initializer returns would be replaced
 * forever, forking as fast as they die: after this many such deaths in a row
 * the pool gives up, fails every pending future with -ECHILD and shuts down
 * (submit then fails with EPIPE). */
#define INIT_FAILS_MAX 3

static bool give_up_on_init(mps_pool *p, uint32_t state)
{
  p->init_fails = state == SLOT_INIT ? p->init_fails + 1 : 0;
  if (p->init_fails < INIT_FAILS_MAX)
    return false;
  pthread_mutex_lock(&mps__hub.mu);
  p->shutting = true;
  mps__future_fail_all(p, -ECHILD);
  pthread_mutex_unlock(&mps__hub.mu);
  mps_queue_shutdown(p->tasks);
  return true;
}

/* A worker ended: reap it, replace it, then report the task it held, so
 * that whoever sees the task fail also sees the replacement. */
static void on_exit_of(mps_pool *p, unsigned i)
{
  struct pool_slot *s = pool_slot(p, i);
  waitpid(p->w[i].pid, NULL, 0);
  if (p->w[i].pidfd >= 0)
    close(p->w[i].pidfd);
  uint64_t id = __atomic_load_n(&slot_task(s)->id, __ATOMIC_ACQUIRE);
  uint32_t why = atomic_load(&s->exit_reason);
  bool broken = give_up_on_init(p, atomic_load(&s->state));
  pthread_mutex_lock(&mps__hub.mu);
  p->w[i].pid = 0;
  p->w[i].pidfd = -1;
  p->live--;
  pthread_mutex_unlock(&mps__hub.mu);
  if (!broken && (why == EXIT_CRASH || why == EXIT_RECYCLE))
    p->w[i].respawn = spawn(p, i) < 0; /* the slot is reset by spawn */
  if (id != 0) {
    struct res_msg death = {.id = id, .kind = RES_DEATH, .ret = -ECHILD};
    /* Fails only once the pool is torn down: nobody waits for it then. */
    if (mps_queue_put(p->results, &death, sizeof(death), MPS_FOREVER) < 0)
      return;
  }
}

/* How often workers without a pidfd are checked, and failed forks retried. */
#define POLL_NO_PIDFD_MS 10
#define POLL_RETRY_MS 100

/* Sleeps until a worker ends or the control eventfd is poked. Workers
 * without a pidfd (no kernel support, or refused by seccomp or valgrind)
 * are checked with waitid every POLL_NO_PIDFD_MS instead. */
static void watch(mps_pool *p, bool retry)
{
  struct pollfd pf[WORKERS_MAX + 1];
  unsigned idx[WORKERS_MAX];
  nfds_t n = 0;
  int ms = retry ? POLL_RETRY_MS : -1;
  pf[n++] = (struct pollfd){.fd = p->evfd, .events = POLLIN};
  for (unsigned i = 0; i < p->nworkers; i++)
    if (p->w[i].pidfd >= 0) {
      idx[n - 1] = i;
      pf[n++] = (struct pollfd){.fd = p->w[i].pidfd, .events = POLLIN};
    } else if (p->w[i].pid > 0) {
      ms = POLL_NO_PIDFD_MS;
    }
  if (poll(pf, n, ms) < 0)
    return;
  uint64_t v;
  if (pf[0].revents != 0 && read(p->evfd, &v, sizeof(v)) < 0)
    v = 0; /* nothing to do: the flag it signals is read under the mutex */
  for (nfds_t k = 1; k < n; k++)
    if (pf[k].revents != 0)
      on_exit_of(p, idx[k - 1]);
  for (unsigned i = 0; i < p->nworkers; i++)
    if (p->w[i].pidfd < 0 && p->w[i].pid > 0 && mps__child_exited(p->w[i].pid))
      on_exit_of(p, i);
}

static void *manager_main(void *arg)
{
  mps_pool *p = arg;
  for (unsigned i = 0; i < p->nworkers; i++)
    p->w[i].respawn = true;
  for (;;) {
    bool retry = false;
    for (unsigned i = 0; i < p->nworkers; i++)
      if (p->w[i].respawn) {
        p->w[i].respawn = spawn(p, i) < 0;
        retry |= p->w[i].respawn;
      }
    pthread_mutex_lock(&mps__hub.mu);
    if (!p->ready) { /* mps_pool_new returns once the first workers exist */
      p->ready = true;
      pthread_cond_broadcast(&mps__hub.cv);
    }
    bool end = p->shutting && p->live == 0;
    pthread_mutex_unlock(&mps__hub.mu);
    if (end)
      break;
    watch(p, retry);
  }
  /* Every worker is gone and every DEATH record is queued: let the
   * collector drain what is left and stop. */
  mps_queue_shutdown(p->results);
  return NULL;
}

/* ---- collector thread: results into futures ----------------------------- */

static void *collector_main(void *arg)
{
  mps_pool *p = arg;
  size_t cap = sizeof(struct res_msg) + p->max_result;
  struct res_msg *res = malloc(cap);
  for (;;) {
    ssize_t n = res ? mps_queue_get(p->results, res, cap, MPS_FOREVER) : -ENOMEM;
    if (n < 0)
      break;
    if ((size_t)n < sizeof(*res))
      continue;
    pthread_mutex_lock(&mps__hub.mu);
    mps_future *f = mps__future_find(p, res->id);
    if (f != NULL)
      mps__future_complete(f, res->ret, res->data, (size_t)n - sizeof(*res));
    pthread_mutex_unlock(&mps__hub.mu);
  }
  free(res);
  pthread_mutex_lock(&mps__hub.mu);
  mps__future_fail_all(p, -ECHILD); /* none should be left; never hang */
  p->finished = true;
  pthread_cond_broadcast(&mps__hub.cv);
  pthread_mutex_unlock(&mps__hub.mu);
  return NULL;
}

/* ---- construction and shutdown ------------------------------------------ */

static int opts_check(mps_pool_opts *o)
{
  if (!mps__reserved_zero(o->reserved))
    return -EINVAL;
  if (o->workers == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    o->workers = n > 0 ? (unsigned)n : 1;
  }
  o->max_arg = o->max_arg ? o->max_arg : MPS_POOL_DEFAULT_MAX_ARG;
  o->max_result = o->max_result ? o->max_result : MPS_POOL_DEFAULT_MAX_RESULT;
  o->queue_size = o->queue_size ? o->queue_size : MPS_POOL_DEFAULT_QUEUE;
  if (o->workers > WORKERS_MAX || o->max_arg > LIMIT_MAX || o->max_result > LIMIT_MAX)
    return -EINVAL;
  return 0;
}

static int make_queues(mps_pool *p)
{
  mps_queue_opts qt = {.maxsize = p->opts.queue_size, .max_msg = p->task_msg_max};
  mps_queue_opts qr = {.maxsize = p->opts.queue_size,
                       .max_msg = sizeof(struct res_msg) + p->max_result};
  p->tasks = mps_queue_new(&qt);
  if (p->tasks == NULL)
    return -errno;
  p->results = mps_queue_new(&qr);
  return p->results == NULL ? -errno : 0;
}

static void pool_release(mps_pool *p)
{
  mps_queue_close(p->tasks);
  mps_queue_close(p->results);
  if (p->evfd >= 0)
    close(p->evfd);
  if (p->seg.hdr != NULL)
    mps__seg_close(&p->seg);
  free(p->w);
  free(p);
}

static int pool_setup(mps_pool *p)
{
  p->task_msg_max = sizeof(struct task_msg) + p->opts.max_arg;
  p->slot_size = MPS__ALIGN_UP(sizeof(struct pool_slot) + p->task_msg_max, MPS__CACHELINE);
  p->max_result = p->opts.max_result;
  p->w = calloc(p->nworkers, sizeof(*p->w));
  if (p->w == NULL)
    return -ENOMEM;
  for (unsigned i = 0; i < p->nworkers; i++)
    p->w[i].pidfd = -1;
  int err = mps__seg_anon(&p->seg, MPS__KIND_POOL,
                          sizeof(struct pool_shm) + p->slot_size * p->nworkers);
  if (err < 0)
    return err;
  p->shm = (struct pool_shm *)p->seg.hdr;
  p->evfd = eventfd(0, EFD_CLOEXEC);
  if (p->evfd < 0)
    return -errno;
  return make_queues(p);
}

mps_pool *mps_pool_new_opts(const mps_pool_opts *opts)
{
  mps__hub_init();
  mps_pool *p = calloc(1, sizeof(*p));
  if (p == NULL)
    return mps__fail(-ENOMEM);
  p->evfd = -1;
  p->owner = getpid();
  p->opts = opts ? *opts : (mps_pool_opts){0};
  int err = opts_check(&p->opts);
  p->nworkers = p->opts.workers;
  if (err == 0)
    err = pool_setup(p);
  if (err == 0 && (err = -pthread_create(&p->collector, NULL, collector_main, p)) == 0) {
    if ((err = -pthread_create(&p->manager, NULL, manager_main, p)) == 0) {
      pthread_mutex_lock(&mps__hub.mu);
      while (!p->ready)
        pthread_cond_wait(&mps__hub.cv, &mps__hub.mu);
      pthread_mutex_unlock(&mps__hub.mu);
      return p;
    }
    mps_queue_shutdown(p->results);
    pthread_join(p->collector, NULL);
  }
  pool_release(p);
  return mps__fail(err);
}

mps_pool *mps_pool_new(unsigned workers)
{
  return mps_pool_new_opts(&(mps_pool_opts){.workers = workers});
}

int mps__pool_owned(const mps_pool *p)
{
  return p->owner == getpid() ? 0 : -EPERM;
}

int mps_pool_shutdown(mps_pool *p, bool wait, bool cancel_pending)
{
  if (p == NULL)
    return -EINVAL;
  if (mps__pool_owned(p) < 0)
    return -EPERM;
  if (p->remote != NULL)
    return mps__rpool_shutdown(p, wait, cancel_pending);
  pthread_mutex_lock(&mps__hub.mu);
  p->shutting = true;
  if (cancel_pending)
    mps__future_cancel_all(p);
  pthread_mutex_unlock(&mps__hub.mu);
  /* Workers drain what is queued, then their get fails with -EPIPE. */
  mps_queue_shutdown(p->tasks);
  uint64_t one = 1;
  if (write(p->evfd, &one, sizeof(one)) < 0)
    return -errno;
  if (!wait)
    return 0;
  pthread_mutex_lock(&mps__hub.mu);
  while (!p->finished)
    pthread_cond_wait(&mps__hub.cv, &mps__hub.mu);
  pthread_mutex_unlock(&mps__hub.mu);
  return 0;
}

/* mps_pool_free() in a forked child: its copy of the handle has no threads
 * behind it, and everything shared is the parent's. Only this process's
 * memory and descriptors are released; its copies of pending futures are
 * completed with -EPERM. */
static void pool_free_copy(mps_pool *p)
{
  pthread_mutex_lock(&mps__hub.mu);
  mps__future_fail_all(p, -EPERM);
  pthread_mutex_unlock(&mps__hub.mu);
  for (unsigned i = 0; i < p->nworkers; i++)
    if (p->w[i].pidfd >= 0)
      close(p->w[i].pidfd);
  pool_release(p);
}

void mps_pool_free(mps_pool *p)
{
  if (p == NULL)
    return;
  if (p->remote != NULL) {
    mps__rpool_free(p);
    return;
  }
  if (mps__pool_owned(p) < 0) {
    pool_free_copy(p);
    return;
  }
  mps_pool_shutdown(p, true, false);
  pthread_join(p->manager, NULL);
  pthread_join(p->collector, NULL);
  pool_release(p);
}

ssize_t mps_pool_workers(mps_pool *p, pid_t *pids, size_t n)
{
  if (p == NULL || (pids == NULL && n > 0))
    return -EINVAL;
  if (mps__pool_owned(p) < 0)
    return -EPERM;
  if (p->remote != NULL)
    return 0; /* its workers are other hosts' */
  size_t k = 0;
  pthread_mutex_lock(&mps__hub.mu);
  for (unsigned i = 0; i < p->nworkers; i++)
    if (p->w[i].pid > 0) {
      if (k < n)
        pids[k] = p->w[i].pid;
      k++;
    }
  pthread_mutex_unlock(&mps__hub.mu);
  return (ssize_t)k;
}

/* ---- submit --------------------------------------------------------------- */

mps_future *mps_pool_submit(mps_pool *p, mps_task_fn fn, const void *arg, size_t len)
{
  if (p == NULL || fn == NULL || (arg == NULL && len > 0))
    return mps__fail(-EINVAL);
  if (mps__pool_owned(p) < 0)
    return mps__fail(-EPERM);
  if (p->remote != NULL)
    return mps__rpool_submit(p, fn, NULL, arg, len);
  if (len > p->opts.max_arg)
    return mps__fail(-EMSGSIZE);
  struct task_msg *t = malloc(sizeof(*t) + len);
  if (t == NULL)
    return mps__fail(-ENOMEM);
  int err;
  mps_future *f = mps__future_register(p, &err);
  if (f == NULL)
    goto out;
  *t = (struct task_msg){.id = f->id, .fn = (uint64_t)(uintptr_t)fn, .len = len};
  if (len > 0)
    memcpy(t->arg, arg, len);
  err = mps_queue_put(p->tasks, t, sizeof(*t) + len, MPS_FOREVER);
  if (err < 0) {
    mps__future_unregister(f);
    f = NULL;
  }
out:
  free(t);
  return f ? f : mps__fail(err);
}

/* Parent-side half of the cancellation handshake; the hub mutex is held.
 * The id is announced first (ring, or the watermark set by the caller),
 * then the slots are read: either a worker already holds it (and the CAS on
 * its state decides), or that worker's later check sees the announcement. */
int mps__pool_try_cancel(mps_pool *p, uint64_t id, bool ring)
{
  if (p->remote != NULL)
    return -EBUSY; /* a task sent to other hosts cannot be called back */
  if (ring)
    atomic_store(&p->shm->ring[id % POOL_RING], id);
  for (unsigned i = 0; i < p->nworkers; i++) {
    struct pool_slot *s = pool_slot(p, i);
    uint32_t st = atomic_load(&s->state);
    if (st == SLOT_IDLE || st == SLOT_INIT ||
        __atomic_load_n(&slot_task(s)->id, __ATOMIC_ACQUIRE) != id)
      continue;
    if (st == SLOT_GOT && atomic_compare_exchange_strong(&s->state, &st, SLOT_CANCELLED))
      return 0;
    return st == SLOT_RUNNING ? -EBUSY : 0;
  }
  return 0;
}

void mps__pool_cancel_below(mps_pool *p, uint64_t id)
{
  atomic_store(&p->shm->cancel_below, id);
}

/* ---- map ------------------------------------------------------------------- */

/* What is left of the caller's timeout, for the next blocking call. */
static double time_left(double timeout, double end)
{
  if (timeout < 0 || timeout == 0)
    return timeout;
  double left = end - mps__now();
  return left > 0 ? left : 1e-9; /* passed: still a timed wait, -ETIMEDOUT */
}

/* Collects result i into its place; a shorter one is zero-padded. */
static int map_collect(mps_future *f, char *dst, size_t size, double timeout)
{
  size_t len = 0;
  int r = mps_future_result(f, dst, size, &len, timeout);
  if (r == 0 && len < size)
    memset(dst + len, 0, size - len);
  return r;
}

int mps_pool_map(mps_pool *p, mps_task_fn fn, const void *args, size_t nargs,
                 size_t arg_size, void *results, size_t result_size, double timeout)
{
  if (p == NULL || fn == NULL || (args == NULL && nargs > 0 && arg_size > 0) ||
      (results == NULL && nargs > 0 && result_size > 0) || timeout != timeout)
    return -EINVAL;
  if (mps__pool_owned(p) < 0)
    return -EPERM;
  double end = mps__now() + (timeout > 0 ? timeout : 0);
  mps_future **fs = calloc(nargs ? nargs : 1, sizeof(*fs));
  if (fs == NULL)
    return -ENOMEM;
  int err = 0;
  size_t n = 0;
  for (; n < nargs; n++) {
    fs[n] = mps_pool_submit(p, fn, (const char *)args + n * arg_size, arg_size);
    if (fs[n] == NULL) {
      err = -errno;
      break;
    }
  }
  for (size_t i = 0; i < n && err == 0; i++)
    err = map_collect(fs[i], (char *)results + i * result_size, result_size,
                      time_left(timeout, end));
  for (size_t i = 0; i < n; i++) {
    if (err != 0)
      mps_future_cancel(fs[i]);
    mps_future_free(fs[i]);
  }
  free(fs);
  return err;
}
