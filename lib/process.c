/* Process: a forked child that runs target(arg), with Python's life cycle.
 * Forking and watching the child are spawn.c's (shared with the pool).
 *
 * A handle lives in the memory of the process that made it; nothing of it
 * is shared, so there is no shared layout. Its state moves new -> started
 * (mps_process_start forked the child) -> finished (the child was reaped
 * and its exit code recorded); it never moves back. Only the process that
 * started the child (`parent`) may wait for it, signal it or reap it: that
 * is the only process for which the pid is guaranteed not to be reused
 * before it is reaped. A process-local mutex makes the state changes safe
 * between threads; nobody holds it while sleeping.
 *
 * Waiting: after fork the parent opens a pidfd for the child, which becomes
 * readable when the child exits, so a join with a timeout is one ppoll()
 * without busy polling. The pidfd is only slept on, never used to reap, and
 * is kept open until mps_process_free(), so a thread still polling it never
 * sees the number closed and reused under it. Without pidfds (Linux < 5.3)
 * an untimed join sleeps in waitid(WNOWAIT) and a timed one checks with a
 * growing backoff. Reaping itself is always waitpid(WNOHANG) under the mutex,
 * so two threads never race to reap.
 *
 * Crash semantics: a daemon child asks for SIGKILL when its parent thread
 * dies (PR_SET_PDEATHSIG), then compares getppid() with the parent's pid
 * recorded before the fork: if the parent died before the request was
 * made, the child kills itself, as the death signal would have. A
 * non-daemon child outlives its parent and is reaped by init.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

enum proc_state { PROC_NEW, PROC_STARTED, PROC_FINISHED };

struct mps_process {
  pthread_mutex_t mu; /* process-local: state changes, reaping, signals */
  int (*target)(void *);
  void *arg;
  char *name;
  bool daemon;
  _Atomic int state;
  _Atomic pid_t pid;
  _Atomic pid_t parent; /* getpid() of the starter; 0 before start */
  int pidfd;            /* -1: not started, or no pidfd support */
  int exitcode;         /* valid once finished, unless lost */
  bool lost;            /* reaped by someone else: exit code unknown */
  uint32_t magic;       /* MPS__LIVE until freed (internal.h) */
};

static _Atomic unsigned process_counter;

mps_process *mps_process_new(int (*target)(void *), void *arg, const mps_process_opts *opts)
{
  if (target == NULL || (opts != NULL && !mps__reserved_zero(opts->reserved)))
    return mps__fail(-EINVAL);
  mps_process *p = calloc(1, sizeof(*p));
  if (p == NULL)
    return mps__fail(-ENOMEM);
  if (opts != NULL && opts->name != NULL) {
    p->name = strdup(opts->name);
  } else {
    char buf[32];
    snprintf(buf, sizeof(buf), "Process-%u", atomic_fetch_add(&process_counter, 1) + 1);
    p->name = strdup(buf);
  }
  if (p->name == NULL) {
    free(p);
    return mps__fail(-ENOMEM);
  }
  pthread_mutex_init(&p->mu, NULL);
  p->target = target;
  p->arg = arg;
  p->daemon = opts != NULL && opts->daemon;
  p->pidfd = -1;
  atomic_init(&p->state, PROC_NEW);
  p->magic = MPS__LIVE;
  return p;
}

/* The child's side of mps_process_start(); never returns. */
static _Noreturn void child_main(mps_process *p, pid_t parent)
{
  /* The parent held the mutex across fork(); this copy is ours alone. */
  pthread_mutex_init(&p->mu, NULL);
  atomic_store(&p->pid, getpid());
  /* Started, by another process: calls on this copy from here give -ECHILD. */
  atomic_store(&p->parent, parent);
  atomic_store(&p->state, PROC_STARTED);
  int rc = p->target(p->arg);
  fflush(NULL);
  _exit(rc);
}

int mps_process_start(mps_process *p)
{
  if (!MPS__OPEN(p))
    return -EINVAL;
  int err = -EINVAL;
  pthread_mutex_lock(&p->mu);
  if (atomic_load(&p->state) != PROC_NEW)
    goto out;
  pid_t self = getpid();
  /* Flush first, or the child would print the parent's buffered output a
   * second time when it flushes. */
  fflush(NULL);
  pid_t pid = mps__fork(p->daemon);
  if (pid < 0) {
    err = pid;
    goto out;
  }
  if (pid == 0)
    child_main(p, self);
  int fd = mps__pidfd_open(pid);
  p->pidfd = fd >= 0 ? fd : -1;
  atomic_store(&p->pid, pid);
  atomic_store(&p->parent, self);
  atomic_store(&p->state, PROC_STARTED);
  err = 0;
out:
  pthread_mutex_unlock(&p->mu);
  return err;
}

/* 0 if the caller may wait for, signal and reap p's child. */
static int check_parent(const mps_process *p)
{
  if (atomic_load(&p->state) == PROC_NEW)
    return -EINVAL;
  if (atomic_load(&p->parent) != getpid())
    return -ECHILD;
  return 0;
}

static int status_code(int status)
{
  return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
}

/* Reaps the child if it has exited. 0 (finished), -EAGAIN (running) or
 * -ECHILD (someone else reaped it). */
static int try_reap(mps_process *p)
{
  int err = 0, status;
  pthread_mutex_lock(&p->mu);
  while (atomic_load(&p->state) == PROC_STARTED) {
    pid_t r = waitpid(atomic_load(&p->pid), &status, WNOHANG);
    if (r < 0 && errno == EINTR)
      continue;
    if (r == 0) {
      err = -EAGAIN;
      break;
    }
    p->lost = r < 0;
    p->exitcode = r < 0 ? 0 : status_code(status);
    atomic_store(&p->state, PROC_FINISHED);
  }
  if (err == 0 && p->lost)
    err = -ECHILD;
  pthread_mutex_unlock(&p->mu);
  return err;
}

int mps_process_join(mps_process *p, double timeout)
{
  if (!MPS__OPEN(p))
    return -EINVAL;
  mps__deadline d;
  int err = mps__deadline_init(&d, timeout);
  if (err == 0)
    err = check_parent(p);
  if (err < 0)
    return err;
  /* The pidfd may report the exit a moment before waitpid() can reap it:
   * loop, with the deadline fixed once above. */
  for (;;) {
    err = try_reap(p);
    if (err != -EAGAIN || d.kind == MPS__ONCE)
      return err;
    int w = mps__child_wait_exit(atomic_load(&p->pid), p->pidfd, &d);
    if (w < 0) {
      err = try_reap(p);
      return err == -EAGAIN ? w : err;
    }
  }
}

int mps_process_exitcode(mps_process *p, int *code)
{
  if (!MPS__OPEN(p) || code == NULL)
    return -EINVAL;
  int err = check_parent(p);
  if (err == 0)
    err = try_reap(p);
  if (err == 0)
    *code = p->exitcode; /* immutable once finished */
  return err;
}

bool mps_process_is_alive(mps_process *p)
{
  if (!MPS__OPEN(p))
    return false;
  int err = check_parent(p);
  if (err == -ECHILD)
    errno = ECHILD;
  return err == 0 && try_reap(p) == -EAGAIN;
}

pid_t mps_process_pid(const mps_process *p) { return !MPS__OPEN(p) ? 0 : atomic_load(&p->pid); }

const char *mps_process_name(const mps_process *p) { return !MPS__OPEN(p) ? NULL : p->name; }

bool mps_process_daemon(const mps_process *p) { return MPS__OPEN(p) && p->daemon; }

static int send_signal(mps_process *p, int sig)
{
  if (!MPS__OPEN(p))
    return -EINVAL;
  int err = check_parent(p);
  if (err < 0)
    return err;
  /* Under the mutex nobody in this process reaps the child, so an unreaped
   * pid is still our child's (a zombie at worst, which ignores signals). */
  pthread_mutex_lock(&p->mu);
  if (atomic_load(&p->state) == PROC_STARTED && kill(atomic_load(&p->pid), sig) < 0)
    err = -errno;
  pthread_mutex_unlock(&p->mu);
  return err;
}

int mps_process_terminate(mps_process *p) { return send_signal(p, SIGTERM); }

int mps_process_kill(mps_process *p) { return send_signal(p, SIGKILL); }

int mps_process_sentinel(const mps_process *p)
{
  if (p == NULL)
    return -EINVAL;
  int err = check_parent(p);
  if (err < 0)
    return err;
  return p->pidfd >= 0 ? p->pidfd : -ENOSYS;
}

/* Poisons and frees the handle: a later call or a second release sees
 * the magic and returns -EINVAL. In a forked copy the pidfd number is an
 * inherited descriptor of this process, so closing it is right there too. */
static void process_release(mps_process *p)
{
  p->magic = MPS__DEAD;
  if (p->pidfd >= 0)
    close(p->pidfd);
  pthread_mutex_destroy(&p->mu);
  free(p->name);
  free(p);
}

int mps_process_detach(mps_process *p)
{
  if (p == NULL)
    return 0;
  if (!MPS__OPEN(p))
    return -EINVAL;
  /* Whatever the state: a running child is left alone (a daemon still
   * dies with this process), a finished one was reaped already. */
  if (check_parent(p) == 0)
    (void)try_reap(p);
  process_release(p);
  return 0;
}

int mps_process_free(mps_process *p)
{
  if (p == NULL)
    return 0;
  if (!MPS__OPEN(p))
    return -EINVAL;
  if (check_parent(p) == 0 && try_reap(p) == -EAGAIN)
    return -EBUSY;
  process_release(p);
  return 0;
}
