/* The Redis backend when mpshare is built without hiredis: a redis:// name
 * is recognised (redis_url.c) and refused with ENOTSUP, so that it is never
 * taken for a local name. No state, nothing shared. */
#include "config.h"

#include "remote.h"

struct mps__rq *mps__rq_create(const char *url, const mps_queue_opts *opts, int *err)
{
  (void)url, (void)opts;
  *err = -ENOTSUP;
  return NULL;
}

struct mps__rq *mps__rq_open(const char *url, int *err)
{
  (void)url;
  *err = -ENOTSUP;
  return NULL;
}

int mps__rq_unlink(const char *url)
{
  (void)url;
  return -ENOTSUP;
}

/* No handle can exist, so the calls on one are never reached. */
void mps__rq_close(struct mps__rq *r) { (void)r; }
ssize_t mps__rq_put_many(struct mps__rq *r, const void *const *m, const size_t *l, size_t n,
                         double t)
{
  (void)r, (void)m, (void)l, (void)n, (void)t;
  return -ENOTSUP;
}
ssize_t mps__rq_get_many(struct mps__rq *r, void *b, size_t c, size_t *l, size_t m, double t)
{
  (void)r, (void)b, (void)c, (void)l, (void)m, (void)t;
  return -ENOTSUP;
}
ssize_t mps__rq_qsize(struct mps__rq *r) { return (void)r, -ENOTSUP; }
size_t mps__rq_maxsize(const struct mps__rq *r) { return (void)r, 0; }
size_t mps__rq_max_msg(const struct mps__rq *r) { return (void)r, 0; }
int mps__rq_task_done(struct mps__rq *r) { return (void)r, -ENOTSUP; }
int mps__rq_join(struct mps__rq *r, double t) { return (void)r, (void)t, -ENOTSUP; }
int mps__rq_shutdown(struct mps__rq *r) { return (void)r, -ENOTSUP; }
int mps__rq_msg_id(struct mps__rq *r, size_t i, char *b, size_t c)
{
  return (void)r, (void)i, (void)b, (void)c, -ENOTSUP;
}
int mps__rq_redelivered(struct mps__rq *r, size_t i) { return (void)r, (void)i, -ENOTSUP; }
int mps__rq_ack_id(struct mps__rq *r, const char *id) { return (void)r, (void)id, -ENOTSUP; }

mps_future *mps__rpool_submit(mps_pool *p, mps_task_fn fn, const char *name, const void *arg,
                              size_t len, const mps__deadline *d)
{
  (void)p, (void)fn, (void)name, (void)arg, (void)len, (void)d;
  return mps__fail(-ENOTSUP);
}
int mps__rpool_shutdown(mps_pool *p, bool wait, bool cancel)
{
  return (void)p, (void)wait, (void)cancel, -ENOTSUP;
}
void mps__rpool_free(mps_pool *p) { (void)p; }

int mps_task_register(const char *name, mps_task_fn fn) { return (void)name, (void)fn, -ENOTSUP; }
mps_pool *mps_pool_connect(const char *url, const mps_remote_opts *opts)
{
  (void)url, (void)opts;
  return mps__fail(-ENOTSUP);
}
mps_future *mps_pool_submit_named(mps_pool *p, const char *name, const void *arg, size_t len)
{
  (void)p, (void)name, (void)arg, (void)len;
  return mps__fail(-ENOTSUP);
}
int mps_pool_serve(const char *url, const mps_remote_opts *opts)
{
  return (void)url, (void)opts, -ENOTSUP;
}
