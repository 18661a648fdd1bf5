/* Value, RawValue, Array, RawArray and SharedMemory. */
#include <stdint.h>

#include "helpers.h"

static const mps_type all_types[] = {MPS_CHAR,   MPS_INT8,  MPS_UINT8, MPS_INT16, MPS_UINT16,
                                     MPS_INT,    MPS_UINT,  MPS_LONG,  MPS_ULONG, MPS_INT64,
                                     MPS_UINT64, MPS_FLOAT, MPS_DOUBLE};
static const size_t all_sizes[] = {
    1, 1, 1, 2, 2, sizeof(int), sizeof(unsigned), sizeof(long), sizeof(unsigned long), 8, 8, 4, 8};

static bool all_zero(const void *p, size_t n)
{
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != 0)
      return false;
  return true;
}

Test(value, every_type_zeroed_with_or_without_lock, .timeout = 10)
{
  for (size_t i = 0; i < sizeof(all_types) / sizeof(all_types[0]); i++) {
    cr_assert_eq(mps_type_size(all_types[i]), all_sizes[i]);
    for (int lock = 0; lock < 2; lock++) {
      mps_value *v = mps_value_new(all_types[i], lock);
      cr_assert_not_null(v);
      cr_expect_eq(mps_value_size(v), all_sizes[i]);
      cr_expect_eq(mps_value_type(v), all_types[i]);
      cr_expect(all_zero(mps_value_ptr(v), all_sizes[i]));
      cr_expect_eq((uintptr_t)mps_value_ptr(v) % 16, 0);
      cr_expect_eq(mps_value_get_lock(v) != NULL, lock, "RawValue has no lock");
      mps_value_close(v);
    }
  }
}

static mps_value *shared_double;

static int write_double(void *arg)
{
  (void)arg;
  int rc;
  MPS_WITH_LOCK(mps_value_get_lock(shared_double), rc) * (double *)mps_value_ptr(shared_double) =
      2.5;
  return rc == 0 ? 0 : 1;
}

Test(value, child_writes_are_seen_by_the_parent, .timeout = 10)
{
  shared_double = mps_value_new(MPS_DOUBLE, true);
  child_expect_exit(child_run(write_double, NULL), 0);
  cr_assert_float_eq(*(double *)mps_value_ptr(shared_double), 2.5, 0);
  mps_value_close(shared_double);
}

struct point {
  double x, y;
  int tag;
};

Test(value, sized_value_holds_a_struct, .timeout = 10)
{
  mps_value *v = mps_value_new_sized(sizeof(struct point), true);
  cr_assert_not_null(v);
  cr_assert_eq(mps_value_size(v), sizeof(struct point));
  cr_assert_eq(mps_value_type(v), 0);
  struct point *p = mps_value_ptr(v);
  cr_assert(all_zero(p, sizeof(*p)));
  p->tag = 7;
  mps_value_close(v);
}

Test(value, bad_arguments, .timeout = 10)
{
  errno = 0;
  cr_expect_null(mps_value_new(0, true));
  cr_expect_eq(errno, EINVAL);
  cr_expect_null(mps_value_new((mps_type)99, false));
  cr_expect_eq(errno, EINVAL);
  cr_expect_null(mps_value_new_sized(0, false));
  cr_expect_eq(errno, EINVAL);
  cr_expect_null(mps_value_new_sized(MPS_SIZE_MAX + 1, false));
  cr_expect_eq(errno, EINVAL);
  cr_expect_null(mps_value_create(NULL, MPS_INT, false));
  cr_expect_eq(errno, EINVAL);
  cr_expect_null(mps_value_open(NULL));
  cr_expect_eq(errno, EINVAL);
  cr_expect_null(mps_value_ptr(NULL));
  cr_expect_null(mps_value_get_lock(NULL));
  cr_expect_eq(mps_value_size(NULL), 0);
  cr_expect_eq(mps_value_close(NULL), 0);
  cr_expect_eq(mps_type_size((mps_type)0), 0);
  cr_expect_eq(mps_type_size((mps_type)-3), 0);
}

Test(value, borrowed_lock_cannot_be_closed, .timeout = 10)
{
  mps_value *v = mps_value_new(MPS_INT, true);
  cr_assert_eq(mps_lock_close(mps_value_get_lock(v)), -EINVAL);
  cr_assert_eq(mps_lock_acquire(mps_value_get_lock(v), 0), 0, "still usable");
  mps_lock_release(mps_value_get_lock(v));
  mps_value_close(v);
}

static int exec_named_counter(const char *name, const char *n)
{
  const char *dir = getenv("MPS_EXAMPLES_DIR");
  cr_assert_not_null(dir, "MPS_EXAMPLES_DIR is set by make check");
  char path[512];
  snprintf(path, sizeof(path), "%s/named_counter", dir);
  fflush(NULL);
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    execl(path, path, name, n, (char *)NULL);
    _exit(127);
  }
  return child_wait(pid);
}

Test(value, named_value_written_by_an_exec_d_process, .timeout = 30)
{
  char name[64];
  test_name(name, "execvalue");
  mps_value *v = mps_value_create(name, MPS_LONG, true);
  cr_assert_not_null(v);
  *(long *)mps_value_ptr(v) = 5;
  int status = exec_named_counter(name, "37"); /* opens it by name, adds 37 */
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x", status);
  cr_assert_eq(*(long *)mps_value_ptr(v), 42);
  mps_value *again = mps_value_open(name);
  cr_assert_not_null(again);
  cr_assert_eq(mps_value_type(again), MPS_LONG);
  cr_assert_eq(*(long *)mps_value_ptr(again), 42);
  mps_value_close(again);
  mps_value_close(v);
  cr_assert_eq(mps_unlink(name), 0);
  assert_no_segments_left();
}

Test(value, named_sized_value_round_trip, .timeout = 10)
{
  char name[64];
  test_name(name, "sized");
  mps_value *v = mps_value_create_sized(name, 3000, false);
  cr_assert_not_null(v);
  cr_assert_eq((uintptr_t)mps_value_ptr(v) % 64, 0, "a large value has its own cache line");
  memset(mps_value_ptr(v), 0xab, 3000);
  mps_value *w = mps_value_open(name);
  cr_assert_not_null(w);
  cr_assert_eq(mps_value_size(w), 3000);
  cr_assert_null(mps_value_get_lock(w));
  cr_assert_eq(((unsigned char *)mps_value_ptr(w))[2999], 0xab);
  mps_value_close(w);
  mps_value_close(v);
  mps_unlink(name);
}

/* ---- arrays ------------------------------------------------------------- */

static mps_array *arr;

static int fill_half(void *arg)
{
  int half = *(int *)arg;
  int *d = mps_array_data(arr);
  for (size_t i = 0; i < 500; i++)
    d[half * 500 + i] = (int)(half * 500 + i);
  return 0;
}

Test(array, children_fill_disjoint_slices, .timeout = 10)
{
  arr = mps_array_new(MPS_INT, 1000, false);
  cr_assert_not_null(arr);
  cr_assert_eq(mps_array_len(arr), 1000);
  cr_assert_eq(mps_array_type(arr), MPS_INT);
  cr_assert_null(mps_array_get_lock(arr));
  cr_assert(all_zero(mps_array_data(arr), 1000 * sizeof(int)));
  int halves[2] = {0, 1};
  pid_t a = child_run(fill_half, &halves[0]), b = child_run(fill_half, &halves[1]);
  child_expect_exit(a, 0);
  child_expect_exit(b, 0);
  int *d = mps_array_data(arr);
  for (int i = 0; i < 1000; i++)
    cr_assert_eq(d[i], i);
  mps_array_close(arr);
}

Test(array, bad_arguments_and_overflow, .timeout = 10)
{
  errno = 0;
  cr_expect_null(mps_array_new(MPS_INT, 0, true));
  cr_expect_eq(errno, EINVAL);
  cr_expect_null(mps_array_new(0, 10, true));
  cr_expect_eq(errno, EINVAL);
  cr_expect_null(mps_array_new(MPS_DOUBLE, SIZE_MAX / 4, true));
  cr_expect_eq(errno, EOVERFLOW, "n * sizeof(double) overflows");
  cr_expect_null(mps_array_new(MPS_INT64, MPS_SIZE_MAX / 8 + 1, false));
  cr_expect_eq(errno, EOVERFLOW);
  cr_expect_null(mps_array_create("/bad/name", MPS_INT, 4, false));
  cr_expect_eq(errno, EINVAL);
  cr_expect_null(mps_array_open(NULL));
  cr_expect_eq(errno, EINVAL);
  cr_expect_null(mps_array_data(NULL));
  cr_expect_eq(mps_array_len(NULL), 0);
  cr_expect_null(mps_array_get_lock(NULL));
  cr_expect_eq(mps_array_close(NULL), 0);
}

Test(array, named_array_with_lock, .timeout = 10)
{
  char name[64];
  test_name(name, "array");
  mps_array *a = mps_array_create(name, MPS_UINT16, 77, true);
  cr_assert_not_null(a);
  ((uint16_t *)mps_array_data(a))[76] = 65535;
  mps_array *b = mps_array_open(name);
  cr_assert_not_null(b);
  cr_assert_eq(mps_array_len(b), 77);
  cr_assert_eq(mps_array_type(b), MPS_UINT16);
  cr_assert_eq(((uint16_t *)mps_array_data(b))[76], 65535);
  cr_assert_eq(mps_lock_acquire(mps_array_get_lock(a), 0), 0);
  cr_assert_eq(mps_lock_acquire(mps_array_get_lock(b), 0), -EDEADLK, "one lock, two mappings");
  cr_assert_eq(mps_lock_release(mps_array_get_lock(b)), 0);
  mps_array_close(b);
  mps_array_close(a);
  cr_assert_eq(mps_unlink(name), 0);
  assert_no_segments_left();
}

/* ---- shared memory ------------------------------------------------------ */

Test(shm, create_open_data_size, .timeout = 10)
{
  char name[64];
  test_name(name, "shm");
  mps_shm *s = mps_shm_create(name, 12345);
  cr_assert_not_null(s);
  cr_assert_eq(mps_shm_size(s), 12345);
  cr_assert(all_zero(mps_shm_data(s), 12345));
  strcpy(mps_shm_data(s), "hello");
  mps_shm *t = mps_shm_open(name);
  cr_assert_not_null(t);
  cr_assert_eq(mps_shm_size(t), 12345);
  cr_assert_str_eq(mps_shm_data(t), "hello");
  cr_assert_null(mps_value_open(name));
  cr_assert_eq(errno, EPROTO);
  mps_shm_close(t);
  mps_shm_close(s);
  cr_assert_eq(mps_unlink(name), 0);
  errno = 0;
  cr_assert_null(mps_shm_create(name, 0));
  cr_assert_eq(errno, EINVAL);
  cr_assert_null(mps_shm_create(NULL, 10));
  cr_assert_eq(errno, EINVAL);
  cr_assert_null(mps_shm_open(name));
  cr_assert_eq(errno, ENOENT);
  cr_assert_null(mps_shm_data(NULL));
  cr_assert_eq(mps_shm_size(NULL), 0);
  assert_no_segments_left();
}

/* ---- initial contents (Python's Value('i', 5), Array('i', range(10))) ---- */

static mps_array *init_arr;

static int sum_in_child(void *arg)
{
  (void)arg;
  const int *d = mps_array_data(init_arr);
  int sum = 0;
  for (size_t i = 0; i < mps_array_len(init_arr); i++)
    sum += d[i];
  return sum; /* 0 + 1 + ... + 9 = 45 */
}

Test(value, initial_contents, .timeout = 10)
{
  int five = 5;
  mps_value *v = mps_value_new_init(MPS_INT, &five, true);
  cr_assert_not_null(v);
  five = 6; /* the value holds a copy */
  cr_assert_eq(*(int *)mps_value_ptr(v), 5);
  cr_assert_not_null(mps_value_get_lock(v));
  mps_value_close(v);
  v = mps_value_new_init(MPS_DOUBLE, NULL, false);
  cr_assert_not_null(v);
  cr_assert_eq(*(double *)mps_value_ptr(v), 0.0, "NULL init: zeroed");
  mps_value_close(v);
  errno = 0;
  cr_assert_null(mps_value_new_init(MPS_TYPE_NONE, &five, true));
  cr_assert_eq(errno, EINVAL);

  int range[10];
  for (int i = 0; i < 10; i++)
    range[i] = i;
  init_arr = mps_array_new_init(MPS_INT, 10, range, false);
  cr_assert_not_null(init_arr);
  child_expect_exit(child_run(sum_in_child, NULL), 45);
  mps_array_close(init_arr);
}

Test(value, named_initial_contents_are_there_for_the_first_opener, .timeout = 10)
{
  char name[64];
  test_name(name, "vinit");
  long seven = 7;
  mps_value *v = mps_value_create_init(name, MPS_LONG, &seven, true);
  cr_assert_not_null(v);
  mps_value *w = mps_value_open(name);
  cr_assert_not_null(w);
  cr_assert_eq(*(long *)mps_value_ptr(w), 7);
  mps_value_close(w);
  mps_value_close(v);
  cr_assert_eq(mps_unlink(name), 0);

  test_name(name, "ainit");
  double d[3] = {1.5, 2.5, 3.5};
  mps_array *a = mps_array_create_init(name, MPS_DOUBLE, 3, d, true);
  cr_assert_not_null(a);
  mps_array *b = mps_array_open(name);
  cr_assert_not_null(b);
  cr_assert_eq(((double *)mps_array_data(b))[2], 3.5);
  cr_assert_eq(mps_array_len(b), 3);
  mps_array_close(b);
  mps_array_close(a);
  cr_assert_eq(mps_unlink(name), 0);
  errno = 0;
  cr_assert_null(mps_array_create_init(NULL, MPS_INT, 3, d, false));
  cr_assert_eq(errno, EINVAL);
  assert_no_segments_left();
}

Test(value, null_handles_follow_the_common_rule, .timeout = 10)
{
  cr_assert_null(mps_value_ptr(NULL));
  cr_assert_null(mps_value_get_lock(NULL));
  cr_assert_eq(mps_value_size(NULL), 0);
  cr_assert_eq(mps_value_type(NULL), MPS_TYPE_NONE);
  cr_assert_eq(mps_array_type(NULL), MPS_TYPE_NONE);
  cr_assert_eq(mps_array_len(NULL), 0);
  cr_assert_null(mps_shm_data(NULL));
  cr_assert_eq(mps_value_close(NULL), 0);
  mps_value *v = mps_value_new_sized(24, true);
  cr_assert_eq(mps_value_type(v), MPS_TYPE_NONE, "a sized value has no type");
  mps_value_close(v);
}
