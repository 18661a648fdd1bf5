/* Pipe: message boundaries, duplex and one-way ends, poll, -EPIPE after the
 * peer exits or is killed, -EMSGSIZE that leaves the message, bad input. */
#define _GNU_SOURCE /* gettid */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

#include "helpers.h"

static mps_conn *ca, *cb;

static void make(bool duplex) { cr_assert_eq(mps_pipe(&ca, &cb, duplex), 0); }

Test(pipe, boundaries_are_kept_including_empty_messages, .timeout = 10)
{
  make(true);
  static char big[MPS_CONN_MSG_MAX];
  memset(big, 'x', sizeof(big));
  cr_assert_eq(mps_conn_send(cb, "one", 3), 0);
  cr_assert_eq(mps_conn_send(cb, "", 0), 0);
  cr_assert_eq(mps_conn_send(cb, "three!", 6), 0);
  cr_assert_eq(mps_conn_send(cb, big, sizeof(big)), 0);
  char buf[MPS_CONN_MSG_MAX];
  cr_assert_eq(mps_conn_recv(ca, buf, sizeof(buf), 1.0), 3);
  cr_assert_eq(memcmp(buf, "one", 3), 0);
  cr_assert_eq(mps_conn_recv(ca, buf, sizeof(buf), 1.0), 0);
  cr_assert_eq(mps_conn_recv(ca, buf, sizeof(buf), 1.0), 6);
  cr_assert_eq(memcmp(buf, "three!", 6), 0);
  cr_assert_eq(mps_conn_recv(ca, buf, sizeof(buf), 1.0), (ssize_t)sizeof(big));
  cr_assert_eq(memcmp(buf, big, sizeof(big)), 0);
  cr_assert_eq(mps_conn_recv(ca, buf, sizeof(buf), 0), -EAGAIN);
  mps_conn_close(ca);
  mps_conn_close(cb);
}

Test(pipe, too_small_buffer_gives_emsgsize_and_keeps_the_message, .timeout = 10)
{
  make(false);
  cr_assert_eq(mps_conn_send(cb, "hello world", 11), 0);
  char buf[32];
  cr_assert_eq(mps_conn_recv(ca, buf, 5, 1.0), -EMSGSIZE);
  cr_assert_eq(mps_conn_recv(ca, NULL, 0, 1.0), -EMSGSIZE);
  cr_assert_eq(mps_conn_recv(ca, buf, sizeof(buf), 1.0), 11);
  cr_assert_eq(memcmp(buf, "hello world", 11), 0);
  mps_conn_close(ca);
  mps_conn_close(cb);
}

Test(pipe, larger_than_limit_is_refused_not_truncated, .timeout = 10)
{
  make(true);
  char *big = calloc(1, MPS_CONN_MSG_MAX + 1);
  cr_assert_eq(mps_conn_send(cb, big, MPS_CONN_MSG_MAX + 1), -EMSGSIZE);
  char c;
  cr_assert_eq(mps_conn_recv(ca, &c, 1, 0), -EAGAIN, "nothing was sent");
  free(big);
  mps_conn_close(ca);
  mps_conn_close(cb);
}

static int echo_upper(void *arg)
{
  (void)arg;
  mps_conn_close(ca); /* the child uses b only */
  char buf[64];
  for (;;) {
    ssize_t n = mps_conn_recv(cb, buf, sizeof(buf), 10.0);
    if (n == -EPIPE)
      return 0;
    if (n < 0)
      return 1;
    for (ssize_t i = 0; i < n; i++)
      buf[i] = (char)(buf[i] - 'a' + 'A');
    if (mps_conn_send(cb, buf, (size_t)n) != 0)
      return 2;
  }
}

Test(pipe, duplex_talks_both_ways_across_fork, .timeout = 20)
{
  make(true);
  pid_t pid = child_run(echo_upper, NULL);
  mps_conn_close(cb);
  const char *words[] = {"abc", "hello", "z"};
  for (int i = 0; i < 3; i++) {
    char buf[64];
    cr_assert_eq(mps_conn_send(ca, words[i], strlen(words[i])), 0);
    ssize_t n = mps_conn_recv(ca, buf, sizeof(buf), 10.0);
    cr_assert_eq(n, (ssize_t)strlen(words[i]));
    for (ssize_t k = 0; k < n; k++)
      cr_assert_eq(buf[k], words[i][k] - 'a' + 'A');
  }
  mps_conn_close(ca); /* the child's recv sees -EPIPE and exits 0 */
  child_expect_exit(pid, 0);
}

Test(pipe, one_way_refuses_the_wrong_direction, .timeout = 10)
{
  make(false);
  char buf[8];
  cr_assert_eq(mps_conn_send(ca, "x", 1), -EINVAL, "a is the read end");
  cr_assert_eq(mps_conn_recv(cb, buf, sizeof(buf), 0), -EINVAL, "b is the write end");
  cr_assert_eq(mps_conn_poll(cb, 0), -EINVAL);
  cr_assert_eq(mps_conn_send(cb, "x", 1), 0);
  cr_assert_eq(mps_conn_recv(ca, buf, sizeof(buf), 1.0), 1);
  mps_conn_close(ca);
  mps_conn_close(cb);
}

static int send_after_go(void *arg)
{
  int *go = arg;
  mps_conn_close(ca);
  char c;
  if (read(go[0], &c, 1) != 1)
    return 1;
  return mps_conn_send(cb, "ping", 4) == 0 ? 0 : 2;
}

Test(pipe, poll_reports_readiness_and_fileno_works_with_poll, .timeout = 20)
{
  make(false);
  int go[2];
  cr_assert_eq(pipe(go), 0);
  pid_t pid = child_run(send_after_go, go);
  mps_conn_close(cb);
  cr_assert_eq(mps_conn_poll(ca, 0), 0);
  double t0 = test_now();
  cr_assert_eq(mps_conn_poll(ca, 0.1), 0);
  cr_assert_geq(test_now() - t0, 0.1, "poll returned before its timeout");
  cr_assert_eq(write(go[1], "g", 1), 1);
  cr_assert_eq(mps_conn_poll(ca, 10.0), 1);
  struct pollfd p = {.fd = mps_conn_fileno(ca), .events = POLLIN};
  cr_assert_eq(poll(&p, 1, 0), 1);
  char buf[8];
  cr_assert_eq(mps_conn_recv(ca, buf, sizeof(buf), 0), 4);
  child_expect_exit(pid, 0);
  close(go[0]);
  close(go[1]);
  mps_conn_close(ca);
}

Test(pipe, recv_timeout_takes_at_least_the_timeout, .timeout = 10)
{
  make(true);
  char buf[8];
  double t0 = test_now();
  cr_assert_eq(mps_conn_recv(ca, buf, sizeof(buf), 0.2), -ETIMEDOUT);
  cr_assert_geq(test_now() - t0, 0.2);
  mps_conn_close(ca);
  mps_conn_close(cb);
}

static _Atomic pid_t reader_tid;

static void *recv_forever(void *arg)
{
  static char buf[8];
  atomic_store(&reader_tid, gettid());
  ssize_t n = mps_conn_recv(ca, buf, sizeof(buf), MPS_FOREVER);
  *(ssize_t *)arg = n;
  return NULL;
}

/* Polls until thread tid of this process sleeps in poll(). */
static void wait_until_polling(pid_t tid)
{
  char path[64], wchan[128] = "";
  snprintf(path, sizeof(path), "/proc/self/task/%d/wchan", (int)tid);
  for (int i = 0; i < 100000 && strstr(wchan, "poll") == NULL; i++) {
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    wchan[fread(wchan, 1, sizeof(wchan) - 1, f)] = '\0';
    fclose(f);
    nanosleep(&(struct timespec){0, 100000}, NULL);
  }
  cr_assert(strstr(wchan, "poll") != NULL, "the reader never blocked in poll");
}

Test(pipe, a_blocked_reader_does_not_hold_up_another_readers_timeout, .timeout = 10)
{
  make(true);
  pthread_t t;
  ssize_t got = 0;
  cr_assert_eq(pthread_create(&t, NULL, recv_forever, &got), 0);
  while (atomic_load(&reader_tid) == 0)
    sched_yield();
  wait_until_polling(atomic_load(&reader_tid));
  char buf[8];
  cr_assert_eq(mps_conn_recv(ca, buf, sizeof(buf), 0), -EAGAIN);
  cr_assert_eq(mps_conn_recv(ca, buf, sizeof(buf), 0.1), -ETIMEDOUT);
  cr_assert_eq(mps_conn_send(cb, "wake", 4), 0);
  cr_assert_eq(pthread_join(t, NULL), 0);
  cr_assert_eq(got, 4, "the blocked reader still gets the message");
  mps_conn_close(ca);
  mps_conn_close(cb);
}

static int send_then_die(void *arg)
{
  int how = *(int *)arg;
  mps_conn_close(ca);
  if (mps_conn_send(cb, "last", 4) != 0)
    return 1;
  if (how == SIGKILL)
    raise(SIGKILL);
  return how;
}

static void peer_dies(int how)
{
  make(true);
  pid_t pid = child_run(send_then_die, &how);
  mps_conn_close(cb);
  if (how == SIGKILL)
    child_expect_signal(pid, SIGKILL);
  else
    child_expect_exit(pid, how);
  char buf[8];
  cr_assert_eq(mps_conn_recv(ca, buf, sizeof(buf), 5.0), 4, "data sent before dying is kept");
  cr_assert_eq(mps_conn_poll(ca, 0), 1, "a closed peer reads as ready");
  cr_assert_eq(mps_conn_recv(ca, buf, sizeof(buf), 5.0), -EPIPE);
  cr_assert_eq(mps_conn_send(ca, "x", 1), -EPIPE);
  mps_conn_close(ca);
}

Test(pipe, epipe_after_peer_exit, .timeout = 10) { peer_dies(0); }
Test(pipe, epipe_after_peer_killed, .timeout = 10) { peer_dies(SIGKILL); }

Test(pipe, bad_arguments, .timeout = 10)
{
  mps_conn *x;
  char buf[4];
  cr_assert_eq(mps_pipe(NULL, &x, true), -EINVAL);
  cr_assert_eq(mps_pipe(&x, NULL, true), -EINVAL);
  cr_assert_eq(mps_conn_send(NULL, "x", 1), -EINVAL);
  cr_assert_eq(mps_conn_recv(NULL, buf, 4, 0), -EINVAL);
  cr_assert_eq(mps_conn_poll(NULL, 0), -EINVAL);
  cr_assert_eq(mps_conn_fileno(NULL), -EINVAL);
  cr_assert_eq(mps_conn_close(NULL), 0);
  make(true);
  cr_assert_eq(mps_conn_send(ca, NULL, 1), -EINVAL);
  cr_assert_eq(mps_conn_recv(ca, NULL, 4, 0), -EINVAL);
  cr_assert_eq(mps_conn_recv(ca, buf, 4, 0.0 / 0.0), -EINVAL);
  cr_assert_eq(mps_conn_poll(ca, 0.0 / 0.0), -EINVAL);
  mps_conn_close(ca);
  mps_conn_close(cb);
}
