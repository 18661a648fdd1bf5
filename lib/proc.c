/* What /proc says about processes: this process's cached pid and the
 * calling thread's id, another process's start time and whether it still
 * runs.
 *
 * A pid alone does not name a process for long: after it exits the kernel
 * may hand the same pid to an unrelated process. A process is therefore
 * named by its pid and its start time (field 22 of /proc/<pid>/stat, clock
 * ticks after boot), which segment headers record for their creator.
 *
 * No shared layout; nothing here takes a lock or blocks on another process.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

pid_t mps__self_pid_cache;
__thread pid_t mps__self_tid_cache __attribute__((tls_model("initial-exec")));
__thread uint32_t mps__stat_line __attribute__((tls_model("initial-exec")));

/* A forked child is a new process whose one thread has a new id. Its id
 * is looked up at once, as the first thread's is when the library loads:
 * it picks the thread's counter shard (stats.h), which the counters use
 * without testing it. */
static void forget_pid(void)
{
  mps__self_pid_cache = 0;
  mps__self_tid_cache = 0;
  (void)mps__self_tid_slow();
}

__attribute__((constructor)) static void register_forget_pid(void)
{
  pthread_atfork(NULL, NULL, forget_pid);
  (void)mps__self_tid_slow();
}

pid_t mps__self_pid_slow(void)
{
  mps__self_pid_cache = getpid();
  return mps__self_pid_cache;
}

pid_t mps__self_tid_slow(void)
{
  pid_t tid = gettid();
  mps__self_tid_cache = tid;
  mps__stat_line = (uint32_t)((unsigned)tid % MPS__STAT_SHARDS * sizeof(struct mps__stat_shard));
  return tid;
}

/* Field 22 of a stat line: fields 3.. follow the last ')', since the
 * command name in field 2 may itself hold spaces and parentheses. */
static uint64_t start_field(const char *line)
{
  const char *p = strrchr(line, ')');
  if (p == NULL)
    return 0;
  for (int field = 2; field < 22; field++) {
    p = strchr(p + 1, ' ');
    if (p == NULL)
      return 0;
  }
  return strtoull(p + 1, NULL, 10);
}

/* The stat line of pid into line; false if there is no such process. */
static bool stat_line(pid_t pid, char line[1024])
{
  char path[64];
  if (pid <= 0)
    return false;
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "re");
  if (f == NULL)
    return false;
  size_t n = fread(line, 1, 1023, f);
  fclose(f);
  line[n] = '\0';
  return true;
}

uint64_t mps__proc_start(pid_t pid)
{
  char line[1024];
  return stat_line(pid, line) ? start_field(line) : 0;
}

/* A zombie (state Z or X) has exited: it only waits to be reaped. */
bool mps__proc_alive(pid_t pid, uint64_t start)
{
  char line[1024];
  if (!stat_line(pid, line))
    return false;
  const char *p = strrchr(line, ')');
  if (p == NULL || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
    return false;
  return start == 0 || start_field(line) == start;
}
