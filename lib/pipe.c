/* Pipe: two connected message endpoints over an AF_UNIX SOCK_SEQPACKET
 * socketpair.
 *
 * Layout: nothing in shared memory. Each message travels as one seqpacket
 * record of a 1-byte tag followed by the payload; the tag makes every record
 * at least one byte long, so a 0-byte read can only mean the peer closed
 * (a bare empty record would look the same as end-of-file). The kernel keeps
 * record boundaries; MSG_PEEK|MSG_TRUNC reports a record's length without
 * consuming it, which is how a too-small buffer gets -EMSGSIZE and leaves
 * the message in place.
 *
 * Crash semantics: a record is queued whole or not at all. When the last
 * process holding one end dies the kernel closes it, and the other end reads
 * what is left, then end-of-file (-EPIPE); sends get EPIPE (MSG_NOSIGNAL, so
 * no SIGPIPE). Waiting is poll() on the socket: this object waits on a file
 * descriptor, not on shared memory, so wait.c's futexes do not apply.
 */
#include "config.h"

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#define CONN_TAG 'M'

struct mps_conn {
  int fd;
  bool can_read, can_write;
  pthread_mutex_t rmu; /* one reader thread at a time: peek then read */
  uint32_t magic;      /* MPS__LIVE until closed (internal.h) */
};

static mps_conn *conn_make(int fd, bool can_read, bool can_write)
{
  mps_conn *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return NULL;
  c->fd = fd;
  c->can_read = can_read;
  c->can_write = can_write;
  pthread_mutex_init(&c->rmu, NULL);
  c->magic = MPS__LIVE;
  return c;
}

int mps_pipe(mps_conn **a, mps_conn **b, bool duplex)
{
  if (a == NULL || b == NULL)
    return -EINVAL;
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
    return -errno;
  mps_conn *ca = conn_make(fds[0], true, duplex);
  mps_conn *cb = conn_make(fds[1], duplex, true);
  if (ca == NULL || cb == NULL) {
    free(ca);
    free(cb);
    close(fds[0]);
    close(fds[1]);
    return -ENOMEM;
  }
  if (!duplex) { /* let the kernel refuse the wrong direction too */
    shutdown(fds[0], SHUT_WR);
    shutdown(fds[1], SHUT_RD);
  }
  *a = ca;
  *b = cb;
  return 0;
}

int mps_conn_send(mps_conn *c, const void *buf, size_t len)
{
  if (!MPS__OPEN(c) || (buf == NULL && len > 0) || !c->can_write)
    return -EINVAL;
  if (len > MPS_CONN_MSG_MAX)
    return -EMSGSIZE;
  char tag = CONN_TAG;
  struct iovec iov[2] = {{&tag, 1}, {(void *)buf, len}};
  struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
  ssize_t r;
  do
    r = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  if (r < 0)
    return errno == ECONNRESET ? -EPIPE : -errno;
  return 0;
}

/* 1 readable (message or close), 0 deadline passed, negative errno. */
static int wait_readable(mps_conn *c, const mps__deadline *d)
{
  for (;;) {
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    int r = poll(&p, 1, mps__deadline_poll_ms(d));
    if (r > 0)
      return 1;
    if (r < 0 && errno != EINTR)
      return -errno;
    if (mps__deadline_passed(d))
      return 0;
  }
}

int mps_conn_poll(mps_conn *c, double timeout)
{
  mps__deadline d;
  if (!MPS__OPEN(c) || !c->can_read || mps__deadline_init(&d, timeout) < 0)
    return -EINVAL;
  return wait_readable(c, &d);
}

/* Reads the next record, which the caller knows fits (n bytes payload). */
static ssize_t take(mps_conn *c, void *buf, size_t n)
{
  char tag;
  struct iovec iov[2] = {{&tag, 1}, {buf, n}};
  struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
  ssize_t r;
  do
    r = recvmsg(c->fd, &mh, MSG_DONTWAIT);
  while (r < 0 && errno == EINTR);
  if (r < 0)
    return errno == ECONNRESET ? -EPIPE : -errno;
  if (r == 0)
    return -EPIPE;
  /* Only when another process read this end between our peek and this
   * read, and the next message was longer: say so rather than hand back a
   * cut message (that message is gone; one reader per end avoids this). */
  if (mh.msg_flags & MSG_TRUNC)
    return -EMSGSIZE;
  return r - 1;
}

/* Takes the next message if one is there, without waiting: its payload
 * length, -EMSGSIZE (left queued), -EPIPE, or -EAGAIN when there is none
 * (also when another reader took it between the peek and the read). */
static ssize_t recv_ready(mps_conn *c, void *buf, size_t cap)
{
  char probe;
  ssize_t r;
  do
    r = recv(c->fd, &probe, 1, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
  while (r < 0 && errno == EINTR);
  if (r == 0 || (r < 0 && errno == ECONNRESET))
    return -EPIPE;
  if (r < 0)
    return -errno;
  return (size_t)(r - 1) > cap ? -EMSGSIZE : take(c, buf, (size_t)(r - 1));
}

ssize_t mps_conn_recv(mps_conn *c, void *buf, size_t cap, double timeout)
{
  mps__deadline d;
  if (!MPS__OPEN(c) || (buf == NULL && cap > 0) || !c->can_read ||
      mps__deadline_init(&d, timeout) < 0)
    return -EINVAL;
  /* The mutex pairs each peek with its read; it is not held while waiting,
   * so a reader blocked for good cannot hold up another one's timeout. */
  for (;;) {
    pthread_mutex_lock(&c->rmu);
    ssize_t r = recv_ready(c, buf, cap);
    pthread_mutex_unlock(&c->rmu);
    if (r != -EAGAIN)
      return r;
    int w = wait_readable(c, &d);
    if (w <= 0)
      return w < 0 ? w : mps__deadline_error(&d);
  }
}

int mps_conn_fileno(const mps_conn *c) { return !MPS__OPEN(c) ? -EINVAL : c->fd; }

int mps_conn_close(mps_conn *c)
{
  if (c == NULL)
    return 0;
  if (!MPS__OPEN(c))
    return -EINVAL;
  c->magic = MPS__DEAD;
  close(c->fd);
  pthread_mutex_destroy(&c->rmu);
  free(c);
  return 0;
}
