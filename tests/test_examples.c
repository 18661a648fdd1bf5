/* The foundation's examples, run as a user would run them. */
#include "helpers.h"

Test(examples, increment_decrement_ends_at_zero, .timeout = 60)
{
  char out[4096];
  int status =
      run_example("increment_decrement", (const char *[]){"200000", NULL}, out, sizeof(out));
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x: %s", status, out);
  cr_assert_not_null(strstr(out, "start value: 0\n"), "%s", out);
  cr_assert_not_null(strstr(out, "end value: 0\n"), "%s", out);
  cr_assert_not_null(strstr(out, "ns per locked operation"), "%s", out);
}

Test(examples, increment_decrement_without_lock_runs, .timeout = 60)
{
  char out[4096];
  /* The race may or may not show in one run; only the run itself is
   * asserted here, and that it says it ran without the lock. */
  int status = run_example("increment_decrement", (const char *[]){"--no-lock", "100000", NULL},
                           out, sizeof(out));
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s", out);
  cr_assert_not_null(strstr(out, "no lock"), "%s", out);
}

Test(examples, shared_array_sums_match, .timeout = 60)
{
  char out[4096];
  int status = run_example("shared_array", (const char *[]){"3", "30000", NULL}, out, sizeof(out));
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s", out);
  cr_assert_not_null(strstr(out, "3 workers, 30000 elements"), "%s", out);
}

Test(examples, named_counter_two_processes, .timeout = 60)
{
  char out[4096];
  int status = run_example("named_counter", (const char *[]){NULL}, out, sizeof(out));
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s", out);
  cr_assert_not_null(strstr(out, ": 2000 "), "%s", out);
}
