/* Two unrelated processes share a named value: nothing is inherited.
 *
 *   named_counter            creates /mps-named-counter-PID, runs itself
 *                            (exec) as a second process that adds 1000 to
 *                            it, adds 1000 itself, waits, prints 2000.
 *   named_counter NAME N     opens NAME and adds N under its lock.
 */
#include <mpshare.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static int add(mps_value *v, long n)
{
  for (long i = 0; i < n; i++) {
    int rc;
    MPS_WITH_LOCK(mps_value_get_lock(v), rc)++ *(long *)mps_value_ptr(v);
    if (rc < 0) {
      fprintf(stderr, "lock: %s\n", mps_strerror(rc));
      return 1;
    }
  }
  return 0;
}

static int child(const char *name, long n)
{
  mps_value *v = mps_value_open(name);
  if (v == NULL) {
    fprintf(stderr, "mps_value_open(%s): %s\n", name, mps_strerror(-errno));
    return 1;
  }
  int r = add(v, n);
  mps_value_close(v);
  return r;
}

int main(int argc, char **argv)
{
  if (argc == 3)
    return child(argv[1], atol(argv[2]));

  char name[64];
  snprintf(name, sizeof(name), "/mps-named-counter-%d", (int)getpid());
  mps_value *v = mps_value_create(name, MPS_LONG, true);
  if (v == NULL) {
    fprintf(stderr, "mps_value_create(%s): %s\n", name, mps_strerror(-errno));
    return 1;
  }
  pid_t pid = fork();
  if (pid == 0) {
    execl("/proc/self/exe", argv[0], name, "1000", (char *)NULL);
    _exit(127);
  }
  int failed = add(v, 1000);
  int status;
  waitpid(pid, &status, 0);
  long total = *(long *)mps_value_ptr(v);
  printf("%s: %ld (two processes added 1000 each)\n", name, total);
  mps_value_close(v);
  mps_unlink(name);
  return !failed && WIFEXITED(status) && WEXITSTATUS(status) == 0 && total == 2000 ? 0 : 1;
}
