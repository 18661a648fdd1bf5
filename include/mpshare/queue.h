/* Queues (queue.Queue / LifoQueue / PriorityQueue / multiprocessing's
 * JoinableQueue) in shared memory.
 *
 * A queue is a bounded ring of `maxsize` slots of `max_msg` bytes each, in
 * one shared segment. Messages are byte strings of 0..max_msg bytes, copied
 * in by put and out by get: the queue never keeps a pointer of the caller's.
 * A put that returned 0 means the message is in the queue (there is no
 * feeder thread). Order is FIFO, LIFO or by priority (smallest first, FIFO
 * among equals).
 *
 * Crash semantics: a process killed at any instruction inside a queue call
 * leaves the queue usable by the others, and nothing deadlocks. A message
 * is wholly in the queue or not in it; a message is delivered to at most
 * one get that returned it. A get killed before it committed leaves its
 * messages in the queue for the others; killed after, the messages were
 * the dead process's (a killed get_many may so lose every message it had
 * taken). A killed sleeper or waker costs the other sleepers at most one
 * bounded sleep slice (20-50 ms) before they see the change. A
 * consumer killed between its get and its task_done leaves that task
 * unfinished for ever, so join (as in Python) waits for it: give join a
 * timeout where consumers may die.
 *
 * FIFO queues: a put claims its places in the ring first and publishes
 * the messages after copying them. A put killed between the two leaves
 * its unpublished places as holes: gets skip them, join counts them as
 * done, and the messages are simply not in the queue (put_many may leave
 * some of its messages queued and others not, each whole). A claimer is
 * declared dead only by the kernel (a robust mutex held by the producing
 * thread, marked owner-died at its death), never by a timeout or a pid:
 * a live producer stopped between its claim and its publish (SIGSTOP) is
 * waited for by the gets behind it, as the holder of a lock would be.
 * Each thread that puts holds one such token per queue until it exits or
 * closes the queue (at most 256 threads put at once into one queue; a
 * further one waits for a token); a thread that execs or dies releases
 * it. LIFO and priority queues take one robust mutex for every call, and
 * a process killed inside one is repaired by the next to take it.
 *
 * Shutdown: after mps_queue_shutdown(), put fails with -EPIPE; get keeps
 * draining what is left and fails with -EPIPE once the queue is empty
 * (Python 3.13's shutdown(immediate=False)). Blocked putters and getters
 * wake up. join is not ended by shutdown: it still waits for task_done.
 *
 * Remote queues: a name of the form
 *   redis://HOST[:PORT][/DB]/NAME[?lease=SECONDS&password=PASS]
 * given to mps_queue_create, mps_queue_open or mps_unlink names a queue
 * held by that Redis server (7.0 or newer) in a stream with a consumer
 * group, reachable from any host. Every call below keeps its meaning, with
 * these differences (README "Beyond one machine"):
 * - Only MPS_FIFO: create refuses MPS_LIFO and MPS_PRIORITY with EINVAL;
 *   put_prio ignores prio, as on a local FIFO queue.
 * - Delivery is at least once: a message got stays leased to the handle
 *   that got it until that handle's task_done (which acknowledges the
 *   oldest message it holds). The handle renews its leases while it lives;
 *   if its process dies, its host vanishes, or it holds a message longer
 *   than the lease (default 30 s, ?lease=) without renewing, the message is
 *   delivered again to another get, so join completes. A message can thus
 *   be processed twice: mps_queue_msg_id gives its id (the same on every
 *   delivery) for idempotent work, mps_queue_redelivered says whether it
 *   was delivered before. task_done on a handle that holds no message is
 *   -EINVAL.
 * - A put that returned 0 is on the server (and survives its restart when
 *   it runs with appendonly yes and appendfsync always).
 * - More errors: -ECONNREFUSED or -EHOSTUNREACH (server unreachable; within
 *   the call's timeout; a call with timeout 0 or MPS_FOREVER, or a
 *   constructor, waits at most 10 s for a connection or an answer),
 *   -ECONNRESET (connection lost during
 *   the call: the call may or may not have taken effect on the server; the
 *   next call connects again), -ETIMEDOUT also when the server does not
 *   answer in time, -EACCES (password refused), -EBUSY (server loading its
 *   data). Constructors: EINVAL (malformed URL), EPROTO (the key exists and
 *   is not an mpshare queue), ENOTSUP (built without hiredis). qsize,
 *   empty and full cost a round trip; an unreachable server reads as empty.
 * - A blocked get sees a shutdown within 0.1 s.
 */
#ifndef MPSHARE_QUEUE_H
#define MPSHARE_QUEUE_H

#include <mpshare/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mps_order {
  MPS_FIFO = 0, /* first in, first out (the default) */
  MPS_LIFO,     /* last in, first out: a stack */
  MPS_PRIORITY, /* smallest prio first, FIFO among equal prio */
} mps_order;

/* Default capacity and message size, used for 0 fields of mps_queue_opts. */
#define MPS_QUEUE_DEFAULT_MAXSIZE 1024
#define MPS_QUEUE_DEFAULT_MAX_MSG 1024
/* Limits: at most MPS_QUEUE_MAXSIZE_MAX messages, and a segment (slots of
 * max_msg bytes plus a small header each) of at most MPS_SIZE_MAX bytes. */
#define MPS_QUEUE_MAXSIZE_MAX ((size_t)1 << 24)

typedef struct mps_queue_opts {
  size_t maxsize; /* capacity in messages; 0: MPS_QUEUE_DEFAULT_MAXSIZE */
  size_t max_msg; /* largest message in bytes; 0: MPS_QUEUE_DEFAULT_MAX_MSG */
  mps_order order;
  unsigned long long reserved[MPS_OPTS_RESERVED]; /* must be zero (see common.h) */
} mps_queue_opts;

typedef struct mps_queue mps_queue;

/* Makes an anonymous queue, shared with the children forked after it. opts
 * may be NULL (all defaults).
 * Returns: the handle.
 * Errors: NULL with errno EINVAL (unknown order, maxsize above
 * MPS_QUEUE_MAXSIZE_MAX, a segment above MPS_SIZE_MAX, a non-zero reserved
 * word), ENOMEM.
 * Owns: the caller owns the handle: mps_queue_close in every process. */
MPS_API mps_queue *mps_queue_new(const mps_queue_opts *opts);

/* Makes a named queue (mode 0600) that unrelated processes open with
 * mps_queue_open.
 * Returns: the handle; the name stays until mps_unlink(name).
 * Errors: NULL with errno EINVAL (bad name or opts), EEXIST, EACCES, ENOMEM.
 * Owns: the caller owns the handle (mps_queue_close). */
MPS_API mps_queue *mps_queue_create(const char *name, const mps_queue_opts *opts);

/* Opens a named queue.
 * Returns: the handle.
 * Errors: NULL with errno EINVAL (bad name), ENOENT, EACCES, EAGAIN (a
 * process is still creating it: retry), EPROTO (not a queue, another
 * layout version, or a damaged segment), ENOMEM.
 * Owns: the caller owns the handle (mps_queue_close). */
MPS_API mps_queue *mps_queue_open(const char *name);

/* Releases this process's handle; the queue lives on for the others. Other
 * threads of the process that are inside a call on q, or that put into it
 * earlier, keep the mapping until they return from their last call on q
 * and exit; the last one unmaps it.
 * Returns: 0; 0 for NULL.
 * Errors: -EINVAL (a handle closed already).
 * Owns: q is released: do not use it after close. */
MPS_API int mps_queue_close(mps_queue *q);

/* Copies len bytes of msg into the queue, waiting up to `timeout` for room.
 * For a priority queue it is put_prio with prio 0.
 * Returns: 0 (the message is in the queue).
 * Errors: -EMSGSIZE (len > max_msg; nothing queued), -EAGAIN (timeout 0 and
 * full), -ETIMEDOUT, -EPIPE (shut down), -EINVAL (NULL q, NULL msg with
 * len > 0, NaN timeout), -EPROTO (damaged segment), -ENOMEM (no memory for
 * this thread's record of the queue, made at its first call on it),
 * -EDEADLK (re-entered from a signal handler; see common.h).
 * Owns: msg stays the caller's; the queue holds a copy. */
MPS_API MPS_NODISCARD int mps_queue_put(mps_queue *q, const void *msg, size_t len, double timeout);

/* Like mps_queue_put, with a priority: smaller prio is got first, equal
 * prio in put order. On a FIFO or LIFO queue prio is ignored.
 * Returns, Errors, Owns: as mps_queue_put. */
MPS_API MPS_NODISCARD int mps_queue_put_prio(mps_queue *q, int prio, const void *msg, size_t len,
                                             double timeout);

/* Moves the next message into buf (cap bytes), waiting up to `timeout` for
 * one.
 * Returns: its length (0..max_msg).
 * Errors: -EMSGSIZE (longer than cap: the message stays queued), -EAGAIN
 * (timeout 0 and empty), -ETIMEDOUT, -EPIPE (shut down and empty), -EINVAL
 * (NULL q, NULL buf with cap > 0, NaN), -EPROTO (damaged segment),
 * -ENOMEM, -EDEADLK (as for put). */
MPS_API MPS_NODISCARD ssize_t mps_queue_get(mps_queue *q, void *buf, size_t cap, double timeout);

/* Puts up to n messages (msgs[i] of lens[i] bytes) at once, in order
 * (FIFO: one claim of up to 4095 places; LIFO, priority: one lock
 * acquisition). Waits up to `timeout` for room for the first, then puts as
 * many as fit without waiting again, like write(2). A priority queue puts
 * them with prio 0.
 * Returns: how many were put (1..n; the caller puts the rest again); 0 for
 * n == 0.
 * Errors: those of mps_queue_put; -EMSGSIZE if any lens[i] > max_msg
 * (nothing queued).
 * Owns: the messages stay the caller's; the queue holds copies. */
MPS_API MPS_NODISCARD ssize_t mps_queue_put_many(mps_queue *q, const void *const *msgs,
                                                 const size_t *lens, size_t n, double timeout);

/* Gets up to max messages at once (FIFO: one commit; LIFO, priority: one
 * lock acquisition), waiting up to `timeout` for the first. They are stored
 * back to back in buf (cap bytes): message i starts at buf + lens[0] + ...
 * + lens[i-1] and is lens[i] bytes long. Stops early at the first message
 * that does not fit in what is left of buf.
 * Returns: how many were got (1..max); 0 for max == 0.
 * Errors: those of mps_queue_get (-EMSGSIZE: the first message does not
 * fit; it stays). */
MPS_API MPS_NODISCARD ssize_t mps_queue_get_many(mps_queue *q, void *buf, size_t cap, size_t *lens,
                                                 size_t max, double timeout);

/* Snapshots that may change at once: the messages in the queue (for a FIFO
 * it counts puts in progress and holes not yet skipped too), whether that
 * is 0 or maxsize, and the capacity and largest message size the queue was
 * made with.
 * Returns: the count, size or state; 0 or false for NULL (the NULL rule of
 * common.h: mps_queue_empty(NULL) is false).
 * Errors: none (a remote queue that cannot be reached reads as empty). */
MPS_API size_t mps_queue_qsize(const mps_queue *q);
MPS_API bool mps_queue_empty(const mps_queue *q);
MPS_API bool mps_queue_full(const mps_queue *q);
MPS_API size_t mps_queue_maxsize(const mps_queue *q);
MPS_API size_t mps_queue_max_msg(const mps_queue *q);

/* Marks one message that was got as processed.
 * Returns: 0.
 * Errors: -EINVAL (called more times than there were puts, or NULL q),
 * -EPROTO (damaged segment), -ENOMEM, -EDEADLK (as for put). */
MPS_API int mps_queue_task_done(mps_queue *q);

/* Waits until every message ever put has been marked with task_done.
 * Returns: 0.
 * Errors: -EAGAIN (timeout 0 and tasks pending), -ETIMEDOUT, -EINVAL (NULL,
 * NaN), -EPROTO (damaged segment), -ENOMEM, -EDEADLK (as for put). */
MPS_API MPS_NODISCARD int mps_queue_join(mps_queue *q, double timeout);

/* Shuts the queue down for every process: puts fail with -EPIPE, gets drain
 * what is left then fail with -EPIPE, and blocked putters and getters wake.
 * It cannot be undone.
 * Returns: 0.
 * Errors: -EINVAL (NULL), -EPROTO (damaged segment), -ENOMEM, -EDEADLK (as
 * for put). */
MPS_API int mps_queue_shutdown(mps_queue *q);

/* The id of message i (0-based) of this handle's last successful get or
 * get_many, as a NUL-terminated string in buf ("1700000000000-0" for a
 * remote queue): the same on every delivery of that message, so a
 * consumer can make its work idempotent.
 * Returns: the id's length.
 * Errors: -EINVAL (NULL q or buf, i beyond the last get), -EMSGSIZE (cap
 * too small), -ENOTSUP (a local queue: it delivers each message once).
 * Owns: buf is the caller's. */
MPS_API int mps_queue_msg_id(const mps_queue *q, size_t i, char *buf, size_t cap);

/* Whether message i of this handle's last get was delivered before (to a
 * consumer whose lease ran out).
 * Returns: 1 if it was, 0 if not (always 0 on a local queue).
 * Errors: -EINVAL (NULL q; on a remote queue, i beyond the last get). */
MPS_API int mps_queue_redelivered(const mps_queue *q, size_t i);

#ifdef __cplusplus
}
#endif
#endif
