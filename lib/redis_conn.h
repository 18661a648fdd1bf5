/* Private header of redis_conn.c: one connection to a Redis server. */
#ifndef MPSHARE_REDIS_CONN_H
#define MPSHARE_REDIS_CONN_H

#include <hiredis/hiredis.h>

#include "remote.h"

#define MPS__RCONN_SCRIPTS_MAX 8

/* Zero-initialised means "not connected". The owner supplies the Lua
 * scripts (loaded on every connect) and serialises calls. */
typedef struct mps__rconn {
  redisContext *c;
  pid_t pid;        /* the process that connected c */
  double timeout;   /* socket timeout now set, seconds; 0: none yet */
  unsigned pending; /* replies owed for commands sent by mps__rconn_send */
  const char *const *scripts;
  size_t nscripts;
  char sha[MPS__RCONN_SCRIPTS_MAX][41];
} mps__rconn;

/* Connects (again, or in a forked child) if needed: TCP within the
 * deadline, AUTH, SELECT, SCRIPT LOAD. 0, -ECONNREFUSED, -EHOSTUNREACH (no
 * route, unknown host, or no answer in time), -EACCES (password refused),
 * -ECONNRESET, -ETIMEDOUT, -ENOMEM, -EPROTO. */
int mps__rconn_ensure(mps__rconn *rc, const mps__rurl *u, const mps__deadline *d);

/* Sends one command without waiting for its reply (read, and ignored, by
 * the next call). 0 once it is written to the socket, or an error. */
int mps__rconn_send(mps__rconn *rc, int argc, const char **argv, const size_t *lens);

/* Reads the replies owed for sent commands. 0 or a socket error. */
int mps__rconn_drain(mps__rconn *rc);

/* Runs one command (connected already) and gives its reply in *out (NULL
 * after a socket error), which the caller frees with mps__rconn_free_reply.
 * The socket waits for the reply until the deadline, capped at 10 s, plus
 * `extra` seconds that the server itself may hold the command. Returns 0,
 * the error a reply carries (mps__rconn_error), or a socket error. */
int mps__rconn_call(mps__rconn *rc, const mps__deadline *d, double extra, int argc,
                    const char **argv, const size_t *lens, redisReply **out);

/* EVALSHA of the owner's script number `script`, connecting first if
 * needed and loading the scripts again if the server lost them. argv[0]
 * and argv[1] (and their lens) are filled here. Same returns. */
int mps__rconn_script(mps__rconn *rc, const mps__rurl *u, const mps__deadline *d, double extra,
                      size_t script, int argc, const char **argv, size_t *lens, redisReply **out);

/* The negative errno an error reply means (0 for any other reply). Our
 * scripts' errors start with the errno's name ("EPIPE"); the server's own
 * are mapped: NOAUTH/WRONGPASS -EACCES, WRONGTYPE -EPROTO, LOADING -EBUSY. */
int mps__rconn_error(const redisReply *r);

/* Closes the connection (in a forked child, only this process's fd). */
void mps__rconn_drop(mps__rconn *rc);
void mps__rconn_free_reply(redisReply *r);

#endif
