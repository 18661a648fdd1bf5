/* Several forked workers fill and sum slices of one shared array.
 *
 * Each worker writes i*i into its slice of a RawArray (no lock: the slices
 * do not overlap) and adds its partial sum into a locked Value. The parent
 * checks the total against the closed form.
 *
 *   shared_array [workers] [length]
 */
#include <mpshare.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static int fill_and_sum(mps_array *arr, mps_value *total, size_t from, size_t to)
{
  int64_t *data = mps_array_data(arr);
  int64_t sum = 0;
  for (size_t i = from; i < to; i++) {
    data[i] = (int64_t)(i * i);
    sum += data[i];
  }
  int rc;
  MPS_WITH_LOCK(mps_value_get_lock(total), rc) * (int64_t *)mps_value_ptr(total) += sum;
  return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
  int workers = argc > 1 ? atoi(argv[1]) : 4;
  size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 100000;
  if (workers < 1 || n < 1) {
    fprintf(stderr, "usage: shared_array [workers>=1] [length>=1]\n");
    return 2;
  }
  mps_array *arr = mps_array_new(MPS_INT64, n, false);
  mps_value *total = mps_value_new(MPS_INT64, true);
  if (arr == NULL || total == NULL) {
    perror("mps_array_new");
    return 1;
  }
  for (int w = 0; w < workers; w++) {
    if (fork() == 0) {
      _exit(fill_and_sum(arr, total, n * w / workers, n * (w + 1) / workers));
    }
  }
  int ok = 1, status;
  while (wait(&status) > 0)
    ok &= WIFEXITED(status) && WEXITSTATUS(status) == 0;

  int64_t expect = (int64_t)((n - 1) * n * (2 * n - 1) / 6);
  int64_t got = *(int64_t *)mps_value_ptr(total);
  int64_t last = ((int64_t *)mps_array_data(arr))[n - 1];
  printf("%d workers, %zu elements: sum of squares %lld (expected %lld), last %lld\n", workers, n,
         (long long)got, (long long)expect, (long long)last);
  mps_array_close(arr);
  mps_value_close(total);
  return ok && got == expect ? 0 : 1;
}
