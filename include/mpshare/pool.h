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
 * buffer (out, cap = the pool's max_result).
 * Returns: the result length (0..cap), or a negative errno: the task's own
 * error, given back apart from the library's (mps_future_result's *value,
 * mps_pool_map's values[i]). A return above cap counts as -EMSGSIZE.
 * Owns: arg and out are the pool's, valid during the call only. */
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
 * default limits, and returns once its first workers are forked.
 * Returns: the pool.
 * Errors: NULL with errno EINVAL (more than MPS_POOL_WORKERS_MAX workers),
 * ENOMEM, EMFILE or ENFILE (no descriptor left for its eventfd), EAGAIN
 * (its threads could not be started).
 * Owns: the caller owns the pool: release it with mps_pool_free(). */
MPS_API mps_pool *mps_pool_new(unsigned workers);

/* mps_pool_new() with options; opts may be NULL (all defaults). A pool
 * whose initializer kills every worker is still made, then gives up (see
 * above).
 * Returns: the pool.
 * Errors: NULL with errno EINVAL (workers above MPS_POOL_WORKERS_MAX,
 * max_arg or max_result above MPS_POOL_LIMIT_MAX, queue_size above
 * MPS_QUEUE_MAXSIZE_MAX, a non-zero reserved word), ENOMEM, EMFILE, ENFILE,
 * EAGAIN.
 * Owns: the caller owns the pool (mps_pool_free); opts is only read. */
MPS_API mps_pool *mps_pool_new_opts(const mps_pool_opts *opts);

/* Queues fn(arg[0..len)) to run in a worker, blocking while queue_size
 * submitted tasks wait for a worker (mps_pool_submit_timeout: at most
 * `timeout` seconds).
 * Returns: a future of the task.
 * Errors: NULL with errno EINVAL (NULL or freed pool, NULL fn, NULL arg
 * with len > 0, NaN timeout), EMSGSIZE (len above max_arg), EPIPE (the
 * pool is shut down, or gave up on its initializer), EPERM (not the
 * process that made the pool), ENOMEM; mps_pool_submit_timeout also
 * EAGAIN (timeout 0, no room) and ETIMEDOUT. A remote pool adds the errors
 * of a remote put (<mpshare/queue.h>).
 * Owns: arg is copied, the caller keeps it; the caller owns the future
 * (mps_future_free). */
MPS_API MPS_NODISCARD mps_future *mps_pool_submit(mps_pool *p, mps_task_fn fn, const void *arg,
                                                  size_t len);
MPS_API MPS_NODISCARD mps_future *
mps_pool_submit_timeout(mps_pool *p, mps_task_fn fn, const void *arg, size_t len, double timeout);

/* Waits at most `timeout` seconds for f's task to finish. The library's
 * status and the task's own value are apart, so a task that returns
 * -ETIMEDOUT is never taken for a wait that timed out.
 * Returns: 0 when the task returned: *value (if value is not NULL) gets
 * what it returned, the full ssize_t range: a result length (the result
 * bytes are copied into out) or the task's own negative errno. The result
 * stays in f: it may be read again.
 * Errors: the task's outcome: -ECHILD (the worker died running it, or the
 * pool gave up on its initializer), -ECANCELED (cancelled, or not started
 * when the pool was terminated or shut down with cancel_pending), -EMSGSIZE
 * (result longer than cap; *value gets its length, nothing is copied),
 * -EPROTO (a worker posted a result longer than it said), -ENOMEM (its
 * result could not be kept), -EPERM (a child's copy of a pending future,
 * completed by mps_pool_free there), -ENOSYS (a remote task whose name
 * its serving host does not know); the wait's: -EAGAIN (timeout 0, not
 * finished), -ETIMEDOUT, -EPERM (pending, and the caller is not the
 * process that made the pool), -EINVAL (NULL or freed f, NULL out with
 * cap > 0, NaN timeout).
 * Owns: out is the caller's; f stays the caller's. */
MPS_API MPS_NODISCARD int mps_future_result(mps_future *f, ssize_t *value, void *out, size_t cap,
                                            double timeout);

/* Whether f has an outcome (its task returned, failed, or was cancelled).
 * Returns: true once it has; false while pending, and for NULL or a freed
 * future.
 * Errors: none.
 * Owns: nothing changes hands. */
MPS_API bool mps_future_done(const mps_future *f);

/* Calls cb(f, arg) once f is done: at once in the caller's thread if it is
 * already, else in the thread that completes it (the pool's collector
 * thread, or one that cancels it). cb must not free f; it may read f's
 * result with timeout 0. One callback per future.
 * Returns: 0.
 * Errors: -EBUSY (a callback is set already), -EINVAL (NULL or freed f,
 * NULL cb).
 * Owns: arg stays the caller's; f stays the caller's. */
MPS_API int mps_future_add_done_callback(mps_future *f, void (*cb)(mps_future *f, void *arg),
                                         void *arg);

/* As-completed sets (concurrent.futures.as_completed): futures added to a
 * set are returned by mps_future_set_next() in the order they complete,
 * O(1) per future. A set may hold futures of several pools. */
typedef struct mps_future_set mps_future_set;

/* Makes an empty set.
 * Returns: the set.
 * Errors: NULL with errno ENOMEM.
 * Owns: the caller owns it: release with mps_future_set_free(). */
MPS_API mps_future_set *mps_future_set_new(void);

/* Adds f (done or not) to s; a future is in at most one set at a time (one
 * returned by mps_future_set_next, or whose set was freed, may be added
 * again).
 * Returns: 0.
 * Errors: -EBUSY (f is in a set already), -EINVAL (NULL s, NULL or freed
 * f).
 * Owns: the caller keeps owning f; freeing f takes it out of s. */
MPS_API int mps_future_set_add(mps_future_set *s, mps_future *f);

/* Waits at most `timeout` seconds for the next future of s to complete.
 * Returns: that future; it leaves the set.
 * Errors: NULL with errno ENOENT (no future left in the set), EAGAIN
 * (timeout 0), ETIMEDOUT, EINVAL (NULL s, NaN timeout).
 * Owns: the future stays the caller's (it was before). */
MPS_API MPS_NODISCARD mps_future *mps_future_set_next(mps_future_set *s, double timeout);

/* Frees the set; its futures stay valid and leave it.
 * Returns: nothing; NULL is a no-op.
 * Errors: none.
 * Owns: s is released; its futures stay the caller's. */
MPS_API void mps_future_set_free(mps_future_set *s);

/* Cancels f if its task has not started: it will never run, and f's
 * result is -ECANCELED.
 * Returns: 0 (cancelled now or before).
 * Errors: -EBUSY (running or already finished; a remote task), -EPERM (not
 * the process that made the pool), -EINVAL (NULL or freed f).
 * Owns: f stays the caller's. */
MPS_API int mps_future_cancel(mps_future *f);

/* Releases the caller's future. A task still pending or running goes on;
 * its result is dropped. Safe after mps_pool_free().
 * Returns: nothing; NULL, or a future freed already, is a no-op (caught by
 * the handle's magic word while its memory is not reused).
 * Errors: none.
 * Owns: f is released: do not use it after. */
MPS_API void mps_future_free(mps_future *f);

/* Waits at most `timeout` seconds until one of fs[0..n) is done. NULL
 * entries are skipped, so setting fs[i] = NULL after handling it iterates
 * the futures as they complete (O(n) per call; a set is O(1)). The
 * futures may belong to different pools.
 * Returns: the index of the lowest done one.
 * Errors: -EAGAIN (timeout 0), -ETIMEDOUT, -EPERM (a pending future and the
 * caller is not the process that made its pool), -ENOMEM, -EINVAL (fs
 * NULL, every entry NULL, a freed future, NaN timeout).
 * Owns: the futures stay the caller's. */
MPS_API MPS_NODISCARD ssize_t mps_pool_wait_any(mps_future *const *fs, size_t n, double timeout);

/* Runs fn over nargs arguments of arg_size bytes each (args laid out back
 * to back), waiting at most `timeout` seconds for all. Tasks go to workers
 * in chunks, four per worker (as multiprocessing.Pool.map chooses its
 * chunksize). As mps_future_result() does, the library's status and each
 * task's own value are apart: values[i] gets what task i returned (the
 * full ssize_t range: its result length, or its own negative errno), and
 * its result bytes go to results + i * result_size, in input order, a
 * shorter result padded with zeros. status (may be NULL) gets each task's
 * library status: 0 (it returned: see values[i]), -ECHILD (its worker died
 * running it), -EMSGSIZE (its result was longer than result_size;
 * values[i] gets the length), -ENOMEM, or, for a task without an outcome
 * when the call returned, the call's own error. values and status are
 * filled on every return but -EINVAL, -EPERM and an argument's -EMSGSIZE.
 * Returns: 0 when every task returned (each task's own errors are in
 * values: check them).
 * Errors: the first task's library error in input order (-ECHILD,
 * -EMSGSIZE, -ENOMEM, -ECANCELED: the pool was terminated); the call's:
 * -ETIMEDOUT, -EAGAIN (timeout 0), -EPIPE (shut down), -EPERM (not the
 * process that made the pool), -ENOMEM, -EMSGSIZE (arg_size above
 * max_arg), -EINVAL (NULL or freed pool, NULL fn, NULL args, results or
 * values where nargs and the size are not 0, NaN timeout). On an error the
 * tasks not yet started are cancelled; results is then partly written.
 * Owns: args is only read; results, values and status are the caller's. */
MPS_API MPS_NODISCARD int mps_pool_map(mps_pool *p, mps_task_fn fn, const void *args, size_t nargs,
                                       size_t arg_size, void *results, size_t result_size,
                                       ssize_t *values, int *status, double timeout);

/* Streaming unordered map (multiprocessing.Pool.imap_unordered): starts
 * fn over nargs arguments of arg_size bytes, in chunks of `chunksize`
 * tasks (0: four chunks per worker, as mps_pool_map), and returns at once.
 * Each task's result, of at most result_size bytes, is read with
 * mps_pool_stream_next() as soon as its chunk posts it, in completion
 * order.
 * Returns: the stream.
 * Errors: NULL with errno EINVAL (NULL or freed pool, NULL fn, NULL args
 * with nargs and arg_size not 0), EMSGSIZE (arg_size above max_arg,
 * result_size above max_result), EPIPE (shut down), EPERM (not the
 * process that made the pool), ENOTSUP (a remote pool), ENOMEM.
 * Owns: args is copied now (the caller may reuse it at once); the caller
 * owns the stream and frees it with mps_pool_stream_free() before the
 * pool. */
typedef struct mps_pool_stream mps_pool_stream;
MPS_API MPS_NODISCARD mps_pool_stream *mps_pool_imap_unordered(mps_pool *p, mps_task_fn fn,
                                                               const void *args, size_t nargs,
                                                               size_t arg_size, size_t result_size,
                                                               size_t chunksize);

/* Waits at most `timeout` seconds for the next finished task of s. *index
 * gets its input index and *value what it returned (either may be NULL),
 * as mps_future_result() does.
 * Returns: 0 when the task returned (its result bytes copied into out).
 * Errors: that task's library error: -ECHILD (its worker died running it),
 * -ECANCELED (the pool was terminated), -ENOMEM, -EMSGSIZE (the result was
 * longer than result_size, or than cap, in which case it stays to be read
 * again with more room); past the task: -ENOENT (every task was read),
 * -EAGAIN (timeout 0), -ETIMEDOUT, -EPERM (not the process that made the
 * pool), -EINVAL (NULL or freed s, NULL out with cap > 0, NaN timeout).
 * Owns: out is the caller's; s stays the caller's. */
MPS_API MPS_NODISCARD int mps_pool_stream_next(mps_pool_stream *s, size_t *index, ssize_t *value,
                                               void *out, size_t cap, double timeout);

/* Frees the stream; its tasks not started yet are cancelled and results
 * not read are dropped.
 * Returns: nothing; NULL, or a stream freed already, is a no-op.
 * Errors: none.
 * Owns: s is released. */
MPS_API void mps_pool_stream_free(mps_pool_stream *s);

/* Stops accepting tasks (submit then fails with EPIPE). cancel_pending:
 * tasks not yet started are cancelled (-ECANCELED); otherwise tasks
 * already queued still run. wait: returns once every task is finished and
 * every worker has exited and been reaped; else returns at once and the
 * pool winds down by itself. Calling it again is allowed.
 * Returns: 0.
 * Errors: -EINVAL (NULL or freed pool), -EPERM (not the process that made
 * the pool).
 * Owns: futures stay valid and the caller's; the pool stays the caller's
 * (mps_pool_free). */
MPS_API int mps_pool_shutdown(mps_pool *p, bool wait, bool cancel_pending);

/* Kills every worker now (SIGKILL), like Python's Pool.terminate(): tasks
 * not started are cancelled (-ECANCELED), running ones fail with -ECHILD;
 * returns once every worker is reaped. Submit then fails with EPIPE.
 * Returns: 0.
 * Errors: -EINVAL (NULL or freed pool), -EPERM (not the process that made
 * the pool).
 * Owns: as mps_pool_shutdown. */
MPS_API int mps_pool_terminate(mps_pool *p);

/* The process ids of the live workers: fills up to n of pids.
 * Returns: how many workers are alive (which may exceed n); 0 for a remote
 * pool.
 * Errors: -EINVAL (NULL or freed pool, NULL pids with n > 0), -EPERM (not
 * the process that made the pool).
 * Owns: pids is the caller's. */
MPS_API ssize_t mps_pool_workers(mps_pool *p, pid_t *pids, size_t n);

/* Shuts the pool down with wait (if not done yet), reaps every worker and
 * frees the pool and its shared memory. In a forked child that inherited
 * the handle, releases only the child's copy (see above).
 * Returns: nothing; NULL, or a pool freed already, is a no-op (caught by
 * the handle's magic word while its memory is not reused).
 * Errors: none.
 * Owns: p is released: do not use it after. Futures stay valid and the
 * caller's. */
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
 * table. Registering the same name again replaces it.
 * Returns: 0.
 * Errors: -EINVAL (NULL fn, bad name), -ENOMEM (more than 256 names),
 * -ENOTSUP (built without hiredis).
 * Owns: name is copied. */
MPS_API int mps_task_register(const char *name, mps_task_fn fn);

/* Connects to the pool served at url (the task queue's URL; made if
 * missing).
 * Returns: a pool handle for mps_pool_submit etc.
 * Errors: NULL with errno EINVAL (bad URL or opts), EPROTO (the key is
 * something else), ENOTSUP (built without hiredis), ENOMEM, and the
 * connection errors of a remote queue (ECONNREFUSED, EHOSTUNREACH,
 * ECONNRESET, ETIMEDOUT, EACCES, EBUSY).
 * Owns: the caller owns the pool (mps_pool_free). */
MPS_API MPS_NODISCARD mps_pool *mps_pool_connect(const char *url, const mps_remote_opts *opts);

/* mps_pool_submit by task name, for a pool made by mps_pool_connect (the
 * name need not be registered in the submitting program; a worker host
 * that does not know it fails the task: its future's result is -ENOSYS).
 * Returns: a future of the task.
 * Errors: NULL with errno as mps_pool_submit, or EINVAL (a local pool, a
 * bad name).
 * Owns: as mps_pool_submit. */
MPS_API MPS_NODISCARD mps_future *mps_pool_submit_named(mps_pool *p, const char *name,
                                                        const void *arg, size_t len);

/* Serves the pool at url on this host: runs its tasks in opts->workers
 * local worker processes (a local mps_pool, so a crash of one fails only
 * that task, -ECHILD) and sends each result back to its submitter, then
 * acknowledges the task. A task with a name not registered here gives its
 * submitter -ENOSYS.
 * Returns: 0 once the queue is shut down (or removed) and every task taken
 * has finished.
 * Errors: -EINVAL, -ENOTSUP, a connection error that persisted for 10 s,
 * or the errors of mps_pool_new_opts (negated).
 * Owns: nothing is kept after it returns. */
MPS_API MPS_NODISCARD int mps_pool_serve(const char *url, const mps_remote_opts *opts);

#ifdef __cplusplus
}
#endif
#endif
