/* Writes the fuzzers' seed corpus: real segments of every kind, in the
 * states a process can find them in (fresh, in use, a holder dead), each
 * file the target's selector byte followed by the segment's bytes.
 * Made at `make fuzz` time from the library being fuzzed, so the seeds
 * always have the current layout.  Usage: seeds DIR */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mpshare.h>

static const char *out_dir;
static int seq;

static void die(const char *what)
{
  fprintf(stderr, "seeds: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* Copies segment `name` into DIR/target/NNN with selector byte sel, then
 * unlinks it. */
static void dump(const char *target, unsigned char sel, const char *name)
{
  char path[512];
  snprintf(path, sizeof(path), "/dev/shm%s", name);
  FILE *in = fopen(path, "rb");
  if (in == NULL)
    die(path);
  snprintf(path, sizeof(path), "%s/%s", out_dir, target);
  mkdir(path, 0755);
  snprintf(path, sizeof(path), "%s/%s/seed-%03d", out_dir, target, seq++);
  FILE *out = fopen(path, "wb");
  if (out == NULL)
    die(path);
  fputc(sel, out);
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
    fwrite(buf, 1, n, out);
  fclose(in);
  fclose(out);
  mps_unlink(name);
}

static const char *nm(void)
{
  static char name[64];
  snprintf(name, sizeof(name), "/mps-seed-%d-%d", (int)getpid(), seq);
  return name;
}

/* A child takes l and dies holding it: the kernel marks it owner-died. */
static void die_holding(mps_lock *l)
{
  pid_t pid = fork();
  if (pid == 0)
    _exit(mps_lock_acquire(l, MPS_FOREVER) >= 0 ? 0 : 1);
  waitpid(pid, NULL, 0);
}

static void locks(void)
{
  for (int dead = 0; dead < 2; dead++) {
    const char *n = nm();
    mps_lock *l = mps_lock_create(n);
    if (dead)
      die_holding(l);
    mps_lock_close(l);
    dump("fuzz_lock", 0, n);
    n = nm();
    mps_rlock *r = mps_rlock_create(n);
    mps_rlock_close(r);
    dump("fuzz_lock", 1, n);
    n = nm();
    mps_value *v = mps_value_create(n, MPS_DOUBLE, true);
    if (dead)
      die_holding(mps_value_get_lock(v));
    mps_value_close(v);
    dump("fuzz_lock", 2, n);
  }
  const char *n = nm();
  mps_value_close(mps_value_create_sized(n, 200, false));
  dump("fuzz_lock", 2, n);
  n = nm();
  mps_array_close(mps_array_create(n, MPS_INT16, 10, true));
  dump("fuzz_lock", 3, n);
  n = nm();
  mps_shm_close(mps_shm_create(n, 300));
  dump("fuzz_lock", 4, n);
}

static void sync_objects(void)
{
  const char *n = nm();
  mps_semaphore *s = mps_semaphore_create(n, 3);
  mps_semaphore_close(s);
  dump("fuzz_sync", 0, n);
  n = nm();
  s = mps_bounded_semaphore_create(n, 2);
  (void)!mps_semaphore_acquire(s, 0);
  mps_semaphore_close(s);
  dump("fuzz_sync", 0, n);
  for (int set = 0; set < 2; set++) {
    n = nm();
    mps_event *e = mps_event_create(n);
    if (set)
      mps_event_set(e);
    mps_event_close(e);
    dump("fuzz_sync", 1, n);
  }
  n = nm();
  mps_cond_close(mps_cond_create(n));
  dump("fuzz_sync", 2, n);
  for (int broken = 0; broken < 2; broken++) {
    n = nm();
    mps_barrier *b = mps_barrier_create(n, 3);
    if (broken)
      mps_barrier_abort(b);
    mps_barrier_close(b);
    dump("fuzz_sync", 3, n);
  }
}

static void queues(void)
{
  for (int order = MPS_FIFO; order <= MPS_PRIORITY; order++) {
    for (int full = 0; full < 2; full++) {
      const char *n = nm();
      mps_queue_opts o = {.maxsize = 4, .max_msg = 32, .order = (mps_order)order};
      mps_queue *q = mps_queue_create(n, &o);
      if (q == NULL)
        die("queue");
      static const char msg[16] = "message"; /* room for the longest, 10 */
      for (int i = 0; i < (full ? 4 : 2); i++)
        (void)!mps_queue_put_prio(q, 3 - i, msg, 7 + (size_t)i, 0);
      char buf[32];
      if (full)
        (void)!mps_queue_get(q, buf, sizeof(buf), 0);
      mps_queue_close(q);
      dump("fuzz_queue", (unsigned char)order, n);
    }
  }
}

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: seeds DIR\n");
    return 2;
  }
  out_dir = argv[1];
  mkdir(out_dir, 0755);
  locks();
  sync_objects();
  queues();
  printf("seeds: %d segments in %s\n", seq, out_dir);
  return 0;
}
