/* mpshare: list, inspect, remove and watch the named mpshare objects in
 * /dev/shm. A thin layer on the read-only inspection API (inspect.h): it
 * never opens an object, takes a lock or waits for another process.
 *
 *   mpshare ls [--json] [--all]      mpshare rm NAME...
 *   mpshare inspect NAME [--json]    mpshare gc [--dry-run] [--json] [NAME...]
 *   mpshare watch NAME [--interval S] [--count N]
 *
 * Exit status: 0 success, 1 a named object is missing or refused, 2 bad
 * usage. Errors go to stderr with the name and mps_strerror's text.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpshare.h>

#include "output.h"

enum { OK = 0, FAILED = 1, USAGE = 2 };

struct opts {
  bool json, all, dry_run;
  double interval;
  long count; /* watch: refreshes before exiting; 0: until interrupted */
  int nargs;
  char **args;
};

struct command {
  const char *name;
  int (*run)(const struct opts *o);
  const char *usage;
  const char *help;
  const char *flags; /* the options it takes: j=json a=all d=dry-run i=interval c=count */
  int min_args, max_args;
};

static int fail(const char *name, long long err)
{
  fprintf(stderr, "mpshare: %s: %s\n", name, mps_strerror(err));
  return FAILED;
}

/* ---- ls, inspect, rm -------------------------------------------------------- */

static int cmd_ls(const struct opts *o)
{
  mps_object_info *list;
  size_t n;
  int err = mps_inspect_list(&list, &n, o->all ? MPS_INSPECT_ALL : 0);
  if (err < 0)
    return fail("/dev/shm", err);
  if (o->json)
    out_json_array(stdout, list, n, false);
  else
    out_table(stdout, list, n);
  mps_inspect_free(list);
  return OK;
}

static int cmd_inspect(const struct opts *o)
{
  mps_object_info info;
  int err = mps_inspect(o->args[0], &info);
  if (err < 0)
    return fail(o->args[0], err);
  if (o->json) {
    out_json_object(stdout, &info, true);
    putchar('\n');
  } else {
    out_details(stdout, &info);
  }
  return OK;
}

static int cmd_rm(const struct opts *o)
{
  int status = OK;
  for (int i = 0; i < o->nargs; i++) {
    mps_object_info info;
    int err = mps_inspect(o->args[i], &info); /* refuses a foreign file (-EPROTO) */
    if (err == 0)
      err = mps_unlink(o->args[i]);
    if (err < 0)
      status = fail(o->args[i], err);
  }
  return status;
}

/* ---- gc -------------------------------------------------------------------- */

/* Garbage: an mpshare object whose creator is gone and that no live
 * process maps. Asked again just before the unlink, from a fresh look, so
 * that an object opened since the listing is kept. */
static bool is_garbage(const mps_object_info *o)
{
  return o->status == 0 && !o->creator_alive && o->attached == 0;
}

/* Whether gc was told to look at this object: all of them when no NAME
 * was given, else only those named. */
static bool in_scope(const struct opts *o, const char *name)
{
  for (int i = 0; i < o->nargs; i++)
    if (strcmp(name + 1, o->args[i] + (o->args[i][0] == '/')) == 0)
      return true;
  return o->nargs == 0;
}

static int cmd_gc(const struct opts *o)
{
  mps_object_info *list, fresh;
  size_t n, k = 0;
  int err = mps_inspect_list(&list, &n, 0);
  if (err < 0)
    return fail("/dev/shm", err);
  for (size_t i = 0; i < n; i++) {
    if (!in_scope(o, list[i].name) || !is_garbage(&list[i]) ||
        mps_inspect(list[i].name, &fresh) < 0 || !is_garbage(&fresh))
      continue;
    if (!o->dry_run && (err = mps_unlink(fresh.name)) < 0) {
      fail(fresh.name, err);
      continue;
    }
    list[k++] = fresh;
  }
  if (o->json) {
    out_json_array(stdout, list, k, false);
  } else {
    for (size_t i = 0; i < k; i++)
      printf("%s %s (%s, creator %d dead, not mapped)\n", o->dry_run ? "would remove" : "removed",
             list[i].name, list[i].kind, (int)list[i].creator_pid);
    if (k == 0)
      printf("nothing to remove\n");
  }
  mps_inspect_free(list);
  return OK;
}

/* ---- watch ----------------------------------------------------------------- */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
  (void)sig;
  interrupted = 1;
}

static void sleep_for(double s)
{
  struct timespec t = {(time_t)s, (long)((s - floor(s)) * 1e9)};
  while (!interrupted && nanosleep(&t, &t) < 0 && errno == EINTR)
    ;
}

/* One refresh: the state line and each counter with its rate since prev. */
static void watch_show(const mps_object_info *now, const mps_object_info *prev, double dt,
                       bool clear)
{
  char line[160];
  out_state_line(now, line, sizeof(line));
  printf("%s%s  %s  attached %d  creator %d (%s)\n  %s\n", clear ? "\033[H\033[J" : "", now->name,
         now->kind, now->attached, (int)now->creator_pid, now->creator_alive ? "alive" : "dead",
         line);
  for (size_t i = 0; i < now->n_counters; i++) {
    const mps_info_field *c = &now->counters[i];
    const mps_info_field *p = prev ? mps_info_get(prev->counters, prev->n_counters, c->key) : NULL;
    double rate = p && dt > 0 ? (double)(c->value - p->value) / dt : 0;
    if (strcmp(c->key, "peak_depth") == 0) /* a maximum, not a count: no rate */
      printf("  %-14s %14lld\n", c->key, (long long)c->value);
    else
      printf("  %-14s %14lld %12.1f/s\n", c->key, (long long)c->value, rate);
  }
  fflush(stdout);
}

static int cmd_watch(const struct opts *o)
{
  mps_object_info a, b, *now = &a, *prev = NULL;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  bool clear = isatty(STDOUT_FILENO);
  for (long i = 0; !interrupted && (o->count == 0 || i < o->count); i++) {
    int err = mps_inspect(o->args[0], now);
    if (err < 0)
      return fail(o->args[0], err);
    watch_show(now, prev, o->interval, clear);
    prev = now;
    now = now == &a ? &b : &a;
    if (o->count == 0 || i + 1 < o->count)
      sleep_for(o->interval);
  }
  return OK;
}

/* ---- options and help ---------------------------------------------------------- */

static const struct command commands[] = {
    {"ls", cmd_ls, "mpshare ls [--json] [--all]",
     "List this user's mpshare objects in /dev/shm: name, kind, size, creator pid and\n"
     "whether it runs, attached processes and a one-line state.\n"
     "  --json  one JSON array of objects\n"
     "  --all   also list the other files of this user there, as \"foreign\"\n",
     "ja", 0, 0},
    {"inspect", cmd_inspect, "mpshare inspect NAME [--json]",
     "Everything known about one object: creator, state, counters, recent recoveries.\n"
     "  --json  one JSON object\n",
     "j", 1, 1},
    {"rm", cmd_rm, "mpshare rm NAME...",
     "Unlink mpshare objects. A file that is not an mpshare object is refused.\n"
     "Processes that map an object keep using it until they close it.\n",
     "", 1, 1 << 20},
    {"gc", cmd_gc, "mpshare gc [--dry-run] [--json] [NAME...]",
     "Unlink every mpshare object whose creator is dead and that no live process maps\n"
     "(per /proc/*/maps). Never removes a mapped object nor a foreign file.\n"
     "  --dry-run  only say what would be removed\n"
     "  --json     print the removed objects as one JSON array\n"
     "  NAME...    look only at these objects\n",
     "jd", 0, 1 << 20},
    {"watch", cmd_watch, "mpshare watch NAME [--interval S] [--count N]",
     "Show an object's state and its counters' rates every S seconds (default 1)\n"
     "until interrupted, or N times.\n",
     "ic", 1, 1},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
  fprintf(f, "usage: mpshare COMMAND [OPTIONS]   (mpshare COMMAND --help for more)\n\n");
  for (size_t i = 0; i < NCOMMANDS; i++)
    fprintf(f, "  %s\n", commands[i].usage);
  fprintf(f, "\nExit status: 0 success, 1 an object is missing or refused, 2 bad usage.\n"
             "See mpshare(1).\n");
}

static int bad_usage(const struct command *c, const char *msg, const char *arg)
{
  fprintf(stderr, "mpshare: %s%s%s\nusage: %s\n", msg, arg ? ": " : "", arg ? arg : "",
          c ? c->usage : "mpshare COMMAND [OPTIONS] (see mpshare --help)");
  return USAGE;
}

/* A number option's value: 0, or bad usage. */
static int number(const struct command *c, const char *flag, const char *s, double *out)
{
  char *end;
  errno = 0;
  *out = s ? strtod(s, &end) : 0;
  if (s == NULL || errno != 0 || end == s || *end != '\0' || !(*out > 0) || *out > 1e6)
    return bad_usage(c, "a positive number is needed after", flag);
  return 0;
}

static int parse_flag(const struct command *c, char **argv, int *i, struct opts *o)
{
  const char *a = argv[*i];
  double v;
  if (strcmp(a, "--json") == 0 && strchr(c->flags, 'j'))
    o->json = true;
  else if (strcmp(a, "--all") == 0 && strchr(c->flags, 'a'))
    o->all = true;
  else if (strcmp(a, "--dry-run") == 0 && strchr(c->flags, 'd'))
    o->dry_run = true;
  else if (strcmp(a, "--interval") == 0 && strchr(c->flags, 'i')) {
    if (number(c, a, argv[++*i], &v))
      return USAGE;
    o->interval = v;
  } else if (strcmp(a, "--count") == 0 && strchr(c->flags, 'c')) {
    if (number(c, a, argv[++*i], &v) || v != floor(v))
      return bad_usage(c, "a whole number is needed after", a);
    o->count = (long)v;
  } else
    return bad_usage(c, "unknown option", a);
  return 0;
}

static int run(const struct command *c, int argc, char **argv)
{
  struct opts o = {.interval = 1.0, .args = calloc((size_t)argc + 1, sizeof(char *))};
  int status = o.args == NULL ? FAILED : OK;
  for (int i = 0; status == OK && i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      printf("usage: %s\n\n%s", c->usage, c->help);
      free(o.args);
      return OK;
    }
    if (argv[i][0] == '-' && argv[i][1] == '-')
      status = parse_flag(c, argv, &i, &o);
    else
      o.args[o.nargs++] = argv[i];
  }
  if (status == OK && (o.nargs < c->min_args || o.nargs > c->max_args))
    status = bad_usage(c, o.nargs < c->min_args ? "missing NAME" : "too many arguments", NULL);
  if (status == OK)
    status = c->run(&o);
  free(o.args);
  return status;
}

int main(int argc, char **argv)
{
  if (argc < 2)
    return usage(stderr), USAGE;
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0)
    return usage(stdout), OK;
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp(argv[1], commands[i].name) == 0)
      return run(&commands[i], argc - 2, argv + 2);
  return bad_usage(NULL, "unknown command", argv[1]);
}
