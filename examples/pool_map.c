/* pool_map: the squares of 0..999, computed by a pool of worker processes
 * with mps_pool_map and printed in input order. Each task's own return
 * value (its result length, or its own negative errno) comes back in
 * values[], apart from the library's status. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <mpshare.h>

#define N 1000

static ssize_t square(const void *arg, size_t len, void *out, size_t cap)
{
  long x;
  if (len != sizeof(x) || cap < sizeof(x))
    return -EINVAL;
  memcpy(&x, arg, sizeof(x));
  x *= x;
  memcpy(out, &x, sizeof(x));
  return sizeof(x);
}

int main(void)
{
  static long in[N], out[N];
  static ssize_t values[N];
  for (long i = 0; i < N; i++)
    in[i] = i;
  mps_pool *pool = mps_pool_new(0); /* one worker per CPU */
  if (pool == NULL) {
    perror("mps_pool_new");
    return 1;
  }
  int r =
      mps_pool_map(pool, square, in, N, sizeof(long), out, sizeof(long), values, NULL, MPS_FOREVER);
  mps_pool_free(pool);
  if (r != 0) { /* the library's: a worker died, a timeout... */
    fprintf(stderr, "map: %s\n", mps_strerror(r));
    return 1;
  }
  for (long i = 0; i < N; i++) {
    if (values[i] < 0) { /* the task's own error */
      fprintf(stderr, "task %ld: %s\n", i, mps_strerror(values[i]));
      return 1;
    }
    if (out[i] != i * i)
      return 1;
    printf("%ld%c", out[i], i % 10 == 9 ? '\n' : ' ');
  }
  return 0;
}
