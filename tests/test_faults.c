/* Failing system calls give the documented error and leak nothing; an
 * opener tells a creator that is still at work from one that died.
 *
 * Each case runs in a copy of this program exec'd with the fault shim
 * (tests/faultinj.c) preloaded: MPS_FAULT is set around one library call
 * only. The case itself checks its error, that it has as many descriptors
 * as before, that no segment of its name is left in /dev/shm, and that it
 * has no child left; its exit code says which check failed. */
#define _GNU_SOURCE
#include "helpers.h"

#include <dirent.h>
#include <sys/stat.h>

#define CASE_ENV "MPS_FAULT_CASE"

static int count_fds(void)
{
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  if (d == NULL)
    return -1;
  while (readdir(d) != NULL)
    n++;
  closedir(d);
  return n;
}

static bool shm_exists(const char *name)
{
  char path[128];
  struct stat st;
  snprintf(path, sizeof(path), "/dev/shm%s", name);
  return stat(path, &st) == 0;
}

static bool has_children(void) { return waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD; }

static void fault(const char *spec) { setenv("MPS_FAULT", spec, 1); }

static void no_fault(void) { unsetenv("MPS_FAULT"); }

/* A constructor failing under `spec`: NULL with errno `want`. */
#define EXPECT_NULL(spec, call, want)                                                              \
  do {                                                                                             \
    fault(spec);                                                                                   \
    errno = 0;                                                                                     \
    void *h_ = (void *)(call);                                                                     \
    int e_ = errno;                                                                                \
    no_fault();                                                                                    \
    if (h_ != NULL || e_ != (want))                                                                \
      return 10;                                                                                   \
  } while (0)

static int lock_create_ftruncate(const char *name)
{
  EXPECT_NULL("ftruncate", mps_lock_create(name), ENOMEM);
  return 0;
}

static int queue_create_fallocate(const char *name)
{
  mps_queue_opts o = {.maxsize = 64, .max_msg = 1024, .order = MPS_PRIORITY};
  EXPECT_NULL("posix_fallocate", mps_queue_create(name, &o), ENOMEM);
  return 0;
}

static int queue_create_mmap(const char *name)
{
  EXPECT_NULL("mmap", mps_queue_create(name, NULL), ENOMEM);
  return 0;
}

static int queue_new_mmap(const char *name)
{
  (void)name;
  EXPECT_NULL("mmap", mps_queue_new(NULL), ENOMEM);
  EXPECT_NULL("madvise", mps_queue_new(NULL), ENOMEM);
  return 0;
}

static int lock_open_mmap(const char *name)
{
  mps_lock *l = mps_lock_create(name);
  if (l == NULL)
    return 11;
  mps_lock_close(l);
  int fds = count_fds();
  EXPECT_NULL("mmap", mps_lock_open(name), ENOMEM);
  if (count_fds() != fds)
    return 12;
  return mps_unlink(name) == 0 ? 0 : 13;
}

static int pipe_socketpair(const char *name)
{
  (void)name;
  mps_conn *a = NULL, *b = NULL;
  fault("socketpair");
  int r = mps_pipe(&a, &b, true);
  no_fault();
  return r == -EMFILE && a == NULL && b == NULL ? 0 : 14;
}

static int child_target(void *arg)
{
  (void)arg;
  return 0;
}

static int process_fork(const char *name)
{
  (void)name;
  mps_process *p = mps_process_new(child_target, NULL, NULL);
  if (p == NULL)
    return 15;
  fault("fork");
  int r = mps_process_start(p);
  no_fault();
  if (r != -EAGAIN || mps_process_is_alive(p))
    return 16;
  return mps_process_free(p) == 0 ? 0 : 17;
}

/* The creator stops inside posix_fallocate, with the file made and not
 * published: a live creator (EAGAIN), then a dead one (EPROTO). */
static int being_created(const char *name)
{
  fflush(NULL);
  pid_t creator = fork();
  if (creator == 0) {
    fault("posix_fallocate:1:stop");
    _exit(mps_lock_create(name) == NULL ? 1 : 0);
  }
  int st;
  if (creator < 0 || waitpid(creator, &st, WUNTRACED) != creator || !WIFSTOPPED(st))
    return 18;
  errno = 0;
  if (mps_lock_open(name) != NULL || errno != EAGAIN)
    return 19;
  kill(creator, SIGKILL);
  waitpid(creator, &st, 0);
  errno = 0;
  if (mps_lock_open(name) != NULL || errno != EPROTO)
    return 20;
  return mps_unlink(name) == 0 ? 0 : 21;
}

static const struct fault_case {
  const char *name;
  int (*fn)(const char *);
} cases[] = {
    {"lock_create_ftruncate", lock_create_ftruncate},
    {"queue_create_fallocate", queue_create_fallocate},
    {"queue_create_mmap", queue_create_mmap},
    {"queue_new_mmap", queue_new_mmap},
    {"lock_open_mmap", lock_open_mmap},
    {"pipe_socketpair", pipe_socketpair},
    {"process_fork", process_fork},
    {"being_created", being_created},
};

/* The exec'd copy: runs one case before Criterion starts. */
__attribute__((constructor)) static void fault_case_main(void)
{
  const char *which = getenv(CASE_ENV);
  if (which == NULL)
    return;
  unsetenv("LD_PRELOAD"); /* children of the case need no shim */
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    if (strcmp(cases[i].name, which) != 0)
      continue;
    char name[64];
    snprintf(name, sizeof(name), "/mps-test-fault-%d", (int)getpid());
    int fds = count_fds();
    int r = cases[i].fn(name);
    if (r == 0 && count_fds() != fds)
      r = 2; /* a descriptor leaked */
    if (r == 0 && shm_exists(name))
      r = 3; /* a segment was left */
    if (r == 0 && has_children())
      r = 4; /* a child was left */
    _exit(r);
  }
  _exit(99);
}

/* Where the shim is: $MPS_FAULTINJ (make check), else beside the test. */
static void shim_path(char *out, size_t cap)
{
  const char *env = getenv("MPS_FAULTINJ");
  if (env != NULL) {
    snprintf(out, cap, "%s", env);
    return;
  }
  char self[512];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  cr_assert_gt(n, 0);
  self[n] = '\0';
  *strrchr(self, '/') = '\0';
  bool in_libs = strcmp(strrchr(self, '/'), "/.libs") == 0;
  snprintf(out, cap, "%s/%slibfaultinj.so", self, in_libs ? "" : ".libs/");
}

static void run_case(const char *which)
{
  char shim[600];
  shim_path(shim, sizeof(shim));
  cr_assert_eq(access(shim, R_OK), 0, "fault shim %s: %s", shim, strerror(errno));
  fflush(NULL);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    setenv("LD_PRELOAD", shim, 1);
    setenv(CASE_ENV, which, 1);
    /* Under AddressSanitizer the shim comes before its runtime. */
    const char *asan = getenv("ASAN_OPTIONS");
    char opts[512];
    snprintf(opts, sizeof(opts), "%s%sverify_asan_link_order=0", asan ? asan : "", asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    execl("/proc/self/exe", "test_faults", (char *)NULL);
    _exit(127);
  }
  child_expect_exit(pid, 0);
}

Test(faults, create_with_ftruncate_failing_is_enomem, .timeout = 20)
{
  run_case("lock_create_ftruncate");
}

Test(faults, create_with_fallocate_failing_is_enomem, .timeout = 20)
{
  run_case("queue_create_fallocate");
}

Test(faults, create_with_mmap_failing_is_enomem, .timeout = 20) { run_case("queue_create_mmap"); }

Test(faults, anonymous_with_mmap_or_madvise_failing_is_enomem, .timeout = 20)
{
  run_case("queue_new_mmap");
}

Test(faults, open_with_mmap_failing_is_enomem, .timeout = 20) { run_case("lock_open_mmap"); }

Test(faults, pipe_with_socketpair_failing_is_emfile, .timeout = 20) { run_case("pipe_socketpair"); }

Test(faults, process_with_fork_failing_is_eagain, .timeout = 20) { run_case("process_fork"); }

Test(faults, being_created_is_eagain_and_a_dead_creator_eproto, .timeout = 20)
{
  run_case("being_created");
}
