/* futures: the executor example. Submits process_data(i) = i * 2 for i in
 * 0..4 and prints each result as it completes; then shows a task that fails
 * and a worker that crashes, each reported on its own future. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
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

static ssize_t fails(const void *arg, size_t len, void *out, size_t cap)
{
  (void)arg, (void)len, (void)out, (void)cap;
  return -EDOM; /* a task's negative errno is its exception */
}

static ssize_t crashes(const void *arg, size_t len, void *out, size_t cap)
{
  (void)arg, (void)len, (void)out, (void)cap;
  raise(SIGKILL); /* the worker dies mid-task */
  return 0;
}

int main(void)
{
  mps_pool *pool = mps_pool_new(2);
  if (pool == NULL) {
    perror("mps_pool_new");
    return 1;
  }
  mps_future *fs[5];
  int ok = 1;
  for (int i = 0; i < 5; i++) {
    fs[i] = mps_pool_submit(pool, process_data, &i, sizeof(i));
    ok &= fs[i] != NULL;
  }
  mps_future *left[5] = {fs[0], fs[1], fs[2], fs[3], fs[4]};
  for (int k = 0; ok && k < 5; k++) { /* as_completed */
    ssize_t i = mps_pool_wait_any(left, 5, MPS_FOREVER);
    int v = 0;
    ok &= i >= 0 && mps_future_result(left[i], NULL, &v, sizeof(v), 0) == 0 && v == i * 2;
    if (ok)
      printf("process_data(%zd) = %d\n", i, v);
    left[i] = NULL;
  }
  mps_future *bad = mps_pool_submit(pool, fails, NULL, 0);
  mps_future *dead = mps_pool_submit(pool, crashes, NULL, 0);
  /* The task's own value and the library's status are apart: the task
   * returned (0) the value -EDOM; the other never returned (-ECHILD). */
  ssize_t v1 = 0;
  int r1 = mps_future_result(bad, &v1, NULL, 0, MPS_FOREVER);
  int r2 = mps_future_result(dead, NULL, NULL, 0, MPS_FOREVER);
  printf("failing task returned %zd (%s)\n", v1, mps_strerror((int)v1));
  printf("crashed worker: %s (%s)\n", mps_err_name(r2), mps_strerror(r2));
  ok &= r1 == 0 && v1 == -EDOM && r2 == -ECHILD;
  mps_future_free(bad);
  mps_future_free(dead);
  for (int i = 0; i < 5; i++)
    mps_future_free(fs[i]);
  mps_pool_free(pool); /* waits for the workers and reaps them */
  return ok ? 0 : 1;
}
