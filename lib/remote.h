/* Private declarations of the Redis backend: redis:// names (redis_url.c),
 * the connection (redis_conn.c), remote queues (queue_redis.c) and the pool
 * across hosts (pool_remote.c). queue.c and pool.c reach it only through
 * the mps__rq_ and mps__rpool_ calls below; built without hiredis, those
 * calls come from remote_stub.c and fail with -ENOTSUP. */
#ifndef MPSHARE_REMOTE_H
#define MPSHARE_REMOTE_H

#include "internal.h"

/* ---- redis_url.c -------------------------------------------------------- */

#define MPS__URL_HOST_MAX  255
#define MPS__URL_PASS_MAX  255
#define MPS__LEASE_DEFAULT 30.0

/* redis://HOST[:PORT][/DB]/NAME[?lease=SECONDS&prefetch=N&password=PASS],
 * decoded. */
typedef struct mps__rurl {
  char host[MPS__URL_HOST_MAX + 1];
  int port;                             /* 6379 unless given */
  int db;                               /* 0 unless given */
  char name[MPS_NAME_MAX + 1];          /* the queue's key, shm name rules, no '/' */
  char password[MPS__URL_PASS_MAX + 1]; /* "" if none; %XX decoded */
  double lease;                         /* seconds; 0: not given */
  size_t prefetch;                      /* messages a get asks for; 1 unless given */
} mps__rurl;

#define MPS__PREFETCH_MAX 1024

/* Whether name asks for the Redis backend (starts with "redis://"). */
bool mps__is_remote_name(const char *name);

/* Parses url into u. 0 or -EINVAL (malformed, port or db out of range,
 * bad NAME, unknown or repeated parameter, lease not in 0.01..86400). */
int mps__rurl_parse(const char *url, mps__rurl *u);

/* ---- queue_redis.c: a queue held by a Redis server ---------------------- */

struct mps__rq;

struct mps__rq *mps__rq_create(const char *url, const mps_queue_opts *opts, int *err);
struct mps__rq *mps__rq_open(const char *url, int *err);
int mps__rq_unlink(const char *url);
void mps__rq_close(struct mps__rq *r);
ssize_t mps__rq_put_many(struct mps__rq *r, const void *const *msgs, const size_t *lens, size_t n,
                         double timeout);
ssize_t mps__rq_get_many(struct mps__rq *r, void *buf, size_t cap, size_t *lens, size_t max,
                         double timeout);
ssize_t mps__rq_qsize(struct mps__rq *r);
size_t mps__rq_maxsize(const struct mps__rq *r);
size_t mps__rq_max_msg(const struct mps__rq *r);
int mps__rq_task_done(struct mps__rq *r);
int mps__rq_join(struct mps__rq *r, double timeout);
int mps__rq_shutdown(struct mps__rq *r);
int mps__rq_msg_id(struct mps__rq *r, size_t i, char *buf, size_t cap);
int mps__rq_redelivered(struct mps__rq *r, size_t i);
/* Acknowledges (task_done) the message with this id, got by any consumer. */
int mps__rq_ack_id(struct mps__rq *r, const char *id);

/* ---- pool_remote.c: the pool across hosts ------------------------------- */

/* The calls of pool.c on a pool made by mps_pool_connect (p->remote set).
 * submit takes the task function by address (looked up among the
 * registered ones) or, if fn is NULL, by name; it waits for room on the
 * server until d. */
struct mps__rpool;
mps_future *mps__rpool_submit(mps_pool *p, mps_task_fn fn, const char *name, const void *arg,
                              size_t len, const mps__deadline *d);
int mps__rpool_shutdown(mps_pool *p, bool wait, bool cancel_pending);
void mps__rpool_free(mps_pool *p);

/* redis_url.c: the URL of queue `name` on the server of u, with u's
 * password. 0 or -EINVAL (too long). */
int mps__rurl_format(const mps__rurl *u, const char *name, char *out, size_t cap);

#endif
