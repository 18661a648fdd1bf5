/* Process pool with futures (concurrent.futures.ProcessPoolExecutor and
 * multiprocessing.Pool) for C functions run in forked workers.
 *
 * A pool forks `workers` processes of the same program. mps_pool_submit()
 * copies the task's argument bytes into a worker's inbox (a queue in shared
 * memory that only that worker consumes) and returns a future; the worker
 * runs fn(arg, len, out, cap) and its result bytes come back through the
 * result queue. Maps send their tasks in chunks. A task returns its result
 * length, or a negative errno that its future reports as the task's
 * "exception". fn must be a function of the program itself (workers are
 * forked, so its address is the same in every worker).
 *
 * Worker crash: a worker that dies at any instruction (signal, abort,
 * _exit, SIGKILL from outside) fails only the task it was running, with
 * -ECHILD; a replacement worker is started, the tasks it had finished keep
 * their results (also in the middle of a map chunk) and the ones it had not
 * started run on another worker. Each task runs at most once. The parent
 * notices by itself: a manager thread watches the workers, another collects
 * results.
 *
 * A worker that dies before opts.init returns is replaced too, but after 3
 * such deaths in a row the pool gives up: pending futures fail with -ECHILD
 * and the pool shuts down (submit fails with EPIPE), rather than forking
 * forever.
 *
 * Threads: submit, result, cancel and wait_any may be called from any thread
 * of the process that made the pool. Workers never see the pool handle.
 *
 * Forked children: only the process that made the pool may use it (as in
 * Python). In a child that inherited the handle through fork(), every call
 * on the pool or on its pending futures fails with -EPERM (submit: NULL
 * with errno EPERM) and touches nothing shared; mps_pool_free() there
 * releases only the child's copy of the handle. A future that was done
 * before the fork can still be read in the child.
 *
 * Workers are watched through pidfds; where pidfd_open is missing (Linux
 * before 5.3) or refused (a seccomp profile, valgrind 3.19), the pool checks
 * them with waitid every 10 ms instead, so a worker's death is noticed
 * within about 10 ms.
 * Forking from a process with threads: workers are forked by the manager
 * thread; the task functions run in a child of a threaded process, so they
 * should not depend on locks another thread of the parent might hold.
 */
#ifndef MPSHARE_POOL_H
#define MPSHARE_POOL_H

#include <mpshare/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mps_pool mps_pool;
typedef struct mps_future mps_future;

/* A task: runs in a worker with the argument bytes (arg, len) and a result
 * buffer (out, cap = the pool's max_result). Returns the result length
 * (0..cap), or a negative errno (the task's error, given back by
 * mps_future_result). A return above cap counts as -EMSGSIZE. */
typedef ssize_t (*mps_task_fn)(const void *arg, size_t len, void *out, size_t cap);

/* Limits: workers per pool, bytes of one argument or result, and workers
 * dying in a row before their initializer returned, after which the pool
 * gives up (see above). */
#define MPS_POOL_WORKERS_MAX    1024
#define MPS_POOL_LIMIT_MAX      ((size_t)64 << 20)
#define MPS_POOL_INIT_FAILS_MAX 3

/* Defaults for 0 fields of mps_pool_opts. */
#define MPS_POOL_DEFAULT_MAX_ARG    4096
#define MPS_POOL_DEFAULT_MAX_RESULT 4096
#define MPS_POOL_DEFAULT_QUEUE      1024

typedef struct mps_pool_opts {
  unsigned workers;             /* 0: number of online CPUs */
  size_t max_arg;               /* largest argument in bytes; 0: default */
  size_t max_result;            /* largest result in bytes; 0: default */
  size_t queue_size;            /* tasks queued before submit blocks; 0: default */
  unsigned max_tasks_per_child; /* a worker exits and is replaced after this
                                   many tasks; 0: never */
  void (*init)(void *arg);      /* run once in each new worker; may be NULL */
  void *init_arg;
  unsigned long long reserved[MPS_OPTS_RESERVED]; /* must be zero (see common.h) */
} mps_pool_opts;

/* Makes a pool of `workers` processes (0: number of online CPUs) with the
 * default limits. Returns the pool, or NULL with errno EINVAL (more than
 * 1024 workers), ENOMEM, EAGAIN (could not start a thread). The caller owns
 * it: release with mps_pool_free(). */
MPS_API mps_pool *mps_pool_new(unsigned workers);

/* Same with options (NULL: all defaults). NULL with errno EINVAL (workers
 * above 1024, a limit above 64 MiB, a non-zero reserved word), ENOMEM, EAGAIN. */
MPS_API mps_pool *mps_pool_new_opts(const mps_pool_opts *opts);

/* Queues fn(arg[0..len)) to run in a worker; arg is copied, the caller
 * keeps it. Blocks while queue_size submitted tasks wait for a worker
 * (mps_pool_submit_timeout: at most `timeout` seconds, then NULL with errno
 * ETIMEDOUT, or EAGAIN for timeout 0). Returns a future that the
 * caller owns (mps_future_free), or NULL with errno EINVAL (NULL pool or fn,
 * NULL arg with len > 0), EMSGSIZE (len above max_arg), EPIPE (the pool is
 * shut down), ENOMEM. */
MPS_API MPS_NODISCARD mps_future *mps_pool_submit(mps_pool *p, mps_task_fn fn, const void *arg,
                                                  size_t len);
MPS_API MPS_NODISCARD mps_future *
mps_pool_submit_timeout(mps_pool *p, mps_task_fn fn, const void *arg, size_t len, double timeout);

/* Waits at most `timeout` seconds for f's task to finish. The library's
 * status and the task's own value are apart: a return of 0 means the task
 * returned, and *value (if value is not NULL) gets what it returned, the
 * full ssize_t range: a result length (the result bytes are copied into
 * out) or the task's own negative errno. The result stays in f: it may be
 * read again. Other returns are the library's: -ECHILD (the worker died
 * running it), -ECANCELED (cancelled), -EMSGSIZE (result longer than cap;
 * *value gets its length, nothing is copied), -EAGAIN (timeout 0, not
 * finished), -ETIMEDOUT, -EPERM (pending, and the caller is not the process
 * that made the pool), -EINVAL (NULL f, NULL out with cap > 0, NaN
 * timeout). So a task that returns -ETIMEDOUT is never taken for a wait
 * that timed out. */
MPS_API MPS_NODISCARD int mps_future_result(mps_future *f, ssize_t *value, void *out, size_t cap,
                                            double timeout);

/* True once f has a result (success, error, -ECHILD or cancelled). */
MPS_API bool mps_future_done(const mps_future *f);

/* Calls cb(f, arg) once f is done: at once in the caller's thread if it is
 * already, else in the thread that completes it (the pool's collector
 * thread, or one that cancels it). cb must not free f; it may read f's
 * result with timeout 0. One callback per future. Returns 0, -EBUSY (one
 * is set already), -EINVAL (NULL). */
MPS_API int mps_future_add_done_callback(mps_future *f, void (*cb)(mps_future *f, void *arg),
                                         void *arg);

/* As-completed sets (concurrent.futures.as_completed): futures added to a
 * set are returned by mps_future_set_next() in the order they complete,
 * O(1) per future. */
typedef struct mps_future_set mps_future_set;

/* An empty set, or NULL with errno ENOMEM. Release with
 * mps_future_set_free(). */
MPS_API mps_future_set *mps_future_set_new(void);

/* Adds f (done or not) to s; a future is in at most one set. The caller
 * keeps owning f. Returns 0, -EBUSY (in a set already), -EINVAL (NULL). */
MPS_API int mps_future_set_add(mps_future_set *s, mps_future *f);

/* Waits at most `timeout` seconds for the next future of s to complete and
 * returns it (it leaves the set). NULL with errno ENOENT (no future left in
 * the set), EAGAIN (timeout 0), ETIMEDOUT, EINVAL. */
MPS_API MPS_NODISCARD mps_future *mps_future_set_next(mps_future_set *s, double timeout);

/* Frees the set; its futures stay valid and leave it. NULL is a no-op. */
MPS_API void mps_future_set_free(mps_future_set *s);

/* Cancels f if its task has not started: it will never run, and f's
 * result is -ECANCELED. Returns 0 (cancelled now or before), -EBUSY
 * (running or already finished), -EPERM (not the pool's process), -EINVAL
 * (NULL). */
MPS_API int mps_future_cancel(mps_future *f);

/* Releases the caller's future. A task still pending or running goes on;
 * its result is dropped. NULL is a no-op. Safe after mps_pool_free(). */
MPS_API void mps_future_free(mps_future *f);

/* Waits at most `timeout` seconds until one of fs[0..n) is done and returns
 * its index (the lowest done one). NULL entries are skipped, so setting
 * fs[i] = NULL after handling it iterates the futures as they complete
 * (as_completed). Returns the index, -EAGAIN (timeout 0), -ETIMEDOUT,
 * -EINVAL (fs NULL, or every entry NULL, or NaN timeout). The futures may
 * belong to different pools. */
MPS_API MPS_NODISCARD ssize_t mps_pool_wait_any(mps_future *const *fs, size_t n, double timeout);

/* Runs fn over nargs arguments of arg_size bytes each (args laid out back
 * to back) and stores result i at results + i * result_size, in input
 * order; a shorter result is padded with zeros. Waits at most `timeout`
 * seconds for all. Tasks go to workers in chunks, four per worker (as
 * multiprocessing.Pool.map chooses its chunksize). Returns 0, or the first
 * failing task's outcome in input order: a library status (-ECHILD,
 * -EMSGSIZE if a result exceeds result_size), or the task's own negative
 * value (-EOVERFLOW if it does not fit an int; use mps_pool_imap_unordered
 * to tell the two apart per task); else -ETIMEDOUT, -EAGAIN, -EINVAL,
 * -EPIPE, -EPERM, -ENOMEM. On an error the tasks not yet started are
 * cancelled; results is then partly written. */
MPS_API MPS_NODISCARD int mps_pool_map(mps_pool *p, mps_task_fn fn, const void *args, size_t nargs,
                                       size_t arg_size, void *results, size_t result_size,
                                       double timeout);

/* Streaming unordered map (multiprocessing.Pool.imap_unordered): starts
 * fn over nargs arguments of arg_size bytes (copied now: the caller may
 * reuse args at once), in chunks of `chunksize` tasks (0: four chunks per
 * worker, as mps_pool_map), and returns at once. Each task's result, of at
 * most result_size bytes, is read with mps_pool_stream_next() as soon as
 * its chunk posts it, in completion order. Returns the stream, which the
 * caller frees with mps_pool_stream_free() before the pool, or NULL with
 * errno EINVAL, EMSGSIZE (arg_size above max_arg, result_size above
 * max_result), EPIPE (shut down), EPERM (not the pool's process), ENOMEM. */
typedef struct mps_pool_stream mps_pool_stream;
MPS_API MPS_NODISCARD mps_pool_stream *mps_pool_imap_unordered(mps_pool *p, mps_task_fn fn,
                                                               const void *args, size_t nargs,
                                                               size_t arg_size, size_t result_size,
                                                               size_t chunksize);

/* Waits at most `timeout` seconds for the next finished task of s. *index
 * gets its input index and *value what it returned (either may be NULL),
 * as mps_future_result() does: returns 0 when the task returned (its
 * result bytes copied into out), or that task's library error (-ECHILD:
 * its worker died running it; -ECANCELED; -EMSGSIZE: the result was longer
 * than result_size, or than cap, in which case it stays to be read again
 * with more room). Past the task: -ENOENT (every task was read), -EAGAIN
 * (timeout 0), -ETIMEDOUT, -EPERM, -EINVAL. */
MPS_API MPS_NODISCARD int mps_pool_stream_next(mps_pool_stream *s, size_t *index, ssize_t *value,
                                               void *out, size_t cap, double timeout);

/* Frees the stream; its tasks not started yet are cancelled and results
 * not read are dropped. NULL is a no-op. */
MPS_API void mps_pool_stream_free(mps_pool_stream *s);

/* Stops accepting tasks (submit then fails with EPIPE). cancel_pending:
 * tasks not yet started are cancelled (-ECANCELED). Tasks already queued
 * otherwise still run. wait: returns once every task is finished and every
 * worker has exited and been reaped; else returns at once and the pool
 * winds down by itself. Futures stay valid either way. Calling it again is
 * allowed. Returns 0 or -EINVAL (NULL). */
MPS_API int mps_pool_shutdown(mps_pool *p, bool wait, bool cancel_pending);

/* Kills every worker now (SIGKILL), like Python's Pool.terminate(): tasks
 * not started are cancelled (-ECANCELED), running ones fail with -ECHILD;
 * returns once every worker is reaped. Submit then fails with EPIPE.
 * Returns 0, -EINVAL (NULL), -EPERM (not the pool's process). */
MPS_API int mps_pool_terminate(mps_pool *p);

/* The process ids of the live workers: fills up to n of pids and returns
 * how many workers are alive (which may exceed n), or -EINVAL. */
MPS_API ssize_t mps_pool_workers(mps_pool *p, pid_t *pids, size_t n);

/* Shuts the pool down with wait (if not done yet), reaps every worker and
 * frees the pool and its shared memory. Futures stay valid. NULL is a
 * no-op. */
MPS_API void mps_pool_free(mps_pool *p);

/* ---- the pool across hosts ------------------------------------------------
 *
 * A pool whose tasks travel through a remote queue (a redis:// URL, see
 * <mpshare/queue.h>) to worker hosts. A function pointer does not cross
 * hosts, so tasks are named: every program registers its task functions
 * with mps_task_register() under the same names. Each worker host runs
 * mps_pool_serve(url, opts), which executes the tasks in a local pool of
 * opts.workers processes; the submitting program calls mps_pool_connect(url)
 * and uses the returned pool like a local one (mps_pool_submit with a
 * registered function, or mps_pool_submit_named; mps_future_result,
 * mps_pool_wait_any, mps_pool_map, mps_pool_shutdown, mps_pool_free).
 *
 * Crash semantics: a worker process that dies running a task fails that
 * task's future with -ECHILD, as locally. A worker host that dies (or
 * stops, or loses the network) leaves its tasks leased: after the queue's
 * lease (?lease=, default 30 s) another host runs them again (at least
 * once), or, for a pool connected with opts.at_most_once, reports them
 * failed with -ECHILD without running them. A task may thus run twice
 * without at_most_once; the future keeps the first result.
 *
 * Differences from a local pool: mps_future_cancel of a remote task is
 * -EBUSY (it cannot be called back); mps_pool_terminate stops waiting
 * (pending futures fail with -ECANCELED) but cannot kill other hosts'
 * workers; mps_pool_workers gives 0; max_tasks_per_child and init belong
 * to the serving side. Results reach
 * the submitter through a queue of its own on the same server, removed by
 * mps_pool_free.
 */

/* Defaults for 0 fields of mps_remote_opts. */
#define MPS_REMOTE_NAME_MAX 63 /* longest task name */

typedef struct mps_remote_opts {
  unsigned workers;  /* mps_pool_serve: local worker processes; 0: online CPUs */
  size_t max_arg;    /* largest argument; 0: MPS_POOL_DEFAULT_MAX_ARG */
  size_t max_result; /* largest result; 0: MPS_POOL_DEFAULT_MAX_RESULT */
  size_t queue_size; /* tasks queued on the server before submit blocks; 0: default */
  bool at_most_once; /* connect: a task whose host died fails (-ECHILD), never reruns */
  unsigned long long reserved[MPS_OPTS_RESERVED]; /* must be zero (see common.h) */
} mps_remote_opts;

/* Registers fn under name (1..MPS_REMOTE_NAME_MAX bytes) in this process,
 * before connecting or serving; a worker process forked later inherits the
 * table. Registering the same name again replaces it. Returns 0, -EINVAL
 * (NULL fn, bad name), -ENOMEM (more than 256 names), -ENOTSUP (built
 * without hiredis). */
MPS_API int mps_task_register(const char *name, mps_task_fn fn);

/* Connects to the pool served at url (the task queue's URL; made if
 * missing). Returns a pool handle for mps_pool_submit etc., owned by the
 * caller (mps_pool_free), or NULL with errno EINVAL (bad URL or opts),
 * EPROTO (the key is something else), ENOTSUP, and the connection errors
 * of a remote queue (ECONNREFUSED, EHOSTUNREACH, EACCES...). */
MPS_API MPS_NODISCARD mps_pool *mps_pool_connect(const char *url, const mps_remote_opts *opts);

/* mps_pool_submit by task name, for a pool made by mps_pool_connect (the
 * name need not be registered in the submitting program; a worker host
 * that does not know it fails the task with -ENOSYS). NULL with errno as
 * mps_pool_submit, or EINVAL (a local pool, a bad name). */
MPS_API MPS_NODISCARD mps_future *mps_pool_submit_named(mps_pool *p, const char *name,
                                                        const void *arg, size_t len);

/* Serves the pool at url on this host: runs its tasks in opts->workers
 * local worker processes (a local mps_pool, so a crash of one fails only
 * that task, -ECHILD) and sends each result back to its submitter, then
 * acknowledges the task. Returns 0 once the queue is shut down (or removed)
 * and every task taken has finished; or -EINVAL, -ENOTSUP, a connection
 * error that persisted for 10 s, or the errors of mps_pool_new_opts. A
 * task with a name not registered here gives its submitter -ENOSYS. */
MPS_API MPS_NODISCARD int mps_pool_serve(const char *url, const mps_remote_opts *opts);

#ifdef __cplusplus
}
#endif
#endif
