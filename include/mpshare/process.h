/* Process (multiprocessing.Process): run a function in a forked child.
 *
 * Life cycle: a handle is made with mps_process_new() (state "new"),
 * mps_process_start() forks the child ("started"), and the child is reaped by
 * mps_process_join(), mps_process_exitcode() or mps_process_is_alive() once it
 * has exited ("finished"). Misuse is an error, never undefined behaviour:
 * starting twice is -EINVAL, joining a process never started is -EINVAL, and
 * waiting for, signalling or reaping the child from any process other than
 * the one that started it is -ECHILD.
 *
 * The child runs target(arg), flushes every stdio stream and _exit()s with
 * target's return value (only its low 8 bits reach the parent, as with
 * exit()). atexit() handlers do not run in the child. Output buffered in the
 * parent is flushed before the fork, so it is never printed twice.
 *
 * Exit codes are reported as Python reports them: the target's return value
 * (0..255), or minus the signal number when the child was killed by a signal.
 *
 * Daemon children (opts.daemon) are killed with SIGKILL as soon as their
 * parent exits in any way: a return from main, exit(), _exit(), or a crash
 * or SIGKILL. Linux delivers this (PR_SET_PDEATHSIG) when the *thread* that
 * called mps_process_start() ends, so start daemons from a thread that lives
 * as long as the process (usually the main thread).
 *
 * Non-daemon children are left alone when the parent exits: nothing is
 * joined or signalled automatically (Python joins them from an atexit
 * handler; a C library that blocked in exit() would surprise more than it
 * helps). Join each one before exiting if you need them finished; an
 * unjoined child is reparented to init, which reaps it.
 *
 * Do not reap the children yourself (waitpid(-1, ...), a SIGCHLD handler
 * that reaps, or SIGCHLD set to SIG_IGN): the exit status would be lost and
 * the calls below would return -ECHILD.
 *
 * Threads: every call except mps_process_free() may be made on one handle
 * from several threads of the parent at once; concurrent joins all return
 * when the child exits and all see the same exit code. As with any fork()
 * in a multi-threaded program, the child has only the thread that called
 * mps_process_start(); keep the target to code that does not need locks
 * other threads might have held at the fork.
 */
#ifndef MPSHARE_PROCESS_H
#define MPSHARE_PROCESS_H

#include <mpshare/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mps_process mps_process;

/* Options for mps_process_new(); a zeroed struct (or NULL) gives the
 * defaults. */
typedef struct mps_process_opts {
  const char *name; /* NULL: "Process-N", N counting from 1 in this process */
  bool daemon;      /* killed (SIGKILL) when the parent exits */
  unsigned long long reserved[MPS_OPTS_RESERVED]; /* must be zero (see common.h) */
} mps_process_opts;

/* Makes a handle for a child that will run target(arg); nothing is forked
 * yet. The name is copied; arg is passed as is (the child sees the parent's
 * memory as it was at the fork). opts may be NULL.
 * Returns: the handle, in state "new".
 * Errors: NULL with errno EINVAL (target NULL, a non-zero reserved word in
 * opts), ENOMEM.
 * Owns: the caller owns the handle (mps_process_free or
 * mps_process_detach); opts and its name stay the caller's. */
MPS_API mps_process *mps_process_new(int (*target)(void *arg), void *arg,
                                     const mps_process_opts *opts);

/* Forks the child.
 * Returns: 0 in the parent (the child never returns from here).
 * Errors: -EINVAL (NULL, or already started), -EAGAIN or -ENOMEM (fork
 * failed; the handle stays "new" and may be started again). */
MPS_API MPS_NODISCARD int mps_process_start(mps_process *p);

/* Waits at most `timeout` seconds for the child to exit, and reaps it. The
 * wait sleeps in the kernel (pidfd + poll); it does not poll repeatedly
 * except on kernels older than 5.3, where a timed join checks with a
 * backoff of at most 20 ms.
 * Returns: 0 (also when joining a finished child again).
 * Errors: -ETIMEDOUT, -EAGAIN (timeout 0 and still running), -EINVAL
 * (NULL, NaN timeout, never started), -ECHILD (the caller is not the
 * process that started it, or the child was reaped behind our back). */
MPS_API MPS_NODISCARD int mps_process_join(mps_process *p, double timeout);

/* Stores the child's exit code in *code: the target's return value (0..255)
 * or -signal when a signal killed it. Reaps the child if it has exited.
 * Returns: 0.
 * Errors: -EAGAIN (still running; *code untouched), -EINVAL (NULL argument
 * or never started), -ECHILD (as for join). */
MPS_API MPS_NODISCARD int mps_process_exitcode(mps_process *p, int *code);

/* Whether the child is started and has not exited; reaps it if it has.
 * Returns: the state; false for NULL or a never started handle.
 * Errors: false with errno ECHILD when called from a process other than
 * the parent. */
MPS_API bool mps_process_is_alive(mps_process *p);

/* The child's pid. Stays valid after the child is reaped (the number may
 * then be reused by the system). Inside the child, the pid of the child
 * itself.
 * Returns: the pid; 0 before the start, and 0 for NULL.
 * Errors: none. */
MPS_API pid_t mps_process_pid(const mps_process *p);

/* The name.
 * Returns: the name; NULL for NULL (errno untouched).
 * Errors: none.
 * Owns: the handle owns it: valid until mps_process_free(). */
MPS_API const char *mps_process_name(const mps_process *p);

/* Whether the handle was made with opts.daemon.
 * Returns: the flag; false for NULL.
 * Errors: none. */
MPS_API bool mps_process_daemon(const mps_process *p);

/* Sends SIGTERM (terminate) or SIGKILL (kill) to the child. Harmless once
 * the child has exited: nothing is sent (an exited child is not reaped
 * until joined, so its pid cannot have been reused).
 * Returns: 0.
 * Errors: -EINVAL (NULL or never started), -ECHILD (not the parent). */
MPS_API int mps_process_terminate(mps_process *p);
MPS_API int mps_process_kill(mps_process *p);

/* A descriptor that becomes readable (POLLIN) when the child exits, for
 * the caller's poll()/epoll loop (Python's Process.sentinel): the child's
 * pidfd. After it polls readable, mps_process_join(p, 0) reaps the child.
 * Returns: the descriptor.
 * Errors: -ENOSYS (no pidfd on this system: Linux < 5.3, or refused by
 * seccomp; use a timed join), -EINVAL (NULL or never started), -ECHILD
 * (not the parent).
 * Owns: the handle owns the descriptor: do not close or read it; it stays
 * valid until the handle is released. */
MPS_API MPS_NODISCARD int mps_process_sentinel(const mps_process *p);

/* Releases the handle without waiting for the child, which goes on
 * running: for a daemon meant to live as long as this process (it is still
 * killed when this process exits). A child that already exited is reaped;
 * one that exits later is not (nobody holds its handle), so it stays a
 * zombie until this process exits: detach only children that live that
 * long.
 * Returns: 0; 0 for NULL.
 * Errors: -EINVAL (a handle already freed or detached).
 * Owns: p is freed. */
MPS_API int mps_process_detach(mps_process *p);

/* Releases the handle. In the parent, a child that has exited is reaped,
 * and one that is still running is not touched (join, or terminate then
 * join, first). In any other process (a child that inherited the handle
 * through fork) it only releases memory.
 * Returns: 0; 0 for NULL.
 * Errors: -EBUSY (the child still runs), -EINVAL (a handle freed
 * already).
 * Owns: p is freed, except on -EBUSY: the handle then stays valid. */
MPS_API int mps_process_free(mps_process *p);

#ifdef __cplusplus
}
#endif
#endif
