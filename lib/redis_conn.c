/* The connection to a Redis server: connect within a deadline, log in,
 * load the caller's Lua scripts, run commands and map every failure to a
 * negative errno.
 *
 * One mps__rconn is one hiredis context (one TCP socket) used by one thread
 * at a time (its owner locks around it). Nothing is shared between
 * processes: a connection inherited through fork() is dropped unused in the
 * child (its socket is the parent's stream) and a new one is made there.
 *
 * Failure semantics: a command that fails on the socket (reset, end of
 * stream, no answer within the deadline) frees the context and returns an
 * error; the next command connects again. Whether the failed command ran on
 * the server is then unknown: callers document that ambiguity where it
 * matters (a put that failed may still have been queued). A reply that is
 * an error is mapped by mps__rconn_error() and leaves the connection usable.
 * A write to a connection the server closed never raises SIGPIPE in the
 * caller's process (see pipe_block).
 */
#include "config.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "redis_conn.h"

/* A server that does not answer a command within this many seconds is
 * taken as gone, even by a call that would otherwise wait for ever. */
#define IO_CAP 10.0

/* Seconds left before d, capped; `extra` is added for a command that the
 * server itself holds (a blocking read). */
static double io_budget(const mps__deadline *d, double extra)
{
  double left = IO_CAP;
  if (d->kind == MPS__TIMED) {
    left = (double)d->at.tv_sec + (double)d->at.tv_nsec * 1e-9 - mps__now();
    left = left < 0.001 ? 0.001 : (left > IO_CAP ? IO_CAP : left);
  }
  return left + extra;
}

/* A non-blocking connect() to one address, waited for up to `secs`.
 * Returns the connected (blocking) socket or a negative errno; no answer
 * in time is -EHOSTUNREACH. */
static int connect_one(const struct addrinfo *ai, double secs)
{
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
  if (fd < 0)
    return -errno;
  int err = 0;
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
    if (errno != EINPROGRESS) {
      err = -errno;
    } else {
      struct pollfd p = {fd, POLLOUT, 0};
      int r = poll(&p, 1, (int)(secs * 1000) + 1);
      socklen_t sl = sizeof(err);
      if (r == 0)
        err = -EHOSTUNREACH;
      else if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
        err = -errno;
      else
        err = -err;
    }
  }
  int one = 1;
  if (err == 0 && (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0 ||
                   setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0))
    err = -errno;
  if (err < 0) {
    close(fd);
    return err == -ENETUNREACH ? -EHOSTUNREACH : err;
  }
  return fd;
}

static int connect_tcp(const mps__rurl *u, const mps__deadline *d)
{
  char port[16];
  snprintf(port, sizeof(port), "%d", u->port);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
  struct addrinfo *res;
  if (getaddrinfo(u->host, port, &hints, &res) != 0)
    return -EHOSTUNREACH;
  int fd = -EHOSTUNREACH;
  for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next)
    fd = connect_one(ai, io_budget(d, 0));
  freeaddrinfo(res);
  return fd;
}

int mps__rconn_error(const redisReply *r)
{
  static const struct {
    const char *prefix;
    int err;
  } map[] = {
      {"EEXIST", -EEXIST},    {"ENOENT", -ENOENT},
      {"EPROTO", -EPROTO},    {"EPIPE", -EPIPE},
      {"EINVAL", -EINVAL},    {"NOAUTH", -EACCES},
      {"WRONGPASS", -EACCES}, {"NOPERM", -EACCES},
      {"ERR AUTH", -EACCES},  {"ERR invalid password", -EACCES},
      {"WRONGTYPE", -EPROTO}, {"LOADING", -EBUSY},
      {"BUSY", -EBUSY},       {"OOM", -ENOMEM},
      {"NOGROUP", -EPROTO},
  };
  if (r == NULL)
    return -EPROTO;
  if (r->type != REDIS_REPLY_ERROR)
    return 0;
  for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
    if (strncmp(r->str, map[i].prefix, strlen(map[i].prefix)) == 0)
      return map[i].err;
  return -EPROTO;
}

/* hiredis writes with write(2): on a connection the server has closed, the
 * kernel raises SIGPIPE, whose default action would kill the caller's
 * process. So SIGPIPE is blocked in the calling thread while hiredis may
 * write, and one that the failed write raised is consumed before it is
 * unblocked. Two syscalls per call; four when a write failed. */
static void pipe_block(sigset_t *old)
{
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &s, old);
}

static void pipe_unblock(const sigset_t *old, bool failed)
{
  sigset_t s;
  if (failed && !sigismember(old, SIGPIPE) && sigpending(&s) == 0 && sigismember(&s, SIGPIPE)) {
    struct timespec zero = {0, 0};
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    sigtimedwait(&s, NULL, &zero);
  }
  pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* redisGetReply with SIGPIPE held off (it flushes the output first). */
static int get_reply(redisContext *c, void **r)
{
  sigset_t old;
  pipe_block(&old);
  int rc = redisGetReply(c, r);
  int saved = errno;
  pipe_unblock(&old, rc != REDIS_OK);
  errno = saved;
  return rc;
}

/* The context failed on its socket: what it means, and drop it. */
static int io_failed(mps__rconn *rc, int saved_errno)
{
  int err = -ECONNRESET;
  if (rc->c->err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK))
    err = -ETIMEDOUT; /* no answer within the socket timeout */
  else if (rc->c->err == REDIS_ERR_OOM)
    err = -ENOMEM;
  else if (rc->c->err == REDIS_ERR_PROTOCOL)
    err = -EPROTO;
  mps__rconn_drop(rc);
  return err;
}

void mps__rconn_drop(mps__rconn *rc)
{
  if (rc->c != NULL)
    redisFree(rc->c); /* in a forked child this only closes our copy of the fd */
  rc->c = NULL;
  rc->pending = 0;
  rc->timeout = 0;
}

static int set_timeout(mps__rconn *rc, double secs)
{
  /* setsockopt only when the budget moved by more than a tenth. */
  if (rc->timeout > 0 && secs <= rc->timeout * 1.1 && secs >= rc->timeout * 0.9)
    return 0;
  struct timeval tv = {(time_t)secs, (suseconds_t)((secs - (double)(time_t)secs) * 1e6)};
  if (redisSetTimeout(rc->c, tv) != REDIS_OK)
    return -errno;
  rc->timeout = secs;
  return 0;
}

/* Reads n replies; the first error reply's errno is kept in *first (if
 * not NULL, the replies are freed either way). */
static int read_replies(mps__rconn *rc, unsigned n, int *first)
{
  for (unsigned i = 0; i < n; i++) {
    void *r;
    if (get_reply(rc->c, &r) != REDIS_OK)
      return io_failed(rc, errno);
    int e = mps__rconn_error(r);
    if (e < 0 && first != NULL && *first == 0)
      *first = e;
    freeReplyObject(r);
  }
  return 0;
}

/* Logs in, selects the database and loads the scripts, in one round trip. */
static int session_setup(mps__rconn *rc, const mps__rurl *u, const mps__deadline *d)
{
  unsigned n = 0;
  char db[16];
  snprintf(db, sizeof(db), "%d", u->db);
  if (u->password[0] != '\0' && ++n)
    redisAppendCommand(rc->c, "AUTH %s", u->password);
  if (u->db != 0 && ++n)
    redisAppendCommand(rc->c, "SELECT %s", db);
  for (size_t i = 0; i < rc->nscripts; i++, n++)
    redisAppendCommand(rc->c, "SCRIPT LOAD %s", rc->scripts[i]);
  int err = set_timeout(rc, io_budget(d, 0)), first = 0;
  if (err < 0)
    return err;
  /* AUTH and SELECT answer first; SCRIPT LOAD answers give the digests. */
  for (unsigned i = 0; i < n; i++) {
    redisReply *r;
    if (get_reply(rc->c, (void **)&r) != REDIS_OK)
      return io_failed(rc, errno);
    int e = mps__rconn_error(r);
    size_t k = i - (n - rc->nscripts);
    if (e == 0 && i >= n - rc->nscripts && r->type == REDIS_REPLY_STRING && r->len == 40)
      memcpy(rc->sha[k], r->str, 41);
    else if (e == 0 && i >= n - rc->nscripts)
      e = -EPROTO;
    if (first == 0)
      first = e;
    freeReplyObject(r);
  }
  return first;
}

/* An idle connection owes us nothing: if its socket is readable, the
 * server closed it (restarted, or timed us out) while we were away. Found
 * before sending, so a call does not fail for a server that is back. */
static bool stale(mps__rconn *rc)
{
  if (rc->pending > 0)
    return false;
  struct pollfd p = {rc->c->fd, POLLIN | POLLRDHUP, 0};
  return poll(&p, 1, 0) != 0;
}

int mps__rconn_ensure(mps__rconn *rc, const mps__rurl *u, const mps__deadline *d)
{
  if (rc->c != NULL && rc->pid == getpid() && !stale(rc))
    return 0;
  mps__rconn_drop(rc);
  int fd = connect_tcp(u, d);
  if (fd < 0)
    return fd;
  rc->c = redisConnectFd(fd);
  if (rc->c == NULL || rc->c->err) {
    if (rc->c == NULL)
      close(fd);
    mps__rconn_drop(rc);
    return -ENOMEM;
  }
  rc->pid = getpid();
  int err = session_setup(rc, u, d);
  if (err < 0)
    mps__rconn_drop(rc);
  return err;
}

int mps__rconn_drain(mps__rconn *rc)
{
  if (rc->c == NULL || rc->pending == 0)
    return 0;
  unsigned n = rc->pending;
  rc->pending = 0;
  return read_replies(rc, n, NULL);
}

int mps__rconn_send(mps__rconn *rc, int argc, const char **argv, const size_t *lens)
{
  int done = 0;
  if (redisAppendCommandArgv(rc->c, argc, argv, lens) != REDIS_OK)
    return -ENOMEM;
  rc->pending++;
  sigset_t old;
  pipe_block(&old);
  int ok = REDIS_OK;
  while (!done && (ok = redisBufferWrite(rc->c, &done)) == REDIS_OK) {
  }
  int saved = errno;
  pipe_unblock(&old, ok != REDIS_OK);
  return ok == REDIS_OK ? 0 : io_failed(rc, saved);
}

int mps__rconn_call(mps__rconn *rc, const mps__deadline *d, double extra, int argc,
                    const char **argv, const size_t *lens, redisReply **out)
{
  *out = NULL;
  int err = mps__rconn_drain(rc);
  if (err < 0 || (err = set_timeout(rc, io_budget(d, extra))) < 0)
    return err;
  if (redisAppendCommandArgv(rc->c, argc, argv, lens) != REDIS_OK)
    return -ENOMEM;
  void *r;
  if (get_reply(rc->c, &r) != REDIS_OK)
    return io_failed(rc, errno);
  *out = r;
  return mps__rconn_error(r);
}

int mps__rconn_script(mps__rconn *rc, const mps__rurl *u, const mps__deadline *d, double extra,
                      size_t script, int argc, const char **argv, size_t *lens, redisReply **out)
{
  /* argv[0] and argv[1] are ours: EVALSHA and the digest. */
  for (int attempt = 0;; attempt++) {
    int err = mps__rconn_ensure(rc, u, d);
    if (err < 0)
      return err;
    argv[0] = "EVALSHA";
    argv[1] = rc->sha[script];
    lens[0] = 7;
    lens[1] = 40;
    err = mps__rconn_call(rc, d, extra, argc, argv, lens, out);
    if (err == -EPROTO && *out != NULL && strncmp((*out)->str, "NOSCRIPT", 8) == 0 &&
        attempt == 0) {
      /* The server lost its scripts (restarted, or SCRIPT FLUSH): reload. */
      freeReplyObject(*out);
      *out = NULL;
      mps__rconn_drop(rc);
      continue;
    }
    return err;
  }
}

void mps__rconn_free_reply(redisReply *r)
{
  if (r != NULL)
    freeReplyObject(r);
}
