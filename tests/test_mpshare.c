/* The mpshare command against real objects and processes: ls, inspect, rm,
 * gc and watch, their JSON parsed and checked field by field, exit codes
 * and error messages, and gc's rule (creator dead and nobody maps it),
 * also for a reused pid. gc is only ever pointed at this test's own
 * objects (other tests run beside it), or run with --dry-run. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>

#include "helpers.h"
#include "internal.h"
#include "json.h"

static int fds[2], back[2];

/* Runs `mpshare ARGS` and returns its exit status; stdout into out,
 * stderr into err (either may be NULL). */
__attribute__((format(printf, 5, 6))) static int mpshare(char *out, size_t cap, char *err,
                                                         size_t ecap, const char *fmt, ...)
{
  const char *tool = getenv("MPS_TOOL");
  cr_assert_not_null(tool, "MPS_TOOL is set by make check");
  char args[1024], cmd[2048], errfile[64];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof(args), fmt, ap);
  va_end(ap);
  snprintf(errfile, sizeof(errfile), "/tmp/mps-test-stderr-%d", (int)getpid());
  snprintf(cmd, sizeof(cmd), "'%s' %s 2>%s", tool, args, errfile);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  char sink[4096];
  size_t n = fread(out ? out : sink, 1, (out ? cap : sizeof(sink)) - 1, p);
  (out ? out : sink)[n] = '\0';
  int status = pclose(p);
  FILE *e = fopen(errfile, "r");
  cr_assert_not_null(e);
  n = fread(err ? err : sink, 1, (err ? ecap : sizeof(sink)) - 1, e);
  (err ? err : sink)[n] = '\0';
  fclose(e);
  unlink(errfile);
  cr_assert(WIFEXITED(status), "mpshare %s did not exit", args);
  return WEXITSTATUS(status);
}

static bool exists(const char *name)
{
  char path[128];
  snprintf(path, sizeof(path), "/dev/shm%s", name);
  return access(path, F_OK) == 0;
}

static double num(const jval *o, const char *key)
{
  jval *v = json_get(o, key);
  cr_assert_not_null(v, "no key %s", key);
  cr_assert(v->type == J_NUM || v->type == J_BOOL, "key %s is not a number", key);
  return v->num;
}

static const char *str(const jval *o, const char *key)
{
  jval *v = json_get(o, key);
  cr_assert_not_null(v, "no key %s", key);
  cr_assert_eq(v->type, J_STR, "key %s is not a string", key);
  return v->str;
}

static int create_queue_and_exit(void *arg)
{
  mps_queue_opts o = {.maxsize = 16, .max_msg = 32};
  mps_queue *q = mps_queue_create(arg, &o);
  return q != NULL && mps_queue_put(q, "hello", 5, 0) == 0 ? 0 : 1;
}

static int create_lock_and_wait(void *arg)
{
  mps_lock *l = mps_lock_create(arg);
  if (l == NULL || mps_lock_acquire(l, MPS_FOREVER) != 0)
    return 1;
  pipe_put(back[1]);
  pipe_get(fds[0]);
  return 0;
}

static int create_sem_and_die(void *arg)
{
  if (mps_semaphore_create(arg, 3) == NULL)
    return 1;
  raise(SIGKILL);
  return 2;
}

/* ls --json: three creators (exited, alive, killed), every field checked. */
Test(mpshare, ls_json_field_by_field, .timeout = 30)
{
  char qn[64], ln[64], sn[64];
  test_name(qn, "cli-q");
  test_name(ln, "cli-l");
  test_name(sn, "cli-s");
  cr_assert_eq(pipe(fds), 0);
  cr_assert_eq(pipe(back), 0);
  pid_t qpid = child_run(create_queue_and_exit, qn);
  child_expect_exit(qpid, 0);
  pid_t spid = child_run(create_sem_and_die, sn);
  child_expect_signal(spid, SIGKILL);
  pid_t lpid = child_run(create_lock_and_wait, ln);
  pipe_get(back[0]);

  static char out[1 << 20];
  cr_assert_eq(mpshare(out, sizeof(out), NULL, 0, "ls --json"), 0);
  jval *doc = json_parse(out);
  cr_assert_not_null(doc, "ls --json is one JSON document: %s", out);
  cr_assert_eq(doc->type, J_ARR);
  jval *q = json_find_name(doc, qn), *l = json_find_name(doc, ln), *s = json_find_name(doc, sn);
  cr_assert(q && l && s, "all three are listed");
  struct stat st;
  char path[128];
  snprintf(path, sizeof(path), "/dev/shm%s", qn);
  cr_assert_eq(stat(path, &st), 0);

  cr_expect_str_eq(str(q, "kind"), "queue");
  cr_expect_eq(num(q, "size"), (double)st.st_size);
  cr_expect_eq(num(q, "creator_pid"), qpid);
  cr_expect_eq(num(q, "creator_alive"), 0);
  cr_expect_eq(num(q, "attached"), 0);
  cr_expect_eq(num(q, "creator_uid"), getuid());
  jval *qs = json_get(q, "state");
  cr_assert_not_null(qs);
  cr_expect_eq(num(qs, "depth"), 1);
  cr_expect_eq(num(qs, "maxsize"), 16);
  cr_expect_eq(num(qs, "max_msg"), 32);
  cr_expect_eq(num(qs, "unfinished"), 1);
  cr_expect_eq(json_get(qs, "shutdown")->type, J_BOOL);
  cr_expect_eq(num(qs, "shutdown"), 0);
  cr_expect_str_eq(str(qs, "order"), "fifo");

  cr_expect_str_eq(str(l, "kind"), "lock");
  cr_expect_eq(num(l, "creator_pid"), lpid);
  cr_expect_eq(num(l, "creator_alive"), 1);
  cr_expect_eq(num(l, "attached"), 1);
  jval *ls = json_get(l, "state");
  cr_expect_eq(num(ls, "held"), 1);
  cr_expect_eq(num(ls, "owner_pid"), lpid);
  cr_expect_eq(num(ls, "owner_alive"), 1);

  cr_expect_str_eq(str(s, "kind"), "semaphore");
  cr_expect_eq(num(s, "creator_pid"), spid);
  cr_expect_eq(num(s, "creator_alive"), 0);
  cr_expect_eq(num(json_get(s, "state"), "value"), 3);
  cr_expect_null(json_get(s, "counters"), "ls does not print counters");
  json_free(doc);

  /* The human table has a row for each, with its one-line state. */
  cr_assert_eq(mpshare(out, sizeof(out), NULL, 0, "ls"), 0);
  cr_expect_not_null(strstr(out, "1/16 msgs"));
  char held[64];
  snprintf(held, sizeof(held), "held by %d", (int)lpid);
  cr_expect_not_null(strstr(out, held));
  cr_expect_not_null(strstr(out, "value 3"));

  pipe_put(fds[1]);
  child_expect_exit(lpid, 0);
  cr_assert_eq(mps_unlink(qn), 0);
  cr_assert_eq(mps_unlink(ln), 0);
  cr_assert_eq(mps_unlink(sn), 0);
}

/* inspect --json: the counters after a known sequence of calls. */
Test(mpshare, inspect_json_counters, .timeout = 20)
{
  char qn[64];
  test_name(qn, "cli-inspect");
  mps_queue_opts o = {.maxsize = 2, .max_msg = 8};
  mps_queue *q = mps_queue_create(qn, &o);
  cr_assert_not_null(q);
  char buf[8];
  cr_assert_eq(mps_queue_put(q, "a", 1, 0), 0);
  cr_assert_eq(mps_queue_put(q, "b", 1, 0), 0);
  cr_assert_eq(mps_queue_put(q, "c", 1, 0), -EAGAIN);
  cr_assert_eq(mps_queue_get(q, buf, sizeof(buf), 0), 1);
  static char out[1 << 16];
  cr_assert_eq(mpshare(out, sizeof(out), NULL, 0, "inspect %s --json", qn + 1), 0);
  jval *doc = json_parse(out);
  cr_assert_not_null(doc, "inspect --json is one JSON document: %s", out);
  cr_assert_eq(doc->type, J_OBJ);
  cr_expect_str_eq(str(doc, "name"), qn);
  cr_expect_str_eq(str(doc, "kind"), "queue");
  cr_expect_eq(num(doc, "creator_pid"), getpid());
  cr_expect_eq(num(doc, "creator_alive"), 1);
  cr_expect_eq(num(doc, "attached"), 1);
  jval *c = json_get(doc, "counters");
  cr_assert_not_null(c);
  cr_expect_eq(num(c, "puts"), 2);
  cr_expect_eq(num(c, "gets"), 1);
  cr_expect_eq(num(c, "put_timeouts"), 1);
  cr_expect_eq(num(c, "get_timeouts"), 0);
  cr_expect_eq(num(c, "peak_depth"), 2);
  cr_expect_eq(num(c, "holes_skipped"), 0);
  cr_expect_eq(num(doc, "recoveries"), 0);
  cr_expect_eq(json_get(doc, "recent_recoveries")->type, J_ARR);
  json_free(doc);
  cr_assert_eq(mpshare(out, sizeof(out), NULL, 0, "inspect %s", qn), 0);
  cr_expect_not_null(strstr(out, "puts"));
  cr_expect_not_null(strstr(out, "1/2 msgs"));
  mps_queue_close(q);
  cr_assert_eq(mps_unlink(qn), 0);
}

/* A child that opens name and keeps it mapped until told. */
static int map_and_wait(void *arg)
{
  mps_queue *q = mps_queue_open(arg);
  if (q == NULL)
    return 1;
  pipe_put(back[1]);
  pipe_get(fds[0]);
  mps_queue_close(q);
  return 0;
}

/* gc removes an object whose creator died only once nobody maps it. */
Test(mpshare, gc_keeps_what_a_live_process_maps, .timeout = 30)
{
  char qn[64];
  test_name(qn, "cli-gc");
  cr_assert_eq(pipe(fds), 0);
  cr_assert_eq(pipe(back), 0);
  pid_t creator = child_run(create_queue_and_exit, qn);
  child_expect_exit(creator, 0);
  pid_t user = child_run(map_and_wait, qn);
  pipe_get(back[0]);
  static char out[1 << 16];
  cr_assert_eq(mpshare(out, sizeof(out), NULL, 0, "gc %s", qn), 0);
  cr_expect(exists(qn), "mapped by a live process: kept");
  cr_expect_null(strstr(out, qn));
  pipe_put(fds[1]);
  child_expect_exit(user, 0);
  cr_assert_eq(mpshare(out, sizeof(out), NULL, 0, "gc --dry-run %s", qn), 0);
  cr_expect_not_null(strstr(out, "would remove"));
  cr_expect(exists(qn), "--dry-run removes nothing");
  cr_assert_eq(mpshare(out, sizeof(out), NULL, 0, "gc --json %s", qn), 0);
  jval *doc = json_parse(out);
  cr_assert_not_null(doc, "%s", out);
  cr_assert_eq(doc->type, J_ARR);
  cr_expect_eq(doc->n, 1);
  jval *gone = json_find_name(doc, qn);
  cr_assert_not_null(gone);
  cr_expect_eq(num(gone, "creator_pid"), creator);
  cr_expect_eq(num(gone, "creator_alive"), 0);
  cr_expect_eq(num(gone, "attached"), 0);
  json_free(doc);
  cr_expect(!exists(qn), "creator dead and nobody maps it: removed");
}

/* A reused pid: the creator's pid runs (it is us) but the recorded start
 * time is another, so gc takes the creator for dead; it still keeps the
 * object while we map it. */
Test(mpshare, gc_with_a_reused_pid, .timeout = 20)
{
  char en[64], path[128];
  test_name(en, "cli-reuse");
  mps_event *e = mps_event_create(en);
  cr_assert_not_null(e);
  snprintf(path, sizeof(path), "/dev/shm%s", en);
  int fd = open(path, O_RDWR);
  cr_assert(fd >= 0);
  uint64_t start;
  cr_assert_eq(pread(fd, &start, 8, offsetof(struct mps__hdr, creator_start)), 8);
  start ^= 0x5555;
  cr_assert_eq(pwrite(fd, &start, 8, offsetof(struct mps__hdr, creator_start)), 8);
  close(fd);
  static char out[1 << 16];
  cr_assert_eq(mpshare(out, sizeof(out), NULL, 0, "inspect %s --json", en), 0);
  jval *doc = json_parse(out);
  cr_assert_not_null(doc);
  cr_expect_eq(num(doc, "creator_pid"), getpid());
  cr_expect_eq(num(doc, "creator_alive"), 0);
  cr_expect_eq(num(doc, "attached"), 1);
  json_free(doc);
  cr_assert_eq(mpshare(out, sizeof(out), NULL, 0, "gc %s", en), 0);
  cr_expect(exists(en), "we map it: kept");
  mps_event_close(e);
  cr_assert_eq(mpshare(out, sizeof(out), NULL, 0, "gc %s", en), 0);
  cr_expect(!exists(en), "nobody maps it and its creator is not running: removed");
}

/* Foreign and damaged files: not listed, never removed, no crash. */
Test(mpshare, foreign_and_damaged_files_are_left_alone, .timeout = 20)
{
  char fname[64], dname[64], path[128];
  test_name(fname, "cli-foreign");
  test_name(dname, "cli-damaged");
  snprintf(path, sizeof(path), "/dev/shm%s", fname);
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
  cr_assert(fd >= 0);
  cr_assert_eq(write(fd, "MPSHARE1 but not really", 23), 23);
  close(fd);
  mps_lock *l = mps_lock_create(dname);
  cr_assert_not_null(l);
  mps_lock_close(l);
  snprintf(path, sizeof(path), "/dev/shm%s", dname);
  cr_assert_eq(truncate(path, 100), 0); /* shorter than its header says */

  static char out[1 << 20], err[4096];
  cr_assert_eq(mpshare(out, sizeof(out), NULL, 0, "ls"), 0);
  cr_expect_null(strstr(out, fname));
  cr_expect_null(strstr(out, dname));
  cr_assert_eq(mpshare(out, sizeof(out), NULL, 0, "ls --all --json"), 0);
  jval *doc = json_parse(out);
  cr_assert_not_null(doc);
  cr_expect_str_eq(str(json_find_name(doc, fname), "kind"), "foreign");
  cr_expect_str_eq(str(json_find_name(doc, dname), "kind"), "foreign");
  json_free(doc);
  cr_expect_eq(mpshare(NULL, 0, err, sizeof(err), "rm %s", fname), 1);
  cr_expect_not_null(strstr(err, fname));
  cr_expect_not_null(strstr(err, mps_strerror(-EPROTO)), "stderr: %s", err);
  cr_expect_eq(mpshare(NULL, 0, err, sizeof(err), "inspect %s", dname), 1);
  cr_expect_not_null(strstr(err, mps_strerror(-EPROTO)));
  cr_expect_eq(mpshare(out, sizeof(out), NULL, 0, "gc %s %s", fname, dname), 0);
  cr_expect(exists(fname) && exists(dname), "gc leaves foreign and damaged files");
  cr_assert_eq(mps_unlink(fname), 0);
  cr_assert_eq(mps_unlink(dname), 0);
}

Test(mpshare, rm_exit_codes_and_messages, .timeout = 20)
{
  char a[64], b[64], missing[64];
  test_name(a, "cli-rm-a");
  test_name(b, "cli-rm-b");
  test_name(missing, "cli-rm-missing");
  mps_lock *la = mps_lock_create(a);
  mps_barrier *bb = mps_barrier_create(b, 2);
  cr_assert(la && bb);
  static char err[4096];
  cr_expect_eq(mpshare(NULL, 0, err, sizeof(err), "rm %s %s", a, b + 1), 0);
  cr_expect_str_empty(err);
  cr_expect(!exists(a) && !exists(b));
  cr_expect_eq(mpshare(NULL, 0, err, sizeof(err), "rm %s", missing), 1);
  cr_expect_not_null(strstr(err, missing));
  cr_expect_not_null(strstr(err, mps_strerror(-ENOENT)));
  cr_expect_eq(mpshare(NULL, 0, err, sizeof(err), "inspect %s", missing), 1);
  cr_expect_eq(mpshare(NULL, 0, err, sizeof(err), "rm"), 2);
  cr_expect_eq(mpshare(NULL, 0, err, sizeof(err), "inspect"), 2);
  cr_expect_eq(mpshare(NULL, 0, err, sizeof(err), "inspect a b"), 2);
  cr_expect_eq(mpshare(NULL, 0, err, sizeof(err), "ls --bogus"), 2);
  cr_expect_not_null(strstr(err, "--bogus"));
  cr_expect_eq(mpshare(NULL, 0, err, sizeof(err), "frobnicate"), 2);
  cr_expect_eq(mpshare(NULL, 0, err, sizeof(err), "%s", ""), 2);
  cr_expect_eq(mpshare(NULL, 0, err, sizeof(err), "watch x --interval -1"), 2);
  mps_lock_close(la);
  mps_barrier_close(bb);
}

Test(mpshare, help_for_every_subcommand, .timeout = 20)
{
  static char out[1 << 14];
  cr_assert_eq(mpshare(out, sizeof(out), NULL, 0, "--help"), 0);
  const char *cmds[] = {"ls", "inspect", "rm", "gc", "watch"};
  for (int i = 0; i < 5; i++) {
    char want[32];
    snprintf(want, sizeof(want), "mpshare %s", cmds[i]);
    cr_expect_not_null(strstr(out, want), "--help lists %s", cmds[i]);
  }
  for (int i = 0; i < 5; i++) {
    char want[32];
    cr_assert_eq(mpshare(out, sizeof(out), NULL, 0, "%s --help", cmds[i]), 0);
    snprintf(want, sizeof(want), "usage: mpshare %s", cmds[i]);
    cr_expect_not_null(strstr(out, want), "%s --help: %s", cmds[i], out);
  }
}

Test(mpshare, watch_shows_state_and_rates, .timeout = 20)
{
  char qn[64];
  test_name(qn, "cli-watch");
  mps_queue *q = mps_queue_create(qn, NULL);
  cr_assert_not_null(q);
  cr_assert_eq(mps_queue_put(q, "x", 1, 0), 0);
  static char out[1 << 14];
  cr_assert_eq(mpshare(out, sizeof(out), NULL, 0, "watch %s --interval 0.05 --count 3", qn), 0);
  int refreshes = 0;
  for (const char *p = out; (p = strstr(p, qn)) != NULL; p++)
    refreshes++;
  cr_expect_eq(refreshes, 3, "%s", out);
  cr_expect_not_null(strstr(out, "puts"));
  cr_expect_not_null(strstr(out, "/s"));
  cr_expect_not_null(strstr(out, "1/1024 msgs"));
  mps_queue_close(q);
  cr_assert_eq(mps_unlink(qn), 0);
}
