/* A full /dev/shm gives ENOMEM at creation, never SIGBUS later.
 *
 * Each test forks a child that makes a private mount namespace and mounts
 * a small tmpfs over /dev/shm there (root only: otherwise the test is
 * skipped and says so), then creates objects until the space runs out.
 * Every object that was created is written in full, so a sparse segment
 * would kill the child with SIGBUS; the parent asserts a clean exit. */
#define _GNU_SOURCE
#include "helpers.h"

#include <sched.h>
#include <sys/mount.h>

#define TMPFS_KIB 512
#define SKIP      77

/* 0 if this child now has a TMPFS_KIB tmpfs of its own at /dev/shm. */
static int private_small_shm(void)
{
  if (unshare(CLONE_NEWNS) < 0)
    return SKIP;
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    return SKIP;
  char opts[32];
  snprintf(opts, sizeof(opts), "size=%dk,mode=1777", TMPFS_KIB);
  return mount("mps-test", "/dev/shm", "tmpfs", 0, opts) < 0 ? SKIP : 0;
}

static int shm_entries(void)
{
  DIR *d = opendir("/dev/shm");
  if (d == NULL)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

static void run_or_skip(int (*fn)(void *))
{
  pid_t pid = child_run(fn, NULL);
  int status = child_wait(pid);
  cr_assert(WIFEXITED(status), "child died (status 0x%x): a SIGBUS is the bug", status);
  if (WEXITSTATUS(status) == SKIP)
    cr_skip_test("needs root for a private tmpfs on /dev/shm (mount namespace)");
  cr_assert_eq(WEXITSTATUS(status), 0, "child check %d failed", WEXITSTATUS(status));
}

/* A queue bigger than the whole tmpfs: refused, nothing left behind. */
static int too_big(void *arg)
{
  (void)arg;
  int r = private_small_shm();
  if (r != 0)
    return r;
  mps_queue_opts o = {.maxsize = 64, .max_msg = 16384, .order = MPS_FIFO};
  char name[64];
  errno = 0;
  if (mps_queue_create(test_name(name, "big"), &o) != NULL || errno != ENOMEM)
    return 1;
  if (shm_entries() != 0)
    return 2;
  mps_lock *l = mps_lock_create(test_name(name, "small"));
  if (l == NULL || mps_lock_acquire(l, 0) != 0 || mps_lock_release(l) != 0)
    return 3;
  mps_lock_close(l);
  return mps_unlink(name) == 0 ? 0 : 4;
}

Test(shmfull, a_segment_larger_than_the_space_is_enomem, .timeout = 20) { run_or_skip(too_big); }

/* Fill the tmpfs with objects: each one created is usable in full; the
 * first that does not fit is ENOMEM, and so is a lock after it. */
static int fill(void *arg)
{
  (void)arg;
  int r = private_small_shm();
  if (r != 0)
    return r;
  char name[64], what[32];
  int made = 0;
  for (int i = 0; i < 200; i++) {
    snprintf(what, sizeof(what), "fill%d", i);
    mps_shm *s = mps_shm_create(test_name(name, what), 48 * 1024);
    if (s == NULL) {
      if (errno != ENOMEM)
        return 5;
      break;
    }
    memset(mps_shm_data(s), 0xa5, mps_shm_size(s)); /* SIGBUS if sparse */
    mps_shm_close(s);
    made++;
  }
  if (made == 0 || made == 200)
    return 6;
  int before = shm_entries();
  mps_queue_opts o = {.maxsize = 16, .max_msg = 4096, .order = MPS_PRIORITY};
  errno = 0;
  if (mps_queue_create(test_name(name, "q"), &o) != NULL || errno != ENOMEM)
    return 7;
  /* What is left may still hold a lock or not; either way no SIGBUS. */
  for (int i = 0; i < 64; i++) {
    snprintf(what, sizeof(what), "lock%d", i);
    mps_lock *l = mps_lock_create(test_name(name, what));
    if (l == NULL) {
      if (errno != ENOMEM)
        return 8;
      break;
    }
    if (mps_lock_acquire(l, 0) != 0 || mps_lock_release(l) != 0)
      return 9;
    mps_lock_close(l);
    before++;
  }
  return shm_entries() == before ? 0 : 10;
}

Test(shmfull, filling_dev_shm_gives_enomem_never_sigbus, .timeout = 30) { run_or_skip(fill); }
