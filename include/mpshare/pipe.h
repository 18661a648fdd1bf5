/* Pipe (multiprocessing.Pipe): a pair of connected message endpoints.
 *
 * mps_pipe() makes two connections, created before fork() and inherited by
 * the children. Each message sent is received whole, with its boundaries
 * kept, by one recv on the other end. A duplex pipe sends both ways; a
 * one-way pipe sends from b to a only (a is the read end, as in Python's
 * `r, w = Pipe(duplex=False)`).
 *
 * A peer "closes" when every process holding its end has closed it or died:
 * after fork(), close the end you do not use in each process, or you will
 * never see -EPIPE. Two processes (or threads) receiving on the same end at
 * once may take each other's message between the length check and the read;
 * give each end one reader, as Python advises. Threads of one process using
 * the same handle are serialised.
 */
#ifndef MPSHARE_PIPE_H
#define MPSHARE_PIPE_H

#include <mpshare/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mps_conn mps_conn;

/* Largest message, in bytes, that mps_conn_send() accepts (64 KiB). */
#define MPS_CONN_MSG_MAX (64u * 1024u)

/* Makes a connected pair *a, *b. duplex: both ends send and receive; else a
 * only receives and b only sends.
 * Returns: 0.
 * Errors: -EINVAL (NULL a or b), -EMFILE, -ENFILE (out of file
 * descriptors), -ENOMEM; *a and *b are then left untouched.
 * Owns: the caller owns both handles: each is released with
 * mps_conn_close(), in every process that inherited it. */
MPS_API MPS_NODISCARD int mps_pipe(mps_conn **a, mps_conn **b, bool duplex);

/* Sends one message of len bytes (0 allowed), blocking while the peer's
 * buffer is full.
 * Returns: 0 (the whole message is sent).
 * Errors: -EMSGSIZE (len above MPS_CONN_MSG_MAX: nothing sent), -EPIPE (the
 * peer closed or died), -EINVAL (NULL c, NULL buf with len > 0, or c is a
 * read-only end), -ENOMEM or -ENOBUFS (the kernel is short of memory:
 * nothing sent).
 * Owns: buf stays the caller's; the message is copied. */
MPS_API MPS_NODISCARD int mps_conn_send(mps_conn *c, const void *buf, size_t len);

/* Receives one message into buf (cap bytes), waiting at most timeout
 * seconds.
 * Returns: the message length.
 * Errors: -EMSGSIZE (longer than cap: the message stays to be read again
 * with a bigger buffer), -EPIPE (the peer closed or died and nothing is
 * left to read), -EAGAIN (timeout 0, nothing ready), -ETIMEDOUT, -EINVAL
 * (NULL c, NULL buf with cap > 0, NaN timeout, or c is a write-only end),
 * -ENOMEM (the kernel is short of memory). */
MPS_API MPS_NODISCARD ssize_t mps_conn_recv(mps_conn *c, void *buf, size_t cap, double timeout);

/* Waits at most timeout seconds for c to become readable.
 * Returns: 1 when a message is ready or the peer closed (recv then gives
 * -EPIPE), 0 when the timeout passed.
 * Errors: -EINVAL (NULL c, NaN timeout, write-only end), -ENOMEM (the
 * kernel is short of memory). */
MPS_API MPS_NODISCARD int mps_conn_poll(mps_conn *c, double timeout);

/* The connection's file descriptor, for the caller's own poll()/epoll loop
 * (POLLIN: a message or the peer's close is ready).
 * Returns: the descriptor.
 * Errors: -EINVAL (NULL).
 * Owns: the descriptor stays c's: do not read, write or close it. */
MPS_API int mps_conn_fileno(const mps_conn *c);

/* Closes this process's copy of the end; the peer sees -EPIPE once every
 * copy is closed.
 * Returns: 0; 0 for NULL.
 * Errors: -EINVAL (a handle closed already).
 * Owns: c is freed. */
MPS_API int mps_conn_close(mps_conn *c);

#ifdef __cplusplus
}
#endif
#endif
