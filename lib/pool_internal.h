/* Private declarations shared by pool.c and future.c. */
#ifndef MPSHARE_POOL_INTERNAL_H
#define MPSHARE_POOL_INTERNAL_H

#include "internal.h"

#define POOL_RING 256     /* recently cancelled ids seen by the workers */
#define POOL_BUCKETS 1024 /* parent-side future table */

/* A worker's slot state: the parent and the worker race on GOT with CAS. */
enum { SLOT_INIT, SLOT_IDLE, SLOT_GOT, SLOT_RUNNING, SLOT_SKIPPED, SLOT_CANCELLED };
/* Why a worker exited, written by it just before _exit. */
enum { EXIT_CRASH, EXIT_STOP, EXIT_RECYCLE, EXIT_ERROR };
enum { RES_RESULT = 1, RES_DEATH };

struct task_msg {
  uint64_t id; /* read by the parent while a worker may hold it: atomics */
  uint64_t fn;
  uint64_t len;
  uint64_t pad_;
  unsigned char arg[];
};

struct res_msg {
  uint64_t id;
  int64_t ret;
  uint32_t kind;
  uint32_t pad_;
  unsigned char data[];
};

struct pool_shm {
  struct mps__hdr hdr;
  _Atomic uint64_t cancel_below;
  _Atomic uint64_t ring[POOL_RING];
};

struct pool_slot {
  _Atomic uint32_t state;
  _Atomic uint32_t exit_reason;
  uint64_t pad_;
  /* the task message buffer follows */
};

/* A future: process-private, guarded by mps__hub.mu (future.c). */
struct mps_future {
  uint64_t id;
  mps_pool *pool; /* NULL once done */
  int refs;
  bool done;
  int64_t ret; /* result length, or negative errno */
  void *data;
  mps_future *next; /* in the pool's table */
};

struct pool_worker {
  pid_t pid; /* 0: none */
  int pidfd;
  bool respawn; /* manager thread only */
};

struct mps_pool {
  pid_t owner; /* getpid() of the maker: only it may use the pool */
  mps_pool_opts opts;
  unsigned nworkers;
  size_t task_msg_max, slot_size, max_result;
  mps__seg seg;
  struct pool_shm *shm;
  mps_queue *tasks, *results;
  int evfd; /* pokes the manager thread */
  pthread_t manager, collector;
  struct pool_worker *w;
  unsigned init_fails; /* manager thread only */
  /* Under mps__hub.mu: */
  unsigned live;
  uint64_t next_id;
  bool ready, shutting, finished;
  mps_future *buckets[POOL_BUCKETS];
  struct mps__rpool *remote; /* a pool across hosts (pool_remote.c); NULL: local */
};

static inline struct pool_slot *pool_slot(mps_pool *p, unsigned i)
{
  return (struct pool_slot *)((char *)(p->shm + 1) + (size_t)i * p->slot_size);
}

static inline struct task_msg *slot_task(struct pool_slot *s)
{
  return (struct task_msg *)(s + 1);
}

/* One mutex and condition variable for every future of the process:
 * process-private, so a plain pthread_cond_t (on CLOCK_MONOTONIC) is right. */
struct mps__hub {
  pthread_mutex_t mu;
  pthread_cond_t cv;
};
extern struct mps__hub mps__hub;
void mps__hub_init(void);

/* future.c; all but register/unregister need mps__hub.mu held. */
mps_future *mps__future_register(mps_pool *p, int *err);
void mps__future_unregister(mps_future *f);
mps_future *mps__future_find(mps_pool *p, uint64_t id);
void mps__future_complete(mps_future *f, int64_t ret, const void *data, size_t len);
void mps__future_fail_all(mps_pool *p, int err);
void mps__future_cancel_all(mps_pool *p);

/* pool.c */
/* 0 if the calling process made p, else -EPERM: a forked child has a copy
 * of the handle but none of the threads behind it. */
int mps__pool_owned(const mps_pool *p);
int mps__pool_try_cancel(mps_pool *p, uint64_t id, bool ring);
void mps__pool_cancel_below(mps_pool *p, uint64_t id);

#endif
