/* Private: what each kind of object tells inspect.c about itself. Each
 * object's file defines its view next to its shared struct, so the struct
 * stays private to that file. */
#ifndef MPSHARE_INSPECT_PRIV_H
#define MPSHARE_INSPECT_PRIV_H

#include "internal.h"

/* Which names a kind's counters have (stats.h gives their ids). */
enum mps__counter_family { MPS__FAMILY_LOCK, MPS__FAMILY_QUEUE, MPS__FAMILY_WAIT };

struct mps__kind_view {
  enum mps__kind kind;
  const char *name;
  uint32_t layout; /* the kind's layout word */
  size_t fixed;    /* bytes of its fixed shared struct, header included */
  enum mps__counter_family family;
  /* Checks a copy of the first `fixed` bytes of a segment of `size` bytes
   * (the kind's own open-time check) and adds the state fields to info,
   * whose counters are already read. 0 or -EPROTO. Reads nothing outside
   * the copy. */
  int (*describe)(const void *copy, size_t size, mps_object_info *info);
};

extern const struct mps__kind_view mps__lock_view, mps__rlock_view, mps__value_view,
    mps__array_view, mps__shm_view, mps__semaphore_view, mps__event_view, mps__cond_view,
    mps__barrier_view, mps__queue_view;

/* Appends a field to info->state (no-op when full). */
void mps__info_num(mps_object_info *info, const char *key, int64_t v);
void mps__info_bool(mps_object_info *info, const char *key, bool v);
void mps__info_text(mps_object_info *info, const char *key, const char *text);

/* Sets the counter key that inspect.c read from the shards, for a kind
 * that keeps that count elsewhere (the FIFO queue's puts and gets). */
void mps__info_counter(mps_object_info *info, const char *key, int64_t v);

/* A mutex's state, for a lock's view: held or free, owner and whether it
 * runs (mutex.c reads the word; inspect.c checks the process). */
void mps__info_mutex(mps_object_info *info, const mps__mutex *m);

#endif
