/* The robust process-shared mutex (mutex.c), private to lib/.
 *
 * Every internal lock of every object goes through these calls: one lock
 * call that takes the caller's deadline, one unlock, one owner-died
 * recovery, one check of a mutex read from a segment. Nothing else in lib/
 * calls pthread_mutex_* on a shared mutex.
 */
#ifndef MPSHARE_MUTEX_H
#define MPSHARE_MUTEX_H

#include <linux/futex.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>

#include "deadline.h"

#define MPS__CACHELINE 64

/* Shared: its size and key offsets are folded into MPS__LAYOUT. */
typedef struct mps__mutex {
  alignas(MPS__CACHELINE) pthread_mutex_t m;
} mps__mutex;

/* recursive: PTHREAD_MUTEX_RECURSIVE, else PTHREAD_MUTEX_ERRORCHECK. */
int mps__mutex_init(mps__mutex *m, bool recursive);

/* Checks a mutex that a segment brought: glibc's kind word must be the one
 * mps__mutex_init writes, the owner word a thread id with only the futex
 * flag bits beside it. 0 or -EPROTO. An opener calls it before it trusts
 * the segment; every lock and unlock checks the kind again (inline, a
 * load from the line it is about to take), since glibc asserts (aborts)
 * on some kinds and mishandles others. */
int mps__mutex_check(const mps__mutex *m, bool recursive);

/* Takes m before d. Returns, with m held: 0, or MPS_OWNER_DIED (its owner
 * died; m is consistent again, what it protects may be half-updated).
 * Returns, without m: -EAGAIN (d is "once" and m is busy, after a grace of
 * a few microseconds), -ETIMEDOUT, -EDEADLK (this thread holds m: nothing
 * was touched, so a call re-entered from a signal handler leaves the outer
 * call's lock alone), -EAGAIN (recursion depth), -EPROTO (m is damaged:
 * a kind glibc would abort on, or an owner word naming a thread that no
 * longer exists, which the kernel would have marked owner-died, or one
 * whose process does not map m's segment).
 *
 * A holder that is stopped (SIGSTOP, a debugger, a frozen cgroup) delays
 * the call until d and no longer (for ever with no deadline: it is a real
 * holder); so does an owner word forged to name a live thread of a process
 * that maps the segment. */
int mps__mutex_lock(mps__mutex *m, const mps__deadline *d);

/* The same, for a caller whose own try just found m busy: it waits at
 * once, without a second try that would only move m's line again. */
int mps__mutex_lock_wait(mps__mutex *m, const mps__deadline *d);

/* One try, no grace: for a caller that scans many mutexes (a Condition's
 * waiter slots), or that tries first and then waits (a Lock). Same returns
 * as mps__mutex_lock. Inline, below. */
static inline int mps__mutex_trylock(mps__mutex *m);

/* The same as mps__mutex_lock, after a short bounded spin on the lock (none on a single CPU):
 * for locks held only for a short copy, this saves the futex sleep and
 * wake of a contended pthread mutex. */
int mps__mutex_lock_spin(mps__mutex *m, const mps__deadline *d);

/* 0, -EPERM (not the owner) or -EPROTO (m's kind was damaged while this
 * thread held it: m is released all the same, its kind word rewritten to
 * the error-checking one glibc can unlink). Ownership is the owner word
 * and, since glibc's unlock then unlinks the mutex through the list
 * pointers stored in it, m being on this thread's robust list: an owner
 * word forged to name this thread cannot make an unlock write through
 * pointers read from a segment. Inline, below. */
static inline int mps__mutex_unlock(mps__mutex *m);

/* Whether the calling thread holds m; no side effect on a dead owner's m. */
bool mps__mutex_held(const mps__mutex *m);

/* How many levels of m the calling thread holds, which holds it: above 1
 * only for a recursive mutex taken again by its owner. */
unsigned mps__mutex_depth(const mps__mutex *m);

/* The owner's thread id read from m's word (0: free), and whether the
 * kernel marked the owner dead. Reads a copy too: no side effect. */
int mps__mutex_owner(const mps__mutex *m, bool *died);

/* Whether a thread holds m and is still alive (read without side effect:
 * the kernel marks a dead owner's word). A liveness token. */
bool mps__mutex_owner_alive(const mps__mutex *m);

/* A hint, read without taking the lock: whether m is free right now. A
 * spinner that only reads keeps the line shared instead of stealing it
 * from the holder on every try. */
bool mps__mutex_looks_free(const mps__mutex *m);

/* For spinners: whether this machine has a single online CPU (then the
 * process being waited for cannot run while we spin), and one pause. */
bool mps__single_cpu(void);
/* Whether more threads want to run than this process has CPUs (now: the
 * time from mps__now_ns()). Then a spinner only keeps the process it
 * waits for off a CPU: waiters sleep at once. */
bool mps__oversubscribed(int64_t now);

static inline void mps__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* ---- the inline fast paths ----------------------------------------------
 *
 * A locked update is a try and an unlock; done out of line with their
 * checks they cost about twice glibc's own calls. Inline, the checks read
 * only the mutex's line (about to be taken anyway) and this thread's own
 * data, and anything unusual goes to mutex.c. */

/* glibc's kind words of our error-checking [0] and recursive [1] mutexes,
 * learnt by mutex.c when it first makes or checks one. 64 bits wide so
 * that "not learnt yet" (INT64_MIN) equals no 32-bit kind a segment can
 * hold: then every check fails and mutex.c learns them. */
extern int64_t mps__mutex_kinds[2];
/* This thread's robust list head; until mutex.c has asked the kernel for
 * it, an empty list of mutex.c's own, which no mutex is the first entry of. */
extern __thread struct robust_list_head *mps__robust_head
    __attribute__((tls_model("initial-exec")));

/* The kind word is one glibc handles as a robust, process-shared,
 * error-checking or recursive mutex. */
static inline bool mps__mutex_kind_ok(const mps__mutex *m)
{
  int64_t k = __atomic_load_n(&m->m.__data.__kind, __ATOMIC_RELAXED);
  return k == __atomic_load_n(&mps__mutex_kinds[0], __ATOMIC_RELAXED) ||
         k == __atomic_load_n(&mps__mutex_kinds[1], __ATOMIC_RELAXED);
}

/* mutex.c: what a try's error means (recovers a dead owner's mutex); the
 * try and the unlock with every check, for whatever the fast path did not
 * take. */
int mps__mutex_result(mps__mutex *m, int err);
int mps__mutex_trylock_slow(mps__mutex *m);
int mps__mutex_unlock_slow(mps__mutex *m);

/* The fast case: the kind is ours and the lock looks free. A busy one
 * goes to mutex.c, which also refuses an owner word that names this
 * thread on a mutex it never took (glibc would believe it: EDEADLK, or a
 * level counted on a lock nobody took). */
static inline int mps__mutex_trylock(mps__mutex *m)
{
  unsigned w = (unsigned)__atomic_load_n(&m->m.__data.__lock, __ATOMIC_RELAXED);
  if (__builtin_expect(!mps__mutex_kind_ok(m) || w != 0, 0))
    return mps__mutex_trylock_slow(m);
  int err = pthread_mutex_trylock(&m->m);
  return __builtin_expect(err == 0, 1) ? 0 : mps__mutex_result(m, err);
}

/* The fast case: m's kind is ours and m is the first entry of this
 * thread's robust list (glibc puts the mutex it locks last there, so a
 * lock released in the order it was taken is found at once). Then glibc
 * linked m for this thread and glibc's unlink writes only through pointers
 * it stored itself; glibc checks the owner word (-EPERM). Anything else,
 * this thread's first unlock included, takes every check in mutex.c. */
static inline int mps__mutex_unlock(mps__mutex *m)
{
  uintptr_t first = (uintptr_t)mps__robust_head->list.next & ~(uintptr_t)1;
  if (__builtin_expect(first == (uintptr_t)&m->m.__data.__list.__next && mps__mutex_kind_ok(m), 1))
    return -pthread_mutex_unlock(&m->m);
  return mps__mutex_unlock_slow(m);
}

#endif
