/* The inspection API: creator identity of live, exited and SIGKILLed
 * creators, a reused pid (a wrong start time), attached processes, each
 * kind's state, the counters after a known sequence of calls, the recovery
 * ring, foreign and damaged files, and a segment changed under the reader.
 * White-box: the header's offsets come from lib/internal.h. */
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>

#include "helpers.h"
#include "queue_internal.h"

static int fds[2], back[2];

static void pipes(void)
{
  cr_assert_eq(pipe(fds), 0);
  cr_assert_eq(pipe(back), 0);
}

static int64_t field(const mps_info_field *fs, size_t n, const char *key)
{
  const mps_info_field *f = mps_info_get(fs, n, key);
  cr_assert_not_null(f, "no field %s", key);
  return f->value;
}
#define STATE(i, k)   field((i)->state, (i)->n_state, k)
#define COUNTER(i, k) field((i)->counters, (i)->n_counters, k)

static void inspect_ok(const char *name, mps_object_info *info)
{
  int err = mps_inspect(name, info);
  cr_assert_eq(err, 0, "mps_inspect(%s): %s", name, mps_strerror(err));
  cr_assert_str_eq(info->name, name);
}

/* A child that creates a lock named arg, says so, and waits for a byte. */
static int create_and_wait(void *arg)
{
  mps_lock *l = mps_lock_create(arg);
  if (l == NULL)
    return 1;
  pipe_put(back[1]);
  pipe_get(fds[0]);
  return 0;
}

Test(inspect, live_then_exited_creator, .timeout = 20)
{
  char name[64];
  test_name(name, "insp-live");
  pipes();
  pid_t pid = child_run(create_and_wait, name);
  pipe_get(back[0]);
  mps_object_info info;
  inspect_ok(name, &info);
  cr_expect_str_eq(info.kind, "lock");
  cr_expect_eq(info.status, 0);
  cr_expect_eq(info.creator_pid, pid);
  cr_expect(info.creator_alive);
  cr_expect_eq(info.creator_uid, getuid());
  cr_expect_eq(info.version, MPS_VERSION_NUMBER);
  cr_expect_eq(info.attached, 1, "the child maps it, the inspector does not");
  cr_expect(fabs(info.created - (double)time(NULL)) < 60);
  struct stat st;
  char path[128];
  snprintf(path, sizeof(path), "/dev/shm%s", name);
  cr_assert_eq(stat(path, &st), 0);
  cr_expect_eq(info.size, (uint64_t)st.st_size);
  pipe_put(fds[1]);
  child_expect_exit(pid, 0);
  inspect_ok(name, &info);
  cr_expect_eq(info.creator_pid, pid);
  cr_expect(!info.creator_alive, "an exited creator is dead");
  cr_expect_eq(info.attached, 0);
  cr_assert_eq(mps_unlink(name), 0);
}

static int create_and_die(void *arg)
{
  mps_lock *l = mps_lock_create(arg);
  if (l == NULL || mps_lock_acquire(l, MPS_FOREVER) != 0)
    return 1;
  raise(SIGKILL);
  return 2;
}

/* The kernel marks the dead holder's lock; the next acquirer recovers it,
 * and the recovery is in the ring with the recovering pid. */
Test(inspect, killed_creator_and_recovery_ring, .timeout = 20)
{
  char name[64];
  test_name(name, "insp-killed");
  pid_t pid = child_run(create_and_die, name);
  child_expect_signal(pid, SIGKILL);
  mps_object_info info;
  inspect_ok(name, &info);
  cr_expect(!info.creator_alive);
  cr_expect_eq(STATE(&info, "held"), 0);
  cr_expect_eq(STATE(&info, "owner_died"), 1);
  cr_expect_eq(COUNTER(&info, "acquisitions"), 1);
  cr_expect_eq(info.recoveries, 0);
  mps_lock *l = mps_lock_open(name);
  cr_assert_not_null(l);
  cr_assert_eq(mps_lock_acquire(l, MPS_FOREVER), MPS_OWNER_DIED);
  inspect_ok(name, &info);
  cr_expect_eq(STATE(&info, "held"), 1);
  cr_expect_eq(STATE(&info, "owner_pid"), getpid());
  cr_expect_eq(STATE(&info, "owner_alive"), 1);
  cr_expect_eq(COUNTER(&info, "acquisitions"), 2);
  cr_expect_eq(COUNTER(&info, "owner_died"), 1);
  cr_expect_eq(info.attached, 1);
  cr_assert_eq(info.recoveries, 1);
  cr_assert_eq(info.n_recent, 1);
  cr_expect_eq(info.recent[0].pid, getpid());
  cr_expect_str_eq(info.recent[0].what, "lock owner died; lock made consistent");
  cr_expect(fabs(info.recent[0].time - (double)time(NULL)) < 60);
  cr_assert_eq(mps_lock_release(l), 0);
  mps_lock_close(l);
  cr_assert_eq(mps_unlink(name), 0);
}

/* A pid that now names another process: the recorded start time does not
 * match, so the creator counts as dead although the pid runs. */
Test(inspect, reused_pid_is_not_the_creator, .timeout = 10)
{
  char name[64];
  test_name(name, "insp-reuse");
  mps_event *e = mps_event_create(name);
  cr_assert_not_null(e);
  mps_object_info info;
  inspect_ok(name, &info);
  cr_assert(info.creator_alive);
  cr_assert_eq(info.creator_pid, getpid());
  mps_shm *raw = NULL;
  (void)raw;
  char path[128];
  snprintf(path, sizeof(path), "/dev/shm%s", name);
  int fd = open(path, O_RDWR);
  cr_assert(fd >= 0);
  uint64_t wrong = info.creator_start + 12345;
  cr_assert_eq(pwrite(fd, &wrong, sizeof(wrong), offsetof(struct mps__hdr, creator_start)),
               (ssize_t)sizeof(wrong));
  close(fd);
  inspect_ok(name, &info);
  cr_expect_eq(info.creator_pid, getpid());
  cr_expect(!info.creator_alive, "same pid, other start time: not the creator");
  cr_expect_eq(info.attached, 1);
  mps_event_close(e);
  cr_assert_eq(mps_unlink(name), 0);
}

/* A known sequence of calls on each kind, and the counters it must give. */
Test(inspect, counters_follow_a_known_sequence, .timeout = 20)
{
  char qn[64], sn[64], en[64], bn[64], cn[64], vn[64];
  mps_object_info info;
  char buf[16];
  mps_queue_opts o = {.maxsize = 4, .max_msg = 8};
  mps_queue *q = mps_queue_create(test_name(qn, "insp-cq"), &o);
  cr_assert_not_null(q);
  for (int i = 0; i < 4; i++)
    cr_assert_eq(mps_queue_put(q, "m", 1, 0), 0);
  cr_assert_eq(mps_queue_put(q, "m", 1, 0), -EAGAIN); /* full: a put timeout */
  cr_assert_eq(mps_queue_put(q, "m", 1, 0.01), -ETIMEDOUT);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(mps_queue_get(q, buf, sizeof(buf), 0), 1);
  cr_assert_eq(mps_queue_put(q, "m", 1, 0), 0);
  for (int i = 0; i < 2; i++)
    cr_assert_eq(mps_queue_get(q, buf, sizeof(buf), 0), 1);
  cr_assert_eq(mps_queue_get(q, buf, sizeof(buf), 0), -EAGAIN); /* empty: a get timeout */
  inspect_ok(qn, &info);
  cr_expect_str_eq(info.kind, "queue");
  cr_expect_eq(COUNTER(&info, "puts"), 5);
  cr_expect_eq(COUNTER(&info, "gets"), 5);
  cr_expect_eq(COUNTER(&info, "put_timeouts"), 2);
  cr_expect_eq(COUNTER(&info, "get_timeouts"), 1);
  cr_expect_eq(COUNTER(&info, "peak_depth"), 4);
  cr_expect_eq(COUNTER(&info, "holes_skipped"), 0);
  cr_expect_eq(STATE(&info, "depth"), 0);
  cr_expect_eq(STATE(&info, "maxsize"), 4);
  cr_expect_eq(STATE(&info, "max_msg"), 8);
  cr_expect_eq(STATE(&info, "unfinished"), 5);
  cr_expect_eq(STATE(&info, "shutdown"), 0);
  cr_assert_eq(mps_queue_task_done(q), 0);
  cr_assert_eq(mps_queue_shutdown(q), 0);
  inspect_ok(qn, &info);
  cr_expect_eq(STATE(&info, "unfinished"), 4);
  cr_expect_eq(STATE(&info, "shutdown"), 1);

  /* The mutex-based orders count the same way as the FIFO core. */
  char pn[64];
  mps_queue_opts po = {.maxsize = 3, .max_msg = 8, .order = MPS_PRIORITY};
  mps_queue *pq = mps_queue_create(test_name(pn, "insp-cp"), &po);
  cr_assert_not_null(pq);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(mps_queue_put_prio(pq, 3 - i, "p", 1, 0), 0);
  cr_assert_eq(mps_queue_put_prio(pq, 0, "p", 1, 0), -EAGAIN);
  cr_assert_eq(mps_queue_get(pq, buf, sizeof(buf), 0), 1);
  inspect_ok(pn, &info);
  cr_expect_str_eq(mps_info_get(info.state, info.n_state, "order")->text, "priority");
  cr_expect_eq(STATE(&info, "depth"), 2);
  cr_expect_eq(COUNTER(&info, "puts"), 3);
  cr_expect_eq(COUNTER(&info, "gets"), 1);
  cr_expect_eq(COUNTER(&info, "put_timeouts"), 1);
  cr_expect_eq(COUNTER(&info, "get_timeouts"), 0);
  cr_expect_eq(COUNTER(&info, "peak_depth"), 3);
  mps_queue_close(pq);
  cr_assert_eq(mps_unlink(pn), 0);

  mps_semaphore *s = mps_bounded_semaphore_create(test_name(sn, "insp-cs"), 1);
  cr_assert_not_null(s);
  cr_assert_eq(mps_semaphore_acquire(s, 0), 0);       /* no wait */
  cr_assert_eq(mps_semaphore_acquire(s, 0), -EAGAIN); /* a wait that timed out */
  cr_assert_eq(mps_semaphore_acquire(s, 0.01), -ETIMEDOUT);
  cr_assert_eq(mps_semaphore_release(s), 0);          /* a wake-up */
  cr_assert_eq(mps_semaphore_release(s), -EOVERFLOW); /* none */
  inspect_ok(sn, &info);
  cr_expect_str_eq(info.kind, "bounded_semaphore");
  cr_expect_eq(STATE(&info, "value"), 1);
  cr_expect_eq(STATE(&info, "bound"), 1);
  cr_expect_eq(COUNTER(&info, "waits"), 2);
  cr_expect_eq(COUNTER(&info, "timeouts"), 2);
  cr_expect_eq(COUNTER(&info, "wakeups"), 1);

  mps_event *e = mps_event_create(test_name(en, "insp-ce"));
  cr_assert_not_null(e);
  cr_assert_eq(mps_event_wait(e, 0.01), -ETIMEDOUT);
  cr_assert_eq(mps_event_set(e), 0);
  cr_assert_eq(mps_event_wait(e, 0.01), 0); /* set: no wait */
  inspect_ok(en, &info);
  cr_expect_eq(STATE(&info, "set"), 1);
  cr_expect_eq(COUNTER(&info, "waits"), 1);
  cr_expect_eq(COUNTER(&info, "timeouts"), 1);
  cr_expect_eq(COUNTER(&info, "wakeups"), 1);

  mps_barrier *b = mps_barrier_create(test_name(bn, "insp-cb"), 2);
  cr_assert_not_null(b);
  cr_assert_eq(mps_barrier_wait(b, 0.01), -ETIMEDOUT); /* waits, times out, breaks it */
  inspect_ok(bn, &info);
  cr_expect_eq(STATE(&info, "parties"), 2);
  cr_expect_eq(STATE(&info, "broken"), 1);
  cr_expect_eq(COUNTER(&info, "waits"), 1);
  cr_expect_eq(COUNTER(&info, "timeouts"), 1);
  cr_expect_eq(COUNTER(&info, "wakeups"), 1);

  mps_cond *c = mps_cond_create(test_name(cn, "insp-cc"));
  cr_assert_not_null(c);
  cr_assert_eq(mps_cond_acquire(c, MPS_FOREVER), 0);
  cr_assert_eq(mps_cond_wait(c, 0.01), -ETIMEDOUT);
  cr_assert_eq(mps_cond_notify(c, 1), 0); /* nobody waits: no wake-up */
  inspect_ok(cn, &info);
  cr_expect_eq(STATE(&info, "waiters"), 0);
  cr_expect_eq(STATE(&info, "held"), 1);
  cr_expect_eq(COUNTER(&info, "waits"), 1);
  cr_expect_eq(COUNTER(&info, "timeouts"), 1);
  cr_expect_eq(COUNTER(&info, "wakeups"), 0);
  cr_assert_eq(mps_cond_release(c), 0);

  mps_array *v = mps_array_create(test_name(vn, "insp-cv"), MPS_DOUBLE, 10, true);
  cr_assert_not_null(v);
  mps_lock *l = mps_array_get_lock(v);
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(mps_lock_acquire(l, MPS_FOREVER), 0);
    cr_assert_eq(mps_lock_release(l), 0);
  }
  cr_assert_eq(mps_lock_acquire(l, 0.5), 0);
  inspect_ok(vn, &info);
  cr_expect_str_eq(info.kind, "array");
  cr_expect_str_eq(mps_info_get(info.state, info.n_state, "type")->text, "double");
  cr_expect_eq(STATE(&info, "length"), 10);
  cr_expect_eq(STATE(&info, "held"), 1);
  cr_expect_eq(STATE(&info, "owner_pid"), getpid());
  cr_expect_eq(COUNTER(&info, "acquisitions"), 4);
  cr_expect_eq(COUNTER(&info, "contended"), 0);
  cr_assert_eq(mps_lock_release(l), 0);

  mps_queue_close(q);
  mps_semaphore_close(s);
  mps_event_close(e);
  mps_barrier_close(b);
  mps_cond_close(c);
  mps_array_close(v);
  const char *names[] = {qn, sn, en, bn, cn, vn};
  for (int i = 0; i < 6; i++)
    cr_assert_eq(mps_unlink(names[i]), 0);
}

/* The child holds the lock until the parent is asleep waiting for it. */
static int hold_until_blocked(void *arg)
{
  mps_lock *l = mps_lock_open(arg);
  if (l == NULL || mps_lock_acquire(l, MPS_FOREVER) != 0)
    return 1;
  pipe_put(back[1]);
  pipe_get(fds[0]); /* the parent's pid */
  wait_until_blocked(getppid());
  return mps_lock_release(l) == 0 ? 0 : 2;
}

/* The FIFO queue's peak is a depth the queue had: its puts count the room
 * from a head cached in the handle, which gets do not move, so a bound
 * taken from it reads maxsize after one lap of a queue never more than 1
 * deep. Then a queue filled to 700 of 1024 on every lap: the peak is
 * exact to maxsize/16 (queue_ring.c). */
Test(inspect, fifo_peak_is_a_depth_the_queue_had, .timeout = 20)
{
  char qn[64];
  char msg[64] = {0};
  mps_object_info info;
  mps_queue_opts o = {.maxsize = 1024, .max_msg = sizeof(msg)};
  mps_queue *q = mps_queue_create(test_name(qn, "insp-peak"), &o);
  cr_assert_not_null(q);
  for (int i = 0; i < 3000; i++) {
    cr_assert_eq(mps_queue_put(q, msg, sizeof(msg), 0), 0);
    cr_assert_eq(mps_queue_get(q, msg, sizeof(msg), 0), (ssize_t)sizeof(msg));
  }
  inspect_ok(qn, &info);
  cr_expect_eq(COUNTER(&info, "puts"), 3000);
  cr_expect_eq(COUNTER(&info, "peak_depth"), 1, "peak %lld after 3000 puts, each got at once",
               (long long)COUNTER(&info, "peak_depth"));
  for (int lap = 0; lap < 3; lap++) {
    for (int i = 0; i < 700; i++)
      cr_assert_eq(mps_queue_put(q, msg, sizeof(msg), 0), 0);
    for (int i = 0; i < 700; i++)
      cr_assert_eq(mps_queue_get(q, msg, sizeof(msg), 0), (ssize_t)sizeof(msg));
  }
  inspect_ok(qn, &info);
  int64_t peak = COUNTER(&info, "peak_depth");
  cr_expect(peak <= 700 && peak > 700 - 1024 / 16, "peak %lld, the queue reached 700",
            (long long)peak);
  mps_queue_close(q);
  cr_assert_eq(mps_unlink(qn), 0);
}

Test(inspect, contended_acquisition_is_counted, .timeout = 20)
{
  char name[64];
  test_name(name, "insp-contended");
  pipes();
  mps_lock *l = mps_lock_create(name);
  cr_assert_not_null(l);
  pid_t pid = child_run(hold_until_blocked, name);
  pipe_get(back[0]);
  pipe_put(fds[1]);
  cr_assert_eq(mps_lock_acquire(l, MPS_FOREVER), 0);
  child_expect_exit(pid, 0);
  mps_object_info info;
  inspect_ok(name, &info);
  cr_expect_eq(COUNTER(&info, "acquisitions"), 2);
  cr_expect_eq(COUNTER(&info, "contended"), 1);
  cr_expect_eq(COUNTER(&info, "owner_died"), 0);
  cr_assert_eq(mps_lock_release(l), 0);
  mps_lock_close(l);
  cr_assert_eq(mps_unlink(name), 0);
}

static void write_file(const char *name, const void *data, size_t len)
{
  char path[128];
  snprintf(path, sizeof(path), "/dev/shm%s", name);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  cr_assert(fd >= 0);
  cr_assert_eq(write(fd, data, len), (ssize_t)len);
  close(fd);
}

static bool listed(const mps_object_info *list, size_t n, const char *name, const char **kind)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp(list[i].name, name) == 0) {
      *kind = list[i].kind;
      return true;
    }
  return false;
}

/* Foreign files and damaged segments are -EPROTO, never listed as
 * mpshare objects, and listed as foreign only when asked for. */
Test(inspect, foreign_and_damaged_files, .timeout = 10)
{
  char foreign[64], damaged[64], good[64];
  test_name(foreign, "insp-foreign");
  test_name(damaged, "insp-damaged");
  test_name(good, "insp-good");
  write_file(foreign, "not a segment at all", 20);
  mps_queue *q = mps_queue_create(damaged, NULL);
  cr_assert_not_null(q);
  mps_queue_close(q);
  char path[128];
  snprintf(path, sizeof(path), "/dev/shm%s", damaged);
  uint64_t huge = UINT64_C(1) << 40;
  int fd = open(path, O_RDWR);
  cr_assert(fd >= 0);
  cr_assert_eq(pwrite(fd, &huge, 8, offsetof(struct mps__queue_shm, tail)), 8);
  close(fd);
  mps_value *v = mps_value_create(good, MPS_INT, false);
  cr_assert_not_null(v);

  mps_object_info info;
  cr_expect_eq(mps_inspect(foreign, &info), -EPROTO);
  cr_expect_str_eq(info.kind, "foreign");
  cr_expect_eq(info.size, 20);
  cr_expect_eq(mps_inspect(damaged, &info), -EPROTO, "a queue claiming 2^40 messages");
  cr_expect_str_eq(info.kind, "foreign");

  mps_object_info *list;
  size_t n;
  const char *kind = NULL;
  cr_assert_eq(mps_inspect_list(&list, &n, 0), 0);
  cr_expect(!listed(list, n, foreign, &kind));
  cr_expect(!listed(list, n, damaged, &kind));
  cr_expect(listed(list, n, good, &kind));
  cr_expect_str_eq(kind, "value");
  mps_inspect_free(list);
  cr_assert_eq(mps_inspect_list(&list, &n, MPS_INSPECT_ALL), 0);
  cr_expect(listed(list, n, foreign, &kind));
  cr_expect_str_eq(kind, "foreign");
  cr_expect(listed(list, n, damaged, &kind));
  cr_expect_str_eq(kind, "foreign");
  mps_inspect_free(list);

  cr_expect_eq(mps_inspect("no/slash", &info), -EINVAL);
  cr_expect_eq(mps_inspect(good, NULL), -EINVAL);
  cr_expect_eq(mps_inspect_list(NULL, &n, 0), -EINVAL);
  cr_expect_eq(mps_inspect_list(&list, &n, 0x100), -EINVAL);
  char missing[64];
  cr_expect_eq(mps_inspect(test_name(missing, "insp-missing"), &info), -ENOENT);
  mps_value_close(v);
  cr_assert_eq(mps_unlink(foreign), 0);
  cr_assert_eq(mps_unlink(damaged), 0);
  cr_assert_eq(mps_unlink(good), 0);
}

/* A child keeps truncating, regrowing and scribbling over a segment while
 * the parent inspects it: every answer is 0 or -EPROTO, never a crash. */
static int scribble(void *arg)
{
  char path[128];
  snprintf(path, sizeof(path), "/dev/shm%s", (const char *)arg);
  int fd = open(path, O_RDWR);
  if (fd < 0)
    return 1;
  struct stat st;
  fstat(fd, &st);
  unsigned char junk[256];
  for (unsigned i = 0;; i++) {
    for (size_t k = 0; k < sizeof(junk); k++)
      junk[k] = (unsigned char)(i * 31 + k);
    if (ftruncate(fd, (off_t)(i % 3 == 0   ? 0
                              : i % 3 == 1 ? 100
                                           : st.st_size)) < 0 ||
        pwrite(fd, junk, (i % 5) * 50, (off_t)(i % 7) * 64) < 0)
      return 2;
  }
}

Test(inspect, a_segment_changed_under_the_reader, .timeout = 30)
{
  char name[64];
  test_name(name, "insp-scribble");
  mps_queue *q = mps_queue_create(name, NULL);
  cr_assert_not_null(q);
  mps_queue_close(q);
  pid_t pid = child_run(scribble, name);
  int ok = 0, proto = 0;
  for (int i = 0; i < 3000; i++) {
    mps_object_info info;
    int err = mps_inspect(name, &info);
    cr_assert(err == 0 || err == -EPROTO, "mps_inspect: %d", err);
    err == 0 ? ok++ : proto++;
  }
  kill(pid, SIGKILL);
  child_expect_signal(pid, SIGKILL);
  cr_expect_gt(proto, 0, "the scribbler was seen");
  cr_assert_eq(mps_unlink(name), 0);
}
