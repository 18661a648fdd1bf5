/* Private declarations of the pool. Files, each calling only those after
 * it: pool_map.c (maps), pool.c (construction, submit, shutdown),
 * pool_manager.c (the manager and collector threads), pool_jobs.c (jobs
 * and dispatch), pool_worker.c (the worker's side). Futures are
 * future.c's, reached only through internal.h's mps__future_* calls; each
 * pool has its own futures hub (their lock), and registers its cancel
 * step with each future. */
#ifndef MPSHARE_POOL_INTERNAL_H
#define MPSHARE_POOL_INTERNAL_H

#include "internal.h"

/* A batch of argument bytes goes to one worker in one message: up to this
 * many bytes of arguments (or one argument, if bigger) ... */
#define MPS__POOL_BATCH_BYTES 4096
/* ... and up to this many tasks (map's chunks). */
#define MPS__POOL_BATCH_TASKS 512
/* Room for results that a worker fills before it posts them. */
#define MPS__POOL_AREA_BYTES 4096
/* Result messages the result queue holds at least. */
#define MPS__POOL_RESULTS_MIN 256
/* ... within this many bytes (at least 4 messages). */
#define MPS__POOL_RESULTS_BYTES (4u << 20)
/* Bytes of inbox per worker before the depth is cut below its default. */
#define MPS__POOL_INBOX_BYTES (1u << 20)
#define MPS__POOL_DEPTH_MAX   256u

/* Why a worker exited, written by it just before _exit. */
enum { MPS__EXIT_CRASH, MPS__EXIT_STOP, MPS__EXIT_RECYCLE, MPS__EXIT_ERROR };
/* Result messages. */
enum { MPS__RES_RESULT = 1, MPS__RES_SKIPPED, MPS__RES_DEATH };
/* Batch flags. */
#define MPS__BATCH_STOP 1u /* no task: the worker exits */

/* One inbox message: n tasks fn(args + k * arg_size, arg_size). Shared
 * memory holds no pointer but fn, which is the same address in every
 * worker (they are forks of the parent). */
struct mps__pool_batch {
  uint64_t seq; /* per inbox, from 1, consecutive */
  uint64_t fn;
  uint32_t n;
  uint32_t flags;
  uint64_t arg_size;
  unsigned char args[];
};

/* One result message: results of tasks first..first+count-1 of batch seq
 * of worker `worker`, as entries; or a DEATH record of that worker. */
struct mps__pool_res {
  uint32_t kind;
  uint32_t worker;
  uint64_t seq;
  uint32_t first;
  uint32_t count;
  /* DEATH only: the worker's progress words and its inbox at the end. */
  uint64_t taken, started, finished;
  uint64_t untaken; /* first seq left in its inbox (or next_seq if none) */
  uint64_t next;    /* next_seq when the inbox was drained */
};

/* One task's result in a result message, 8-byte aligned. */
struct mps__pool_entry {
  int64_t value;
  uint64_t len;
  unsigned char data[];
};

static inline size_t mps__pool_entry_size(size_t len)
{
  return MPS__ALIGN_UP(sizeof(struct mps__pool_entry) + len, 8);
}

/* A worker's slot (shared, cache-line aligned). The worker is the only
 * writer of everything but claim[], on which it and the parent race by CAS
 * (see pool_worker.c). The result area follows the ring. */
struct mps__pool_slot {
  _Atomic uint32_t ready; /* set once the initializer returned */
  _Atomic uint32_t exit_reason;
  _Atomic uint64_t taken;    /* seq of the batch it took last */
  _Atomic uint64_t started;  /* tasks of it started */
  _Atomic uint64_t finished; /* tasks of it whose result is in the area or posted */
  _Atomic uint64_t posted;   /* tasks of it whose result was posted */
  _Atomic uint64_t area_used;
  uint64_t pad_[2];
  _Atomic uint64_t claim[]; /* ring of 2 * depth: seq << 2 | CLAIM_* */
};
enum { MPS__CLAIM_START = 1, MPS__CLAIM_CANCEL = 2 };

struct mps__pool_shm {
  struct mps__hdr hdr;
};

/* Parent-side (process-private) job: one inbox message and what to do with
 * its results. The message follows the struct. */
struct mps__map;
struct mps__pool_job {
  struct mps__pool_job *next;
  mps_pool *pool;
  unsigned worker;
  bool dispatched; /* in its worker's record, else pending */
  bool cancelled;  /* its future or map no longer wants it */
  mps_future *f;   /* a submitted task (n == 1), or NULL */
  /* f's outcome, once reported; data points into the collector's buffer
   * until the future is completed. */
  bool reported;
  int status;
  int64_t value;
  const void *data;
  size_t len;
  struct mps__map *map;
  size_t lo; /* map: index of its first task */
  size_t msg_len;
  struct mps__pool_batch msg;
};

/* What map and the streaming map wait for, under the pool's mutex. */
struct mps__map {
  int refs;       /* the caller's, and one per job */
  bool abandoned; /* the caller returned: results are dropped */
  size_t n, left; /* tasks, tasks not reported yet */
  char *results;  /* map: the caller's array, else NULL */
  size_t result_size;
  int *status;    /* per task: 1 pending, 0 done, or a library error */
  int64_t *value; /* per task: the task's own value */
  size_t *order;  /* streaming map: indexes in completion order */
  size_t reported, delivered;
  bool waiting; /* streaming map: its reader sleeps on the pool's cv */
};

struct mps__pool_worker {
  pid_t pid; /* 0: none */
  int pidfd;
  bool respawn;   /* manager thread only */
  bool accepting; /* a live worker whose inbox may be fed */
  bool stop_sent;
  unsigned queued; /* batches in its inbox or in its hands */
  uint64_t next_seq;
  struct mps__pool_job *head, *tail; /* those batches, by seq */
  mps_queue *inbox;
};

struct mps_pool {
  pid_t owner; /* getpid() of the maker: only it may use the pool */
  mps_pool_opts opts;
  unsigned nworkers, depth;
  size_t batch_max, area_size, slot_size;
  mps__seg seg;
  mps_queue *results;
  int evfd; /* pokes the manager thread */
  pthread_t manager, collector;
  unsigned init_fails;          /* manager thread only */
  struct mps__future_hub *fhub; /* the lock of this pool's futures (future.c) */
  pthread_mutex_t mu;           /* everything below, and every job and map */
  pthread_cond_t cv;
  struct mps__pool_worker *w;
  struct mps__pool_job *pend_head, *pend_tail;
  struct mps__pool_job *fin; /* jobs whose future is to be completed */
  struct mps__pool_batch *steal_buf;
  size_t pending;        /* submitted tasks waiting for an inbox */
  unsigned room_waiters; /* submitters waiting for pending < queue_size */
  unsigned live;
  bool ready, shutting, terminating, finished;
  int fail_err;              /* terminating: what unfinished tasks get */
  int start_err;             /* the manager could not start */
  struct mps__rpool *remote; /* a pool across hosts (pool_remote.c); NULL: local */
  uint32_t magic;            /* MPS__LIVE until freed (internal.h) */
};

static inline struct mps__pool_slot *mps__pool_slot(const mps_pool *p, unsigned i)
{
  return (struct mps__pool_slot *)((char *)p->seg.hdr + sizeof(struct mps__pool_shm) +
                                   (size_t)i * p->slot_size);
}

static inline struct mps__pool_res *mps__pool_area(const mps_pool *p, unsigned i)
{
  struct mps__pool_slot *s = mps__pool_slot(p, i);
  return (struct mps__pool_res *)MPS__ALIGN_UP((uintptr_t)&s->claim[2 * p->depth], 8u);
}

/* Windows of the worker's protocol for the test-only crash points (the one
 * mechanism of crashpoint.c, numbered apart from the queue's): a test build
 * (-DMPS_CRASHPOINTS) SIGKILLs an armed worker at one of them. */
enum mps__pool_crash {
  MPS__CP_POOL_GOT = 100, /* a batch got (committed), taken not stored */
  MPS__CP_POOL_TAKEN,     /* taken stored, not claimed */
  MPS__CP_POOL_NEXT,      /* claimed (or task k-1 finished), started not stored */
  MPS__CP_POOL_STARTED,   /* started stored, the task not called */
  MPS__CP_POOL_RAN,       /* the task returned, its result not finished */
  MPS__CP_POOL_FINISHED,  /* finished stored, nothing posted */
  MPS__CP_POOL_POSTED,    /* results posted, posted not stored */
  MPS__CP_POOL_END
};
#ifdef MPS_CRASHPOINTS
#include "queue_internal.h"
#define MPS__POOL_CRASHPOINT(id) mps__crashpoint((enum mps__crash)(id))
#else
#define MPS__POOL_CRASHPOINT(id) ((void)0)
#endif

/* pool_worker.c: the worker's life; never returns. */
_Noreturn void mps__pool_worker_main(mps_pool *p, unsigned i, struct mps__pool_batch *buf);
/* Both sides of the start-or-cancel race on batch seq in slot s:
 * true if the caller won. */
bool mps__pool_claim(struct mps__pool_slot *s, unsigned ring, uint64_t seq, unsigned how);

/* pool_manager.c: the two threads. */
void *mps__pool_manager_main(void *arg);
void *mps__pool_collector_main(void *arg);

/* pool.c */
/* 0 if the calling process made p, else -EPERM: a forked child has a copy
 * of the handle but none of the threads behind it. */
int mps__pool_owned(const mps_pool *p);

/* pool_jobs.c, with p->mu held. */
struct mps__pool_job *mps__pool_job_new(mps_pool *p, mps_task_fn fn, const void *args, uint32_t n,
                                        size_t arg_size);
void mps__pool_map_unref(struct mps__map *m);
void mps__pool_pend_push(mps_pool *p, struct mps__pool_job *j, bool front);
void mps__pool_pend_remove(mps_pool *p, struct mps__pool_job *j);
/* Feeds pending jobs to workers that may take more, and STOP to idle ones
 * once the pool shuts down and nothing is pending; an idle worker steals
 * a batch not yet taken from the busiest inbox. */
void mps__pool_dispatch(mps_pool *p);
/* Puts tasks from..n-1 of j (out of every list) back in front of the
 * pending ones, or fails them if the pool is terminating; j is done. */
void mps__pool_requeue_from(mps_pool *p, struct mps__pool_job *j, size_t from);
/* j left every list: freed, or kept on p->fin until its future is completed. */
void mps__pool_job_done(mps_pool *p, struct mps__pool_job *j);
/* Reports task k of j: status 0 with the task's value and result bytes, or
 * a library error. A task reported before is left as it was. */
void mps__pool_report(mps_pool *p, struct mps__pool_job *j, size_t k, int status, int64_t value,
                      const void *data, size_t len);
struct mps__pool_job *mps__pool_take_finished(mps_pool *p);
/* Cancels j if it has not started: 0 or -EBUSY. */
int mps__pool_job_cancel(mps_pool *p, struct mps__pool_job *j);
/* Cancels every job that has not started (-ECANCELED). */
void mps__pool_cancel_unstarted(mps_pool *p);

/* pool_jobs.c, without p->mu. */
void mps__pool_complete_finished(struct mps__pool_job *fin);
/* Fails every pending job with err. */
void mps__pool_fail_pending(mps_pool *p, int err);

#endif
