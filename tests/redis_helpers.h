/* A private redis-server for the remote tests: started on a free loopback
 * port in a temporary directory, stopped (and the directory removed) at
 * the end. $MPS_REDIS_SERVER (set by make check from configure) names the
 * binary. Without it, or in a build without hiredis, redis_up() skips the
 * test with a message saying why, so that nothing is skipped silently.
 */
#ifndef MPS_TEST_REDIS_HELPERS_H
#define MPS_TEST_REDIS_HELPERS_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "helpers.h"

struct test_redis {
  pid_t pid;
  int port;
  char dir[64];
  char conf[256]; /* extra arguments, e.g. "--appendonly yes" */
};

static struct test_redis srv;

/* A loopback port nobody listens on now. */
static inline int free_port(void)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t l = sizeof(a);
  cr_assert(bind(fd, (struct sockaddr *)&a, l) == 0);
  cr_assert(getsockname(fd, (struct sockaddr *)&a, &l) == 0);
  close(fd);
  return ntohs(a.sin_port);
}

/* Sends one inline command and returns the first line of the reply in out
 * (no CRLF); -1 if the server cannot be reached. */
static inline int redis_raw(int port, const char *cmd, char *out, size_t cap)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
    close(fd);
    return -1;
  }
  char line[512];
  int n = snprintf(line, sizeof(line), "%s\r\n", cmd);
  cr_assert(write(fd, line, (size_t)n) == n);
  size_t k = 0;
  while (k + 1 < cap) {
    ssize_t r = read(fd, out + k, 1);
    if (r <= 0 || out[k] == '\n')
      break;
    k++;
  }
  if (k > 0 && out[k - 1] == '\r')
    k--;
  out[k] = '\0';
  close(fd);
  return 0;
}

/* Starts (or restarts, same port and directory) the server and waits
 * until it answers PING. */
static inline void redis_start(struct test_redis *s)
{
  const char *bin = getenv("MPS_REDIS_SERVER");
  char cmd[1024];
  snprintf(cmd, sizeof(cmd),
           "exec '%s' --port %d --bind 127.0.0.1 --dir %s --save '' --appendonly no "
           "--daemonize no --logfile %s/log --protected-mode no %s",
           bin, s->port, s->dir, s->dir, s->conf);
  fflush(NULL);
  pid_t parent = getpid();
  s->pid = fork();
  cr_assert(s->pid >= 0);
  if (s->pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(126);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  char reply[64];
  for (int i = 0; i < 2000; i++) { /* ready within 10 s */
    if (redis_raw(s->port, "PING", reply, sizeof(reply)) == 0 &&
        (strcmp(reply, "+PONG") == 0 || strncmp(reply, "-NOAUTH", 7) == 0))
      return;
    int st;
    cr_assert_eq(waitpid(s->pid, &st, WNOHANG), 0, "redis-server exited at start");
    struct timespec t = {0, 5000000};
    nanosleep(&t, NULL);
  }
  cr_assert_fail("redis-server did not answer on port %d", s->port);
}

/* Kills the server with sig and reaps it. */
static inline void redis_kill(struct test_redis *s, int sig)
{
  if (s->pid <= 0)
    return;
  kill(s->pid, sig);
  child_wait(s->pid);
  s->pid = 0;
}

/* Skips the test (with a message) unless the remote backend and a server
 * are there; else starts a server with the extra arguments. */
static inline void redis_up_with(const char *conf)
{
  char name[64];
  mps_queue *probe = mps_queue_open("redis://127.0.0.1:1/x");
  if (probe == NULL && errno == ENOTSUP) {
    fprintf(stderr, "SKIP: mpshare was built without hiredis (--without-redis): "
                    "remote queue tests not run\n");
    cr_skip_test("built without the Redis backend");
  }
  const char *bin = getenv("MPS_REDIS_SERVER");
  if (bin == NULL || bin[0] == '\0' || access(bin, X_OK) != 0) {
    fprintf(stderr, "SKIP: no redis-server (install redis-server and run configure again): "
                    "remote queue tests not run\n");
    cr_skip_test("no redis-server");
  }
  snprintf(srv.dir, sizeof(srv.dir), "/tmp/mps-redis-%d-XXXXXX", (int)getpid());
  cr_assert_not_null(mkdtemp(srv.dir));
  snprintf(srv.conf, sizeof(srv.conf), "%s", conf ? conf : "");
  srv.port = free_port();
  redis_start(&srv);
  (void)name;
}

static inline void redis_up(void) { redis_up_with(NULL); }

static inline void redis_down(void)
{
  redis_kill(&srv, SIGKILL);
  if (srv.dir[0] != '\0') {
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", srv.dir);
    cr_expect_eq(system(cmd), 0);
    srv.dir[0] = '\0';
  }
}

/* redis://127.0.0.1:PORT/NAME plus a query (may be ""). */
static inline const char *rurl(char buf[256], const char *name, const char *query)
{
  snprintf(buf, 256, "redis://127.0.0.1:%d/%s-%d%s", srv.port, name, (int)getpid(), query);
  return buf;
}

#endif
