/* Process: life cycle and its misuse, exit codes and signals as Python
 * reports them, join timeouts, calls from a process that is not the parent,
 * stdio flushing, threads sharing a handle, and daemon children killed when
 * their parent dies (the test process adopts the orphans as a subreaper so
 * that it can reap them and assert how they ended). */
#include <math.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "helpers.h"

static int gate[2]; /* children block reading gate[0] until gate[1] closes */

static void gate_open(void) { cr_assert_eq(pipe(gate), 0); }

static int return_arg(void *arg) { return *(int *)arg; }

/* Blocks until the parent closes the write end, then returns 3. */
static int wait_gate(void *arg)
{
  (void)arg;
  char c;
  close(gate[1]);
  while (read(gate[0], &c, 1) < 0 && errno == EINTR)
    ;
  return 3;
}

static int raise_arg(void *arg)
{
  raise(*(int *)arg);
  return 100;
}

Test(process, life_cycle_and_misuse, .timeout = 20)
{
  int v = 42, code = -1;
  mps_process *p = mps_process_new(return_arg, &v, NULL);
  cr_assert_not_null(p);
  cr_assert_eq(mps_process_pid(p), 0);
  cr_assert(!mps_process_is_alive(p));
  cr_assert_eq(mps_process_join(p, 1.0), -EINVAL);
  cr_assert_eq(mps_process_exitcode(p, &code), -EINVAL);
  cr_assert_eq(mps_process_terminate(p), -EINVAL);
  cr_assert_eq(mps_process_kill(p), -EINVAL);
  cr_assert_eq(mps_process_start(p), 0);
  cr_assert_gt(mps_process_pid(p), 0);
  cr_assert_eq(mps_process_start(p), -EINVAL);
  cr_assert_eq(mps_process_join(p, MPS_FOREVER), 0);
  cr_assert_eq(mps_process_exitcode(p, &code), 0);
  cr_assert_eq(code, 42);
  cr_assert(!mps_process_is_alive(p));
  cr_assert_eq(mps_process_join(p, 0), 0, "joining a finished child again");
  cr_assert_eq(mps_process_terminate(p), 0, "no-op once finished");
  cr_assert_eq(mps_process_start(p), -EINVAL, "no restart once finished");
  cr_assert_eq(mps_process_free(p), 0);
}

static void expect_code(int (*fn)(void *), int arg, int want)
{
  int code = 12345;
  mps_process *p = mps_process_new(fn, &arg, NULL);
  cr_assert_not_null(p);
  cr_assert_eq(mps_process_start(p), 0);
  cr_assert_eq(mps_process_join(p, 10.0), 0);
  cr_assert_eq(mps_process_exitcode(p, &code), 0);
  cr_assert_eq(code, want, "arg %d: exit code %d, expected %d", arg, code, want);
  cr_assert_eq(mps_process_free(p), 0);
}

Test(process, return_value_is_the_exit_code, .timeout = 20)
{
  expect_code(return_arg, 0, 0);
  expect_code(return_arg, 1, 1);
  expect_code(return_arg, 255, 255);
  expect_code(return_arg, 256 + 7, 7); /* only the low 8 bits, as with exit() */
}

Test(process, killed_by_signal_gives_minus_signal, .timeout = 20)
{
  expect_code(raise_arg, SIGKILL, -SIGKILL);
  expect_code(raise_arg, SIGTERM, -SIGTERM);
  expect_code(raise_arg, SIGUSR1, -SIGUSR1);
}

static void signal_blocked_child(int (*send)(mps_process *), int sig)
{
  gate_open();
  int code = 0;
  mps_process *p = mps_process_new(wait_gate, NULL, NULL);
  cr_assert_eq(mps_process_start(p), 0);
  close(gate[0]);
  cr_assert(mps_process_is_alive(p));
  cr_assert_eq(send(p), 0);
  cr_assert_eq(mps_process_join(p, 10.0), 0);
  cr_assert_eq(mps_process_exitcode(p, &code), 0);
  cr_assert_eq(code, -sig);
  cr_assert(!mps_process_is_alive(p));
  close(gate[1]);
  cr_assert_eq(mps_process_free(p), 0);
}

Test(process, terminate_sends_sigterm, .timeout = 20)
{
  signal_blocked_child(mps_process_terminate, SIGTERM);
}

Test(process, kill_sends_sigkill, .timeout = 20)
{
  signal_blocked_child(mps_process_kill, SIGKILL);
}

Test(process, join_times_out_while_alive, .timeout = 20)
{
  gate_open();
  int code = -1;
  mps_process *p = mps_process_new(wait_gate, NULL, NULL);
  cr_assert_eq(mps_process_start(p), 0);
  close(gate[0]);
  double t0 = test_now();
  cr_assert_eq(mps_process_join(p, 0.2), -ETIMEDOUT);
  cr_assert_geq(test_now() - t0, 0.2);
  cr_assert_eq(mps_process_join(p, 0), -EAGAIN);
  cr_assert_eq(mps_process_exitcode(p, &code), -EAGAIN);
  cr_assert_eq(code, -1, "untouched while alive");
  cr_assert(mps_process_is_alive(p));
  cr_assert_eq(mps_process_free(p), -EBUSY, "a running child is not freed");
  close(gate[1]);
  cr_assert_eq(mps_process_join(p, MPS_FOREVER), 0);
  cr_assert_eq(mps_process_exitcode(p, &code), 0);
  cr_assert_eq(code, 3);
  cr_assert_eq(mps_process_free(p), 0);
}

static mps_process *shared_p;

/* Runs in a sibling process that inherited shared_p through fork. */
static int not_the_parent(void *arg)
{
  pid_t want = *(pid_t *)arg;
  int code;
  if (mps_process_join(shared_p, 0) != -ECHILD)
    return 1;
  if (mps_process_exitcode(shared_p, &code) != -ECHILD)
    return 2;
  if (mps_process_terminate(shared_p) != -ECHILD || mps_process_kill(shared_p) != -ECHILD)
    return 3;
  errno = 0;
  if (mps_process_is_alive(shared_p) || errno != ECHILD)
    return 4;
  if (mps_process_pid(shared_p) != want)
    return 5;
  if (mps_process_start(shared_p) != -EINVAL)
    return 6;
  return mps_process_free(shared_p) == 0 ? 0 : 7;
}

Test(process, calls_from_another_process_give_echild, .timeout = 20)
{
  gate_open();
  shared_p = mps_process_new(wait_gate, NULL, NULL);
  cr_assert_eq(mps_process_start(shared_p), 0);
  close(gate[0]);
  pid_t want = mps_process_pid(shared_p);
  child_expect_exit(child_run(not_the_parent, &want), 0);
  cr_assert(mps_process_is_alive(shared_p), "the sibling's calls did not touch it");
  close(gate[1]);
  cr_assert_eq(mps_process_join(shared_p, 10.0), 0);
  cr_assert_eq(mps_process_free(shared_p), 0);
}

/* Runs as the child of shared_p itself. */
static int inside_the_child(void *arg)
{
  (void)arg;
  if (mps_process_pid(shared_p) != getpid())
    return 1;
  if (mps_process_join(shared_p, 0) != -ECHILD)
    return 2;
  if (strcmp(mps_process_name(shared_p), "inner") != 0)
    return 3;
  return 0;
}

Test(process, the_child_sees_its_own_handle, .timeout = 20)
{
  int code = -1;
  shared_p = mps_process_new(inside_the_child, NULL, &(mps_process_opts){.name = "inner"});
  cr_assert_eq(mps_process_start(shared_p), 0);
  cr_assert_eq(mps_process_join(shared_p, 10.0), 0);
  cr_assert_eq(mps_process_exitcode(shared_p, &code), 0);
  cr_assert_eq(code, 0, "check %d failed in the child", code);
  cr_assert_eq(mps_process_free(shared_p), 0);
}

Test(process, names, .timeout = 20)
{
  int v = 0;
  unsigned a, b;
  mps_process *p = mps_process_new(return_arg, &v, NULL);
  mps_process *q = mps_process_new(return_arg, &v, &(mps_process_opts){0});
  cr_assert_eq(sscanf(mps_process_name(p), "Process-%u", &a), 1, "%s", mps_process_name(p));
  cr_assert_eq(sscanf(mps_process_name(q), "Process-%u", &b), 1, "%s", mps_process_name(q));
  cr_assert_eq(b, a + 1);
  char name[] = "worker";
  mps_process *r =
      mps_process_new(return_arg, &v, &(mps_process_opts){.name = name, .daemon = true});
  name[0] = 'W';
  cr_assert_str_eq(mps_process_name(r), "worker", "the name is copied");
  cr_assert(mps_process_daemon(r));
  cr_assert(!mps_process_daemon(p));
  cr_assert_eq(mps_process_free(p), 0);
  cr_assert_eq(mps_process_free(q), 0);
  cr_assert_eq(mps_process_free(r), 0);
}

Test(process, bad_arguments, .timeout = 20)
{
  int v = 0, code;
  errno = 0;
  cr_assert_null(mps_process_new(NULL, NULL, NULL));
  cr_assert_eq(errno, EINVAL);
  cr_assert_eq(mps_process_start(NULL), -EINVAL);
  cr_assert_eq(mps_process_join(NULL, 1.0), -EINVAL);
  cr_assert_eq(mps_process_exitcode(NULL, &code), -EINVAL);
  cr_assert_eq(mps_process_terminate(NULL), -EINVAL);
  cr_assert_eq(mps_process_kill(NULL), -EINVAL);
  cr_assert(!mps_process_is_alive(NULL));
  cr_assert(!mps_process_daemon(NULL));
  cr_assert_eq(mps_process_pid(NULL), 0, "NULL is nothing, never a negative pid");
  errno = 0;
  cr_assert_null(mps_process_name(NULL));
  cr_assert_eq(errno, 0, "getters leave errno alone");
  mps_process_opts bad = {.name = "x", .reserved = {[MPS_OPTS_RESERVED - 1] = 1}};
  cr_assert_null(mps_process_new(return_arg, &v, &bad));
  cr_assert_eq(errno, EINVAL, "a non-zero reserved word is refused");
  cr_assert_eq(mps_process_free(NULL), 0);
  mps_process *p = mps_process_new(return_arg, &v, NULL);
  cr_assert_eq(mps_process_start(p), 0);
  cr_assert_eq(mps_process_join(p, NAN), -EINVAL);
  cr_assert_eq(mps_process_exitcode(p, NULL), -EINVAL);
  cr_assert_eq(mps_process_join(p, 10.0), 0);
  cr_assert_eq(mps_process_free(p), 0);
}

static FILE *out;

static int print_unflushed(void *arg)
{
  (void)arg;
  fputs("child;", out); /* left in the buffer: the library flushes it */
  return 0;
}

Test(process, stdio_is_flushed_once, .timeout = 20)
{
  char buf[64] = {0};
  out = tmpfile();
  cr_assert_not_null(out);
  fputs("parent;", out); /* buffered at start(): must not be written twice */
  mps_process *p = mps_process_new(print_unflushed, NULL, NULL);
  cr_assert_eq(mps_process_start(p), 0);
  cr_assert_eq(mps_process_join(p, 10.0), 0);
  fflush(out);
  rewind(out);
  cr_assert_gt(fread(buf, 1, sizeof(buf) - 1, out), 0);
  cr_assert_str_eq(buf, "parent;child;");
  fclose(out);
  cr_assert_eq(mps_process_free(p), 0);
}

struct joiner {
  mps_process *p;
  int join, code;
};

static void *join_thread(void *arg)
{
  struct joiner *j = arg;
  j->join = mps_process_join(j->p, 10.0);
  if (mps_process_exitcode(j->p, &j->code) != 0)
    j->code = -1000;
  return NULL;
}

Test(process, threads_join_one_handle_together, .timeout = 20)
{
  gate_open();
  mps_process *p = mps_process_new(wait_gate, NULL, NULL);
  cr_assert_eq(mps_process_start(p), 0);
  close(gate[0]);
  struct joiner j[3];
  pthread_t t[3];
  for (int i = 0; i < 3; i++) {
    j[i] = (struct joiner){.p = p, .join = 1, .code = -1};
    cr_assert_eq(pthread_create(&t[i], NULL, join_thread, &j[i]), 0);
  }
  close(gate[1]);
  for (int i = 0; i < 3; i++) {
    pthread_join(t[i], NULL);
    cr_assert_eq(j[i].join, 0, "thread %d", i);
    cr_assert_eq(j[i].code, 3, "thread %d", i);
  }
  cr_assert_eq(mps_process_free(p), 0);
}

/* ---- daemon children ----------------------------------------------------- */

enum parent_end { END_RETURN, END_EXIT, END_SIGKILL };

struct middle {
  bool daemon;
  enum parent_end end;
  int report; /* write end: the grandchild's pid goes here */
};

static int idle(void *arg)
{
  (void)arg;
  return wait_gate(NULL) + 2; /* 5: it outlived its parent */
}

/* The parent of the process under test: starts it, reports its pid, and
 * ends without joining it. */
static int middle_main(void *arg)
{
  struct middle *m = arg;
  mps_process *d = mps_process_new(idle, NULL, &(mps_process_opts){.daemon = m->daemon});
  if (d == NULL || mps_process_start(d) != 0)
    return 1;
  pid_t pid = mps_process_pid(d);
  if (write(m->report, &pid, sizeof(pid)) != (ssize_t)sizeof(pid))
    return 2;
  if (m->end == END_SIGKILL)
    raise(SIGKILL);
  if (m->end == END_EXIT)
    _exit(9);
  return 0;
}

/* Runs one parent ending; returns the orphan's pid, now our child. */
static pid_t orphan_of(bool daemon, enum parent_end end)
{
  int rep[2];
  cr_assert_eq(pipe(rep), 0);
  struct middle m = {.daemon = daemon, .end = end, .report = rep[1]};
  pid_t mid = child_run(middle_main, &m);
  close(rep[1]);
  pid_t pid = 0;
  cr_assert_eq(read(rep[0], &pid, sizeof(pid)), (ssize_t)sizeof(pid));
  close(rep[0]);
  if (end == END_SIGKILL)
    child_expect_signal(mid, SIGKILL);
  else
    child_expect_exit(mid, end == END_EXIT ? 9 : 0);
  return pid;
}

static void daemon_dies_with_parent(enum parent_end end, int rounds)
{
  gate_open();
  cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  /* Many rounds: the parent often dies before the child has set its death
   * signal, which is the race the getppid() check closes. */
  for (int i = 0; i < rounds; i++)
    child_expect_signal(orphan_of(true, end), SIGKILL);
  close(gate[0]);
  close(gate[1]);
}

Test(process, daemon_dies_when_parent_returns, .timeout = 30)
{
  daemon_dies_with_parent(END_RETURN, 20);
}

Test(process, daemon_dies_when_parent_exits, .timeout = 30)
{
  daemon_dies_with_parent(END_EXIT, 20);
}

Test(process, daemon_dies_when_parent_is_sigkilled, .timeout = 30)
{
  daemon_dies_with_parent(END_SIGKILL, 20);
}

Test(process, non_daemon_outlives_its_parent, .timeout = 20)
{
  gate_open();
  cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  pid_t pid = orphan_of(false, END_SIGKILL);
  close(gate[0]);
  close(gate[1]); /* only now may it finish, with 5 */
  child_expect_exit(pid, 5);
}

/* ---- without pidfds ----------------------------------------------------- */

static int count_pidfds(void)
{
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  cr_assert_not_null(d);
  struct dirent *e;
  char path[300], target[64];
  while ((e = readdir(d)) != NULL) {
    snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
    ssize_t len = readlink(path, target, sizeof(target) - 1);
    if (len > 0) {
      target[len] = 0;
      n += strstr(target, "pidfd") != NULL;
    }
  }
  closedir(d);
  return n;
}

/* Starts p with every descriptor slot taken, so that no pidfd can be
 * opened and the handle must use the waitid() fallback. */
static void start_without_pidfd(mps_process *p)
{
  int before = count_pidfds();
  struct rlimit old, low;
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
  low = old;
  low.rlim_cur = 64;
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
  int fds[64], n = 0;
  while (n < 64 && (fds[n] = dup(0)) >= 0)
    n++;
  cr_assert_eq(errno, EMFILE);
  cr_assert_eq(mps_process_start(p), 0);
  while (n > 0)
    close(fds[--n]);
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
  cr_assert_eq(count_pidfds(), before, "no pidfd could be opened");
}

Test(process, a_pidfd_is_used_when_available, .timeout = 20)
{
  int v = 0;
  mps_process *p = mps_process_new(return_arg, &v, NULL);
  int before = count_pidfds();
  cr_assert_eq(mps_process_start(p), 0);
  cr_assert_eq(count_pidfds(), before + 1);
  cr_assert_eq(mps_process_join(p, 10.0), 0);
  cr_assert_eq(mps_process_free(p), 0);
  cr_assert_eq(count_pidfds(), before, "closed by free");
}

Test(process, join_without_pidfd, .timeout = 20)
{
  gate_open();
  int code = 0;
  mps_process *p = mps_process_new(wait_gate, NULL, NULL);
  start_without_pidfd(p);
  close(gate[0]);
  double t0 = test_now();
  cr_assert_eq(mps_process_join(p, 0.2), -ETIMEDOUT);
  cr_assert_geq(test_now() - t0, 0.2);
  cr_assert_eq(mps_process_join(p, 0), -EAGAIN);
  cr_assert(mps_process_is_alive(p));
  close(gate[1]);
  cr_assert_eq(mps_process_join(p, MPS_FOREVER), 0);
  cr_assert_eq(mps_process_exitcode(p, &code), 0);
  cr_assert_eq(code, 3);
  cr_assert_eq(mps_process_free(p), 0);

  p = mps_process_new(wait_gate, NULL, NULL);
  gate_open();
  start_without_pidfd(p);
  close(gate[0]);
  cr_assert_eq(mps_process_kill(p), 0);
  cr_assert_eq(mps_process_join(p, 10.0), 0, "timed join sees the exit");
  cr_assert_eq(mps_process_exitcode(p, &code), 0);
  cr_assert_eq(code, -SIGKILL);
  close(gate[1]);
  cr_assert_eq(mps_process_free(p), 0);
}

/* ---- sentinel and detach ---------------------------------------------------- */

#include <poll.h>

static mps_process *sentinel_of;

static int sentinel_from_child(void *arg)
{
  (void)arg;
  return mps_process_sentinel(sentinel_of) == -ECHILD ? 0 : 1;
}

Test(process, the_sentinel_polls_readable_when_the_child_exits, .timeout = 20)
{
  gate_open();
  mps_process *p = mps_process_new(wait_gate, NULL, NULL);
  cr_assert_eq(mps_process_sentinel(p), -EINVAL, "not started");
  cr_assert_eq(mps_process_start(p), 0);
  close(gate[0]);
  int fd = mps_process_sentinel(p);
  cr_assert_geq(fd, 0);
  struct pollfd pf = {.fd = fd, .events = POLLIN};
  cr_assert_eq(poll(&pf, 1, 0), 0, "readable while the child runs");
  sentinel_of = p;
  child_expect_exit(child_run(sentinel_from_child, NULL), 0);
  close(gate[1]);
  cr_assert_eq(poll(&pf, 1, 10000), 1);
  cr_assert(pf.revents & POLLIN);
  cr_assert_eq(mps_process_join(p, 0), 0, "reaped at once once readable");
  cr_assert_eq(mps_process_free(p), 0);
  cr_assert_eq(mps_process_sentinel(NULL), -EINVAL);

  p = mps_process_new(wait_gate, NULL, NULL);
  gate_open();
  start_without_pidfd(p);
  close(gate[0]);
  cr_assert_eq(mps_process_sentinel(p), -ENOSYS);
  close(gate[1]);
  cr_assert_eq(mps_process_join(p, 10.0), 0);
  cr_assert_eq(mps_process_free(p), 0);
}

static int sleep_forever(void *arg)
{
  (void)arg;
  for (;;)
    pause();
  return 0;
}

Test(process, detach_drops_a_running_daemons_handle, .timeout = 20)
{
  int before = count_pidfds();
  mps_process *p = mps_process_new(sleep_forever, NULL, &(mps_process_opts){.daemon = true});
  cr_assert_eq(mps_process_start(p), 0);
  pid_t pid = mps_process_pid(p);
  cr_assert_eq(mps_process_free(p), -EBUSY, "free refuses a running child");
  cr_assert_eq(mps_process_detach(p), 0);
  cr_assert_eq(count_pidfds(), before, "its pidfd is closed");
  cr_assert_eq(kill(pid, 0), 0, "the child goes on");
  cr_assert_eq(kill(pid, SIGKILL), 0);
  child_expect_signal(pid, SIGKILL);
  cr_assert_eq(mps_process_detach(NULL), 0);

  int v = 4;
  p = mps_process_new(return_arg, &v, NULL);
  cr_assert_eq(mps_process_start(p), 0);
  pid = mps_process_pid(p);
  siginfo_t si;
  cr_assert_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
  cr_assert_eq(mps_process_detach(p), 0, "an exited child is reaped");
  errno = 0;
  cr_assert_eq(waitpid(pid, NULL, WNOHANG), -1);
  cr_assert_eq(errno, ECHILD);
}

/* ---- the example ---------------------------------------------------------- */

Test(process, example_process_workers, .timeout = 30)
{
  const char *dir = getenv("MPS_EXAMPLES_DIR");
  cr_assert_not_null(dir, "MPS_EXAMPLES_DIR is set by make check");
  char path[4096];
  snprintf(path, sizeof(path), "%s/process_workers", dir);
  cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  int o[2];
  cr_assert_eq(pipe(o), 0);
  fflush(NULL);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    dup2(o[1], 1);
    execl(path, path, (char *)NULL);
    _exit(127);
  }
  close(o[1]);
  FILE *f = fdopen(o[0], "r");
  char line[256];
  int dog = 0, lines = 0;
  while (fgets(line, sizeof(line), f) != NULL) {
    lines++;
    if (sscanf(line, "watchdog (pid %d) alive: yes", &dog) == 1)
      break;
  }
  fclose(f);
  child_expect_exit(pid, 0);
  cr_assert_eq(lines, 6, "4 workers, the sum, the watchdog");
  cr_assert_gt(dog, 0, "the watchdog was alive before main returned");
  child_expect_signal(dog, SIGKILL); /* killed when main returned */
}

Test(process, a_child_reaped_behind_our_back_gives_echild, .timeout = 20)
{
  int v = 4, code = 77;
  mps_process *p = mps_process_new(return_arg, &v, NULL);
  cr_assert_eq(mps_process_start(p), 0);
  child_expect_exit(mps_process_pid(p), 4); /* the caller reaps it itself */
  cr_assert_eq(mps_process_join(p, 10.0), -ECHILD);
  cr_assert_eq(mps_process_exitcode(p, &code), -ECHILD);
  cr_assert_eq(code, 77, "untouched: the exit code is unknown");
  cr_assert(!mps_process_is_alive(p));
  cr_assert_eq(mps_process_free(p), 0);
}
