/* Damaged segments and closed handles: a clear error, never an abort, a
 * stray access or an endless wait.
 *
 * The embedded glibc mutexes are found without knowing any object's
 * layout: every cache line of a named segment that holds a free mutex of
 * the kind mps__mutex_init makes (learnt from a mutex made the same way
 * here) is one. Each is damaged in turn, through a second mapping of the
 * file, as another process with write access could. */
#define _GNU_SOURCE
#include "helpers.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>

/* glibc's kind word of our error-checking and recursive mutexes. */
static int kind_of(bool recursive)
{
  pthread_mutexattr_t a;
  pthread_mutex_t m;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  pthread_mutexattr_settype(&a, recursive ? PTHREAD_MUTEX_RECURSIVE : PTHREAD_MUTEX_ERRORCHECK);
  pthread_mutex_init(&m, &a);
  return m.__data.__kind;
}

struct mapping {
  unsigned char *p;
  size_t size;
};

static struct mapping map_named(const char *name)
{
  char path[128];
  snprintf(path, sizeof(path), "/dev/shm%s", name);
  int fd = open(path, O_RDWR);
  cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
  struct stat st;
  cr_assert_eq(fstat(fd, &st), 0);
  struct mapping m = {mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0),
                      (size_t)st.st_size};
  cr_assert_neq(m.p, MAP_FAILED);
  close(fd);
  return m;
}

/* The mutexes in a mapping: up to max offsets, returns how many. */
static int find_mutexes(struct mapping m, size_t *off, int max)
{
  int n = 0, k0 = kind_of(false), k1 = kind_of(true);
  for (size_t o = 0; o + sizeof(pthread_mutex_t) <= m.size && n < max; o += 64) {
    pthread_mutex_t *mu = (pthread_mutex_t *)(m.p + o);
    if ((mu->__data.__kind == k0 || mu->__data.__kind == k1) && mu->__data.__lock == 0 &&
        mu->__data.__owner == 0)
      off[n++] = o;
  }
  return n;
}

static pthread_mutex_t *mutex_at(struct mapping m, size_t off)
{
  return (pthread_mutex_t *)(m.p + off);
}

/* ---- one helper per kind of object: create, open, a locking call -------- */

struct kind {
  const char *what;
  void *(*create)(const char *name);
  void *(*open)(const char *name);
  int (*use)(void *h);         /* takes the internal mutex; with a timeout if it has one */
  int (*use_forever)(void *h); /* a call with no timeout, or MPS_FOREVER */
  int (*close)(void *h);
};

static void *lock_create(const char *n) { return mps_lock_create(n); }
static void *lock_open(const char *n) { return mps_lock_open(n); }
static int lock_use(void *h)
{
  int r = mps_lock_acquire(h, 0.05);
  return r >= 0 ? mps_lock_release(h) : r;
}
static int lock_forever(void *h)
{
  int r = mps_lock_acquire(h, MPS_FOREVER);
  return r >= 0 ? mps_lock_release(h) : r;
}
static int lock_close(void *h) { return mps_lock_close(h); }

static void *rlock_create(const char *n) { return mps_rlock_create(n); }
static void *rlock_open(const char *n) { return mps_rlock_open(n); }
static int rlock_use(void *h)
{
  int r = mps_rlock_acquire(h, 0.05);
  return r >= 0 ? mps_rlock_release(h) : r;
}
static int rlock_close(void *h) { return mps_rlock_close(h); }

static void *sem_create(const char *n) { return mps_semaphore_create(n, 1); }
static void *sem_open(const char *n) { return mps_semaphore_open(n); }
static int sem_use(void *h)
{
  int r = mps_semaphore_acquire(h, 0.05);
  return r >= 0 ? mps_semaphore_release(h) : r;
}
static int sem_forever(void *h) { return mps_semaphore_release(h); }
static int sem_close(void *h) { return mps_semaphore_close(h); }

static void *event_create(const char *n) { return mps_event_create(n); }
static void *event_open(const char *n) { return mps_event_open(n); }
static int event_use(void *h) { return mps_event_wait(h, 0.05); }
static int event_forever(void *h) { return mps_event_set(h); }
static int event_close(void *h) { return mps_event_close(h); }

static void *barrier_create(const char *n) { return mps_barrier_create(n, 2); }
static void *barrier_open(const char *n) { return mps_barrier_open(n); }
static int barrier_use(void *h) { return mps_barrier_wait(h, 0.05); }
static int barrier_forever(void *h) { return mps_barrier_reset(h); }
static int barrier_close(void *h) { return mps_barrier_close(h); }

static void *cond_create(const char *n) { return mps_cond_create(n); }
static void *cond_open(const char *n) { return mps_cond_open(n); }
static int cond_use(void *h)
{
  int r = mps_cond_acquire(h, 0.05);
  if (r < 0)
    return r;
  int w = mps_cond_wait(h, 0.01);
  mps_cond_release(h);
  return w;
}
static int cond_close(void *h) { return mps_cond_close(h); }

static void *queue_create(const char *n)
{
  mps_queue_opts o = {.maxsize = 4, .max_msg = 16, .order = MPS_PRIORITY};
  return mps_queue_create(n, &o);
}
static void *queue_open(const char *n) { return mps_queue_open(n); }
static int queue_use(void *h)
{
  char buf[16];
  int r = mps_queue_put(h, "m", 1, 0.05);
  return r < 0 ? r : (int)mps_queue_get(h, buf, sizeof(buf), 0.05);
}
static int queue_forever(void *h) { return mps_queue_put(h, "m", 1, MPS_FOREVER); }
static int queue_close(void *h) { return mps_queue_close(h); }

static void *value_create(const char *n) { return mps_value_create(n, MPS_INT, true); }
static void *value_open(const char *n) { return mps_value_open(n); }
static int value_use(void *h)
{
  mps_lock *l = mps_value_get_lock(h);
  int r = mps_lock_acquire(l, 0.05);
  return r >= 0 ? mps_lock_release(l) : r;
}
static int value_close(void *h) { return mps_value_close(h); }

static const struct kind kinds[] = {
    {"lock", lock_create, lock_open, lock_use, lock_forever, lock_close},
    {"rlock", rlock_create, rlock_open, rlock_use, NULL, rlock_close},
    {"semaphore", sem_create, sem_open, sem_use, sem_forever, sem_close},
    {"event", event_create, event_open, event_use, event_forever, event_close},
    {"barrier", barrier_create, barrier_open, barrier_use, barrier_forever, barrier_close},
    {"cond", cond_create, cond_open, cond_use, NULL, cond_close},
    {"queue", queue_create, queue_open, queue_use, queue_forever, queue_close},
    {"value", value_create, value_open, value_use, NULL, value_close},
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

static void create_named(const struct kind *k, char name[64])
{
  test_name(name, k->what);
  void *h = k->create(name);
  cr_assert_not_null(h, "%s create: %s", k->what, strerror(errno));
  cr_assert_eq(k->close(h), 0);
}

static void expect_open_refused(const struct kind *k, const char *name, const char *how)
{
  errno = 0;
  void *h = k->open(name);
  int e = errno;
  if (h != NULL)
    k->close(h);
  cr_expect_null(h, "%s: opened with %s", k->what, how);
  cr_expect_eq(e, EPROTO, "%s with %s: errno %d", k->what, how, e);
}

/* An object of kind k, opened, and its segment mapped a second time so
 * that a test can damage the first mutex in it. */
struct damaged {
  const struct kind *k;
  char name[64];
  void *h;
  struct mapping m;
  pthread_mutex_t *mu;
};

static void damaged_open(struct damaged *d, const struct kind *k)
{
  d->k = k;
  create_named(k, d->name);
  d->h = k->open(d->name);
  cr_assert_not_null(d->h, "%s", k->what);
  d->m = map_named(d->name);
  size_t off[4];
  cr_assert_gt(find_mutexes(d->m, off, 4), 0, "%s: no mutex found", k->what);
  d->mu = mutex_at(d->m, off[0]);
}

static void damaged_close(struct damaged *d)
{
  d->k->close(d->h);
  munmap(d->m.p, d->m.size);
  mps_unlink(d->name);
}

/* The bytes glibc asserts on: a priority-protect or -inherit kind aborts
 * the process inside pthread_mutex_*lock (issue: 0x92 -> 0xc2). */
Test(damage, a_bad_mutex_kind_is_refused_at_open, .timeout = 30)
{
  for (size_t i = 0; i < NKINDS; i++) {
    char name[64];
    create_named(&kinds[i], name);
    struct mapping m = map_named(name);
    size_t off[200];
    int n = find_mutexes(m, off, 200);
    cr_assert_gt(n, 0, "%s: no mutex found", kinds[i].what);
    for (int j = 0; j < n; j++) {
      pthread_mutex_t *mu = mutex_at(m, off[j]);
      int kind = mu->__data.__kind;
      int bad[] = {kind | 0x40, kind | 0x20, kind ^ 0x10, 0, kind == 0x92 ? 0x91 : 0x92};
      for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
        mu->__data.__kind = bad[b];
        char how[64];
        snprintf(how, sizeof(how), "kind 0x%x at 0x%zx", bad[b], off[j]);
        expect_open_refused(&kinds[i], name, how);
      }
      mu->__data.__kind = kind;
      mu->__data.__lock = 0x7fffffff & ~0x40000000; /* no such thread id */
      expect_open_refused(&kinds[i], name, "an impossible owner");
      mu->__data.__lock = 0;
      mu->__data.__owner = -5;
      expect_open_refused(&kinds[i], name, "a negative owner field");
      mu->__data.__owner = 0;
    }
    void *h = kinds[i].open(name);
    cr_expect_not_null(h, "%s: the repaired segment opens", kinds[i].what);
    if (h != NULL)
      cr_expect_neq(kinds[i].use(h), -EPROTO, "%s: and works", kinds[i].what);
    kinds[i].close(h);
    munmap(m.p, m.size);
    mps_unlink(name);
  }
  assert_no_segments_left();
}

/* Damage after the segment was opened and checked: -EPROTO from the next
 * call that takes the mutex, not an abort. */
Test(damage, a_mutex_kind_damaged_after_open_is_eproto, .timeout = 30)
{
  for (size_t i = 0; i < NKINDS; i++) {
    struct damaged d;
    damaged_open(&d, &kinds[i]);
    void *h = d.h;
    pthread_mutex_t *mu = d.mu;
    int kind = mu->__data.__kind;
    mu->__data.__kind = kind | 0x40;
    cr_expect_eq(kinds[i].use(h), -EPROTO, "%s", kinds[i].what);
    mu->__data.__kind = kind;
    cr_expect_neq(kinds[i].use(h), -EPROTO, "%s: repaired", kinds[i].what);
    damaged_close(&d);
  }
}

static int exit_now(void *arg)
{
  (void)arg;
  return 0;
}

/* An owner word that cannot be a holder's: calls without a timeout get
 * -EPROTO after one 50 ms slice instead of waiting for ever. */
static int sleep_forever(void *arg)
{
  (void)arg;
  pause();
  return 0;
}

static void forged_owner_ends_waits(pid_t owner)
{
  for (size_t i = 0; i < NKINDS; i++) {
    if (kinds[i].use_forever == NULL)
      continue;
    struct damaged d;
    damaged_open(&d, &kinds[i]);
    void *h = d.h;
    pthread_mutex_t *mu = d.mu;
    mu->__data.__lock = owner;
    double t0 = test_now();
    cr_expect_eq(kinds[i].use_forever(h), -EPROTO, "%s", kinds[i].what);
    cr_expect_lt(test_now() - t0, 1.0, "%s", kinds[i].what);
    mu->__data.__lock = 0;
    damaged_close(&d);
  }
}

Test(damage, a_vanished_owner_ends_a_wait_without_timeout, .timeout = 30)
{
  pid_t gone = child_run(exit_now, NULL);
  child_expect_exit(gone, 0);
  forged_owner_ends_waits(gone);
}

/* A live process that does not map the segment (forked before it was
 * made) cannot be its holder either. */
Test(damage, an_owner_that_does_not_map_the_segment_ends_a_wait, .timeout = 30)
{
  pid_t other = child_run(sleep_forever, NULL);
  forged_owner_ends_waits(other);
  kill(other, SIGKILL);
  child_expect_signal(other, SIGKILL);
}

/* An owner word forged to name the caller itself: glibc would answer
 * EDEADLK (or count a recursive level of a lock nobody took), and the
 * library would then take the caller for the holder. It is damage. */
Test(damage, an_owner_word_naming_the_caller_is_eproto, .timeout = 30)
{
  for (size_t i = 0; i < NKINDS; i++) {
    struct damaged d;
    damaged_open(&d, &kinds[i]);
    void *h = d.h;
    pthread_mutex_t *mu = d.mu;
    mu->__data.__lock = (int)gettid();
    int r = kinds[i].use(h);
    cr_expect_eq(r, -EPROTO, "%s: %d", kinds[i].what, r);
    mu->__data.__lock = 0;
    damaged_close(&d);
  }
}

Test(damage, a_condition_whose_lock_names_the_caller_is_not_held, .timeout = 30)
{
  char name[64];
  test_name(name, "cond-self");
  mps_cond *c = mps_cond_create(name);
  cr_assert_not_null(c);
  struct mapping m = map_named(name);
  size_t off[4];
  cr_assert_gt(find_mutexes(m, off, 4), 0);
  pthread_mutex_t *mu = mutex_at(m, off[0]);
  mu->__data.__lock = (int)gettid();
  cr_expect_eq(mps_cond_acquire(c, 0.01), -EPROTO);
  cr_expect_eq(mps_cond_notify(c, 1), -EPERM);
  cr_expect_eq(mps_cond_wait(c, 0), -EPERM);
  cr_expect_eq(mps_cond_release(c), -EPERM);
  mu->__data.__lock = 0;
  cr_expect_eq(mps_cond_acquire(c, 0.01), 0);
  cr_expect_eq(mps_cond_notify(c, 1), 0);
  cr_expect_eq(mps_cond_release(c), 0);
  mps_cond_close(c);
  munmap(m.p, m.size);
  mps_unlink(name);
}

/* ---- handles after close ------------------------------------------------ */

/* Reading a freed handle is what the magic word catches in a normal build;
 * AddressSanitizer reports the same read itself, as it should. */
#if defined(__SANITIZE_ADDRESS__)
#define SKIP_UNDER_ASAN() cr_skip_test("use after free is AddressSanitizer's to report")
#else
#define SKIP_UNDER_ASAN() (void)0
#endif

Test(damage, every_handle_after_close_is_einval, .timeout = 30)
{
  SKIP_UNDER_ASAN();
  for (size_t i = 0; i < NKINDS; i++) {
    char name[64];
    create_named(&kinds[i], name);
    void *h = kinds[i].open(name);
    cr_assert_not_null(h);
    cr_assert_eq(kinds[i].close(h), 0);
    cr_expect_eq(kinds[i].close(h), -EINVAL, "%s: second close", kinds[i].what);
    cr_expect_eq(kinds[i].use(h), -EINVAL, "%s: use after close", kinds[i].what);
    mps_unlink(name);
  }
  mps_conn *a, *b;
  cr_assert_eq(mps_pipe(&a, &b, true), 0);
  cr_assert_eq(mps_conn_close(a), 0);
  cr_expect_eq(mps_conn_close(a), -EINVAL);
  cr_expect_eq(mps_conn_send(a, "x", 1), -EINVAL);
  cr_assert_eq(mps_conn_close(b), 0);
  mps_process *p = mps_process_new(exit_now, NULL, NULL);
  cr_assert_not_null(p);
  cr_assert_eq(mps_process_free(p), 0);
  cr_expect_eq(mps_process_free(p), -EINVAL);
  cr_expect_eq(mps_process_start(p), -EINVAL);
  cr_expect_eq(mps_process_detach(p), -EINVAL);
  p = mps_process_new(exit_now, NULL, NULL);
  cr_assert_not_null(p);
  cr_assert_eq(mps_process_detach(p), 0);
  cr_expect_eq(mps_process_detach(p), -EINVAL);
  cr_expect_eq(mps_process_free(p), -EINVAL);
  mps_shm *s = mps_shm_create(test_name((char[64]){0}, "shm"), 100);
  cr_assert_not_null(s);
  cr_assert_eq(mps_shm_close(s), 0);
  cr_expect_eq(mps_shm_close(s), -EINVAL);
  cr_expect_null(mps_shm_data(s));
  mps_unlink(test_name((char[64]){0}, "shm"));
  mps_array *arr = mps_array_new(MPS_INT, 4, true);
  cr_assert_not_null(arr);
  cr_assert_eq(mps_array_close(arr), 0);
  cr_expect_eq(mps_array_close(arr), -EINVAL);
  cr_expect_null(mps_array_get_lock(arr));
  assert_no_segments_left();
}

/* An owner word forged to name this very thread, with list links that
 * point nowhere: glibc's unlock would write through them. A release is
 * refused (-EPERM) instead, and nothing is written. */
Test(damage, an_owner_forged_to_this_thread_cannot_make_release_write, .timeout = 30)
{
  for (int recursive = 0; recursive < 2; recursive++) {
    const struct kind *k = &kinds[recursive];
    struct damaged d;
    damaged_open(&d, k);
    void *h = d.h;
    pthread_mutex_t *mu = d.mu;
    mu->__data.__lock = gettid();
    mu->__data.__owner = gettid();
    mu->__data.__count = 1;
    mu->__data.__list.__next = (void *)0x1000;
    mu->__data.__list.__prev = (void *)0x2000;
    int r = recursive ? mps_rlock_release(h) : mps_lock_release(h);
    cr_expect_eq(r, -EPERM, "%s release: %d", k->what, r);
    cr_expect_eq(mu->__data.__lock, gettid(), "%s: the lock word was left alone", k->what);
    memset(mu, 0, sizeof(*mu));
    damaged_close(&d);
  }
}

/* A kind damaged while this thread holds the lock: glibc would abort on
 * some kinds and release others without unlinking them from the thread's
 * robust list, so that the next lock of any robust mutex, after the
 * segment is closed, writes into unmapped memory (SIGSEGV). The release
 * is -EPROTO and still frees the lock and its list entry. */
Test(damage, a_kind_damaged_while_held_is_released_with_eproto, .timeout = 30)
{
  for (int recursive = 0; recursive < 2; recursive++) {
    const struct kind *k = &kinds[recursive];
    int kind = kind_of(recursive), bad[] = {kind | 0x40, kind | 0x20, kind ^ 0x10};
    for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
      struct damaged d;
      damaged_open(&d, k);
      void *h = d.h;
      pthread_mutex_t *mu = d.mu;
      cr_assert_eq(recursive ? mps_rlock_acquire(h, 0) : mps_lock_acquire(h, 0), 0);
      mu->__data.__kind = bad[b];
      int r = recursive ? mps_rlock_release(h) : mps_lock_release(h);
      cr_expect_eq(r, -EPROTO, "%s, kind 0x%x: release %d", k->what, bad[b], r);
      cr_expect_eq(mu->__data.__lock, 0, "%s, kind 0x%x: released", k->what, bad[b]);
      mps_lock *other = mps_lock_new(); /* made first: not where h's segment was */
      cr_assert_not_null(other);
      cr_assert_eq(k->close(h), 0);
      munmap(d.m.p, d.m.size);
      mps_unlink(d.name);
      /* Taking it links it beside any stale entry of h's, now unmapped. */
      cr_expect_eq(mps_lock_acquire(other, 0), 0);
      cr_expect_eq(mps_lock_release(other), 0);
      mps_lock_close(other);
    }
  }
}
