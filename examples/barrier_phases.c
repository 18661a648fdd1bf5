/* Processes step through phases together: nobody starts phase p+1 before
 * everybody finished phase p.
 *
 * Each process writes the phase it finished into its slot of a shared
 * array, then waits at the barrier; after the barrier it checks that every
 * slot shows that phase. Exits 0 if 4 processes went through 3 phases
 * without anyone running ahead.
 */
#include <mpshare.h>

#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROCS  4
#define PHASES 3

static int run(int me, mps_barrier *b, int *done)
{
  for (int phase = 1; phase <= PHASES; phase++) {
    __atomic_store_n(&done[me], phase, __ATOMIC_SEQ_CST);
    if (mps_barrier_wait(b, 30) < 0)
      return 1;
    for (int i = 0; i < PROCS; i++)
      if (__atomic_load_n(&done[i], __ATOMIC_SEQ_CST) < phase)
        return 2; /* someone was behind: the barrier let us through early */
    /* Nobody may finish the next phase before everybody checked this one. */
    if (mps_barrier_wait(b, 30) < 0)
      return 3;
  }
  return 0;
}

int main(void)
{
  mps_barrier *b = mps_barrier_new(PROCS);
  mps_array *a = mps_array_new(MPS_INT, PROCS, false);
  if (b == NULL || a == NULL) {
    perror("mpshare");
    return 1;
  }
  int *done = mps_array_data(a);
  pid_t pids[PROCS - 1];
  for (int i = 0; i < PROCS - 1; i++)
    if ((pids[i] = fork()) == 0)
      _exit(run(i + 1, b, done));
  int failed = run(0, b, done) != 0;
  for (int i = 0; i < PROCS - 1; i++) {
    int status;
    waitpid(pids[i], &status, 0);
    failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  if (failed == 0)
    printf("%d processes went through %d phases together\n", PROCS, PHASES);
  mps_array_close(a);
  mps_barrier_close(b);
  return failed == 0 ? 0 : 1;
}
