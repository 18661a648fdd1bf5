/* The pool across hosts against a real redis-server: worker hosts are
 * processes running mps_pool_serve, each with its own local pool; the
 * test process submits. Killed workers, killed and stopped hosts,
 * at-most-once, unknown task names.
 *
 * A host is this program run again (fork, then exec of /proc/self/exe
 * with MPS_TEST_HOST set: host_main serves from a constructor, before
 * Criterion's main). A child forked from a threaded process may only make
 * async-signal-safe calls until it execs, and the test process has
 * threads: Criterion's own (it sends each assertion's result) and, once
 * connected, the pool's collector. glibc's malloc survives such a fork;
 * AddressSanitizer's allocator (GCC 12) does not take its locks around
 * fork(), and a host that ran on in the forked copy hung for ever in
 * malloc when another thread had held the lock (make check-sanitize, one
 * run in a few). A host that must start later waits on a pipe before its
 * exec. The hosts serve once they are consumers of the task queue: the
 * test waits for that before it connects, so that no host comes after the
 * end and makes the queue again. */
#include "redis_helpers.h"

#include <mpshare.h>

TestSuite(pool_remote, .init = redis_up, .fini = redis_down, .timeout = 60);

static char url[256];
static int started_fd = -1; /* slow_task writes a byte here when it starts */
static bool block_here;     /* set in one host only: its slow_task never ends */

static ssize_t twice(const void *arg, size_t len, void *out, size_t cap)
{
  int i;
  if (len != sizeof(i) || cap < sizeof(i))
    return -EINVAL;
  memcpy(&i, arg, sizeof(i));
  i *= 2;
  memcpy(out, &i, sizeof(i));
  return sizeof(i);
}

static ssize_t crash(const void *arg, size_t len, void *out, size_t cap)
{
  (void)arg, (void)len, (void)out, (void)cap;
  raise(SIGKILL);
  return 0;
}

static ssize_t slow_task(const void *arg, size_t len, void *out, size_t cap)
{
  (void)arg, (void)len, (void)cap;
  if (block_here) {
    if (write(started_fd, "s", 1) != 1)
      return -EIO;
    for (;;)
      pause(); /* its host is killed or stopped meanwhile */
  }
  memcpy(out, "ok", 2);
  return 2;
}

static ssize_t unregistered(const void *arg, size_t len, void *out, size_t cap)
{
  (void)arg, (void)len, (void)out, (void)cap;
  return 0;
}

static int register_tasks(void)
{
  int r = mps_task_register("twice", twice);
  if (r == 0)
    r = mps_task_register("crash", crash);
  return r == 0 ? mps_task_register("slow", slow_task) : r;
}

static void register_all(void) { cr_assert_eq(register_tasks(), 0); }

/* A host: MPS_TEST_HOST is the URL it serves; with MPS_TEST_STARTED_FD its
 * slow_task writes a byte on that descriptor and never ends. */
__attribute__((constructor)) static void host_main(void)
{
  const char *u = getenv("MPS_TEST_HOST"), *fd = getenv("MPS_TEST_STARTED_FD");
  if (u == NULL)
    return;
  snprintf(url, sizeof(url), "%s", u);
  block_here = fd != NULL;
  started_fd = fd != NULL ? atoi(fd) : -1;
  mps_remote_opts o = {.workers = 2};
  int r = register_tasks();
  if (r == 0)
    r = mps_pool_serve(url, &o);
  _exit(r == 0 ? 0 : 100 + (-r & 0x3f));
}

/* What the host's exec gets, made before the fork (the child only execs). */
static struct {
  char host[300], fd[48];
  char **envp;
} host_env;

static void host_env_make(bool blocking)
{
  extern char **environ;
  size_t n = 0;
  while (environ[n] != NULL)
    n++;
  free(host_env.envp);
  host_env.envp = calloc(n + 3, sizeof(char *));
  cr_assert_not_null(host_env.envp);
  memcpy(host_env.envp, environ, n * sizeof(char *));
  snprintf(host_env.host, sizeof(host_env.host), "MPS_TEST_HOST=%s", url);
  snprintf(host_env.fd, sizeof(host_env.fd), "MPS_TEST_STARTED_FD=%d", started_fd);
  host_env.envp[n++] = host_env.host;
  if (blocking)
    host_env.envp[n++] = host_env.fd;
}

static int exec_host(void *arg)
{
  (void)arg;
  char *argv[] = {"test_pool_remote-host", NULL};
  execve("/proc/self/exe", argv, host_env.envp);
  return 127;
}

/* Starts a host of url (blocking: its slow_task never ends). */
static pid_t start_host(bool blocking)
{
  host_env_make(blocking);
  return child_run(exec_host, NULL);
}

static int gate_fd = -1; /* gated_host reads a byte here before it serves */

static int gated_host(void *arg)
{
  (void)arg;
  char c;
  if (read(gate_fd, &c, 1) != 1)
    return 99;
  return exec_host(NULL);
}

/* Waits until n handles are consumers of the task queue at url (each
 * host's and the test's own count once they have opened it). */
static void wait_consumers(int n)
{
  char cmd[300], reply[64] = "", want[16];
  const char *name = strrchr(url, '/') + 1;
  snprintf(cmd, sizeof(cmd), "XINFO CONSUMERS %.*s:stream mps", (int)strcspn(name, "?"), name);
  snprintf(want, sizeof(want), "*%d", n);
  for (double end = test_now() + 30; test_now() < end;) {
    if (redis_raw(srv.port, cmd, reply, sizeof(reply)) == 0 && strcmp(reply, want) == 0)
      return;
    struct timespec t = {0, 1000000};
    nanosleep(&t, NULL);
  }
  cr_assert_fail("%d consumers of %s expected, the server says %s", n, url, reply);
}

static int get_int(mps_future *f)
{
  int v = -1;
  ssize_t value = 0;
  int r = mps_future_result(f, &value, &v, sizeof(v), 20);
  cr_assert_eq(r, 0, "result: %s", mps_strerror(r));
  cr_assert_eq(value, (ssize_t)sizeof(v));
  return v;
}

Test(pool_remote, two_hosts_run_every_task)
{
  register_all();
  rurl(url, "pool", "");
  pid_t h[2] = {start_host(false), start_host(false)};
  wait_consumers(2);
  mps_pool *p = mps_pool_connect(url, NULL);
  cr_assert_not_null(p, "%s", strerror(errno));
  mps_future *fs[100];
  for (int i = 0; i < 100; i++) {
    fs[i] = mps_pool_submit(p, twice, &i, sizeof(i));
    cr_assert_not_null(fs[i]);
  }
  for (int i = 0; i < 100; i++) {
    cr_expect_eq(get_int(fs[i]), 2 * i);
    mps_future_free(fs[i]);
  }
  int args[8] = {0, 1, 2, 3, 4, 5, 6, 7}, res[8];
  ssize_t vals[8];
  cr_expect_eq(mps_pool_map(p, twice, args, 8, sizeof(int), res, sizeof(int), vals, NULL, 20), 0);
  for (int i = 0; i < 8; i++)
    cr_expect_eq(res[i], 2 * i);
  mps_future *unk = mps_pool_submit_named(p, "no-such-task", NULL, 0);
  cr_assert_not_null(unk);
  cr_expect_eq(mps_future_result(unk, NULL, NULL, 0, 20), -ENOSYS);
  cr_expect_eq(mps_future_cancel(unk), -EBUSY);
  mps_future_free(unk);
  errno = 0;
  cr_expect_null(mps_pool_submit(p, unregistered, NULL, 0)); /* not registered */
  cr_expect_eq(errno, EINVAL);
  mps_pool_free(p);
  cr_expect_eq(mps_unlink(url), 0); /* the hosts end when the queue goes */
  child_expect_exit(h[0], 0);
  child_expect_exit(h[1], 0);
}

Test(pool_remote, worker_crash_is_only_that_tasks_echild)
{
  register_all();
  rurl(url, "crash", "");
  pid_t h = start_host(false);
  wait_consumers(1);
  mps_pool *p = mps_pool_connect(url, NULL);
  cr_assert_not_null(p);
  mps_future *bad = mps_pool_submit_named(p, "crash", NULL, 0);
  int i = 21;
  mps_future *good = mps_pool_submit(p, twice, &i, sizeof(i));
  cr_expect_eq(mps_future_result(bad, NULL, NULL, 0, 20), -ECHILD);
  cr_expect_eq(get_int(good), 42);
  mps_future_free(bad);
  mps_future_free(good);
  mps_pool_free(p);
  cr_expect_eq(mps_unlink(url), 0);
  child_expect_exit(h, 0);
}

/* Host A takes the slow task and is killed (or stopped) while it runs;
 * host B, let in afterwards, gets the task after the lease. */
static void host_dies(bool at_most_once, int sig)
{
  register_all();
  rurl(url, "hostdies", "?lease=0.5");
  mps_remote_opts o = {.at_most_once = at_most_once};
  int fd[2], gate[2];
  cr_assert_eq(pipe(fd), 0);
  cr_assert_eq(pipe(gate), 0);
  started_fd = fd[1];
  gate_fd = gate[0];
  pid_t a = start_host(true);
  host_env_make(false);
  pid_t b = child_run(gated_host, NULL);
  wait_consumers(1);
  mps_pool *p = mps_pool_connect(url, &o);
  cr_assert_not_null(p);
  mps_future *f = mps_pool_submit_named(p, "slow", NULL, 0);
  cr_assert_not_null(f);
  pipe_get(fd[0]); /* host A's worker is running it */
  kill(a, sig);
  pipe_put(gate[1]); /* host B serves from now on */
  char out[8];
  ssize_t len = 0;
  int r = mps_future_result(f, &len, out, sizeof(out), 20);
  if (at_most_once) {
    cr_expect_eq(r, -ECHILD, "at most once: %s", mps_strerror(r));
  } else {
    cr_expect_eq(r, 0, "at least once: %s", mps_strerror(r));
    cr_expect_eq(len, 2);
    cr_expect_eq(memcmp(out, "ok", 2), 0);
  }
  mps_future_free(f);
  mps_pool_free(p);
  cr_expect_eq(mps_unlink(url), 0);
  child_expect_exit(b, 0);
  kill(a, SIGKILL);
  child_expect_signal(a, SIGKILL);
  close(fd[0]);
  close(fd[1]);
  close(gate[0]);
  close(gate[1]);
}

Test(pool_remote, killed_host_tasks_run_elsewhere) { host_dies(false, SIGKILL); }
Test(pool_remote, stopped_host_tasks_run_elsewhere) { host_dies(false, SIGSTOP); }
Test(pool_remote, at_most_once_fails_a_dead_hosts_task) { host_dies(true, SIGKILL); }

Test(pool_remote_args, bad_arguments)
{
  if (mps_task_register("twice", twice) == -ENOTSUP) {
    fprintf(stderr, "SKIP: mpshare was built without hiredis (--without-redis): "
                    "remote pool tests not run\n");
    cr_skip_test("built without the Redis backend");
  }
  cr_expect_eq(mps_task_register(NULL, twice), -EINVAL);
  cr_expect_eq(mps_task_register("", twice), -EINVAL);
  cr_expect_eq(mps_task_register("x", NULL), -EINVAL);
  cr_expect_null(mps_pool_connect("redis://", NULL));
  cr_expect(errno == EINVAL || errno == ENOTSUP);
  cr_expect_eq(mps_pool_serve("redis://h/a/b/c", NULL), errno == ENOTSUP ? -ENOTSUP : -EINVAL);
  mps_pool *local = mps_pool_new(1);
  cr_assert_not_null(local);
  cr_expect_null(mps_pool_submit_named(local, "twice", NULL, 0));
  mps_pool_free(local);
}

/* The example, as two hosts would run it: two `remote_pool serve`
 * processes, each connecting to the server, and one `remote_pool submit`. */
static int exec_server(void *arg)
{
  (void)arg;
  char prog[1024];
  snprintf(prog, sizeof(prog), "%s/remote_pool", getenv("MPS_EXAMPLES_DIR"));
  execl(prog, prog, "serve", url, "2", (char *)NULL);
  return 127;
}

Test(pool_remote, example_with_workers_in_two_processes)
{
  cr_assert_not_null(getenv("MPS_EXAMPLES_DIR"), "MPS_EXAMPLES_DIR is set by make check");
  rurl(url, "example", "");
  pid_t h[2] = {child_run(exec_server, NULL), child_run(exec_server, NULL)};
  /* Both hosts are in (each is a consumer of the task queue) before the
   * submitter starts: a host that came after its last task would start
   * the queue again and wait for tasks that never come. */
  wait_consumers(2);
  char out[4096];
  int status =
      run_example("remote_pool", (const char *[]){"submit", url, "10", NULL}, out, sizeof(out));
  cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x: %s", status, out);
  cr_expect_not_null(strstr(out, "process_data(0) = 0\n"), "%s", out);
  cr_expect_not_null(strstr(out, "process_data(9) = 18\n"), "%s", out);
  cr_expect_not_null(strstr(out, "done: 10 tasks\n"), "%s", out);
  child_expect_exit(h[0], 0);
  child_expect_exit(h[1], 0);
}

Test(pool_remote, terminate_without_hosts_fails_pending_futures)
{
  register_all();
  rurl(url, "nohost", "");
  mps_pool *p = mps_pool_connect(url, NULL);
  cr_assert_not_null(p);
  int i = 1;
  mps_future *f = mps_pool_submit(p, twice, &i, sizeof(i));
  cr_assert_not_null(f);
  cr_expect_eq(mps_future_result(f, NULL, NULL, 0, 0.2), -ETIMEDOUT); /* nobody serves */
  cr_expect_eq(mps_pool_terminate(p), 0);
  cr_expect_eq(mps_future_result(f, NULL, NULL, 0, 0), -ECANCELED);
  errno = 0;
  cr_expect_null(mps_pool_submit(p, twice, &i, sizeof(i)));
  cr_expect_eq(errno, EPIPE);
  mps_future_free(f);
  mps_pool_free(p);
  cr_expect_eq(mps_unlink(url), 0);
}
