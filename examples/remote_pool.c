/* remote_pool: the executor example across hosts. Worker hosts serve a
 * pool at a redis:// URL; a submitter sends process_data(i) = i * 2 for
 * i in 0..N-1 and prints each result. Every program registers the same
 * task names, since a function pointer does not cross hosts.
 *
 *   remote_pool serve  redis://HOST:6379/jobs [WORKERS]   (on each worker host)
 *   remote_pool submit redis://HOST:6379/jobs [N]         (anywhere)
 *
 * submit removes the queue when it is done, which ends the servers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpshare.h>

static ssize_t process_data(const void *arg, size_t len, void *out, size_t cap)
{
  int i;
  if (len != sizeof(i) || cap < sizeof(i))
    return -EINVAL;
  memcpy(&i, arg, sizeof(i));
  i *= 2;
  memcpy(out, &i, sizeof(i));
  return sizeof(i);
}

static int serve(const char *url, unsigned workers)
{
  mps_remote_opts o = {.workers = workers};
  int r = mps_pool_serve(url, &o); /* returns when the queue is removed */
  if (r < 0) {
    fprintf(stderr, "mps_pool_serve: %s\n", mps_strerror(r));
    return 1;
  }
  return 0;
}

static int submit(const char *url, int n)
{
  mps_pool *pool = mps_pool_connect(url, NULL);
  if (pool == NULL) {
    fprintf(stderr, "mps_pool_connect: %s\n", strerror(errno));
    return 1;
  }
  mps_future **fs = calloc((size_t)n, sizeof(*fs));
  int ok = fs != NULL;
  for (int i = 0; ok && i < n; i++) /* the same call as for a local pool */
    ok &= (fs[i] = mps_pool_submit(pool, process_data, &i, sizeof(i))) != NULL;
  for (int i = 0; ok && i < n; i++) {
    int v = 0;
    ssize_t value = 0;
    int r = mps_future_result(fs[i], &value, &v, sizeof(v), 60);
    ok &= r == 0 && value == sizeof(v) && v == i * 2;
    if (r == 0 && value >= 0)
      printf("process_data(%d) = %d\n", i, v);
    else
      fprintf(stderr, "task %d: %s\n", i, mps_strerror(r != 0 ? r : (int)value));
  }
  for (int i = 0; fs != NULL && i < n; i++)
    mps_future_free(fs[i]);
  free(fs);
  mps_pool_free(pool);
  int r = mps_unlink(url); /* ends the servers */
  if (r < 0)
    fprintf(stderr, "mps_unlink: %s\n", mps_strerror(r));
  printf("%s: %d tasks\n", ok ? "done" : "FAILED", n);
  return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
  if (argc < 3 || (strcmp(argv[1], "serve") != 0 && strcmp(argv[1], "submit") != 0)) {
    fprintf(stderr, "usage: %s serve|submit redis://HOST[:PORT]/NAME [WORKERS|N]\n", argv[0]);
    return 2;
  }
  int r = mps_task_register("process_data", process_data);
  if (r < 0) {
    fprintf(stderr, "mps_task_register: %s\n", mps_strerror(r));
    return 1;
  }
  if (strcmp(argv[1], "serve") == 0)
    return serve(argv[2], argc > 3 ? (unsigned)atoi(argv[3]) : 2);
  return submit(argv[2], argc > 3 ? atoi(argv[3]) : 10);
}
