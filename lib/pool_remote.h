/* Private header shared by pool_remote.c (the submitter and the registry)
 * and pool_serve.c (the worker host): the messages they exchange. */
#ifndef MPSHARE_POOL_REMOTE_H
#define MPSHARE_POOL_REMOTE_H

#include <endian.h>

#include "remote.h"

#define MPS__TASK_MAGIC     0x4d505354u /* "MPST" */
#define MPS__F_AT_MOST_ONCE 1u

/* A task message: this header (little-endian), the task name, the key of
 * the submitter's result queue, the argument bytes. */
struct mps__task_hdr {
  uint32_t magic, flags;
  uint64_t id;
  uint16_t name_len, reply_len;
  uint32_t pad_;
};

/* A result message: this header (little-endian), the result bytes. status
 * is the library's (0: the task returned `value`), as mps_future_result
 * gives them apart. */
struct mps__res_hdr {
  uint64_t id;
  int32_t status;
  uint32_t pad_;
  int64_t value;
};

/* A received task: copies of its names, its argument in the message. */
struct mps__task {
  uint64_t id;
  uint32_t flags;
  char name[MPS_REMOTE_NAME_MAX + 1], reply[MPS_NAME_MAX + 1];
  const unsigned char *arg;
  size_t len;
};

/* 0 or -EPROTO (not a task message). */
int mps__task_parse(const unsigned char *m, size_t n, struct mps__task *t);
/* The function registered under name, or NULL. */
mps_task_fn mps__registry_fn(const char *name);
/* The options with defaults filled in; -EINVAL. */
int mps__remote_opts(mps_remote_opts *o, const mps_remote_opts *in);
/* Creates the task queue at url, or opens it if it exists. */
struct mps__rq *mps__task_queue(const char *url, const mps_remote_opts *o, int *err);

#endif
