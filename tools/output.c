/* Output of the mpshare command: the one-line state of each kind, the
 * aligned table of `ls` and `gc`, the details of `inspect`, and JSON. JSON
 * is written by hand (names are the only strings from outside and are
 * escaped); every document is one value followed by a newline. */
#include "output.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

static int64_t num(const mps_object_info *o, const char *key, int64_t dflt)
{
  const mps_info_field *f = mps_info_get(o->state, o->n_state, key);
  return f != NULL ? f->value : dflt;
}

static void lock_line(const mps_object_info *o, char *buf, size_t cap)
{
  if (!num(o, "held", 0))
    snprintf(buf, cap, "free%s", num(o, "owner_died", 0) ? " (its holder died)" : "");
  else
    snprintf(buf, cap, "held by %" PRId64 "%s", num(o, "owner_pid", 0),
             num(o, "owner_alive", 0) ? "" : " (dead)");
}

static void block_line(const mps_object_info *o, char *buf, size_t cap)
{
  const mps_info_field *t = mps_info_get(o->state, o->n_state, "type");
  int n = snprintf(buf, cap, "%s[%" PRId64 "]", t && t->text ? t->text : "?", num(o, "length", 0));
  if (num(o, "has_lock", 0) && n > 0 && (size_t)n < cap) {
    buf[n++] = ' ';
    lock_line(o, buf + n, cap - (size_t)n);
  }
}

void out_state_line(const mps_object_info *o, char *buf, size_t cap)
{
  const char *k = o->kind;
  if (o->status != 0)
    snprintf(buf, cap, "not an mpshare object of this version, or damaged");
  else if (strcmp(k, "queue") == 0)
    snprintf(buf, cap, "%" PRId64 "/%" PRId64 " msgs%s", num(o, "depth", 0), num(o, "maxsize", 0),
             num(o, "shutdown", 0) ? ", shut down" : "");
  else if (strcmp(k, "lock") == 0 || strcmp(k, "rlock") == 0)
    lock_line(o, buf, cap);
  else if (strcmp(k, "value") == 0 || strcmp(k, "array") == 0 || strcmp(k, "shm") == 0)
    block_line(o, buf, cap);
  else if (strcmp(k, "semaphore") == 0)
    snprintf(buf, cap, "value %" PRId64, num(o, "value", 0));
  else if (strcmp(k, "bounded_semaphore") == 0)
    snprintf(buf, cap, "value %" PRId64 "/%" PRId64, num(o, "value", 0), num(o, "bound", 0));
  else if (strcmp(k, "event") == 0)
    snprintf(buf, cap, "%s", num(o, "set", 0) ? "set" : "clear");
  else if (strcmp(k, "condition") == 0)
    snprintf(buf, cap, "%" PRId64 " waiters", num(o, "waiters", 0));
  else if (strcmp(k, "barrier") == 0)
    snprintf(buf, cap, "%s%" PRId64 "/%" PRId64 " waiting", num(o, "broken", 0) ? "broken, " : "",
             num(o, "waiting", 0), num(o, "parties", 0));
  else
    snprintf(buf, cap, "-");
}

static const char *alive_word(const mps_object_info *o)
{
  return o->status != 0 ? "-" : o->creator_alive ? "alive" : "dead";
}

void out_table(FILE *f, const mps_object_info *objs, size_t n)
{
  int w = 4;
  for (size_t i = 0; i < n; i++)
    w = (int)strlen(objs[i].name) > w ? (int)strlen(objs[i].name) : w;
  fprintf(f, "%-*s  %-17s %10s  %-14s %8s  %s\n", w, "NAME", "KIND", "SIZE", "CREATOR", "ATTACHED",
          "STATE");
  for (size_t i = 0; i < n; i++) {
    const mps_object_info *o = &objs[i];
    char state[160], att[16], creator[32];
    out_state_line(o, state, sizeof(state));
    snprintf(att, sizeof(att), o->attached < 0 ? "-" : "%d", o->attached);
    snprintf(creator, sizeof(creator), o->status ? "-" : "%d %s", (int)o->creator_pid,
             alive_word(o));
    fprintf(f, "%-*s  %-17s %10" PRIu64 "  %-14s %8s  %s\n", w, o->name, o->kind, o->size, creator,
            att, state);
  }
}

static void when(double t, char *buf, size_t cap)
{
  time_t s = (time_t)t;
  struct tm tm;
  if (localtime_r(&s, &tm) == NULL || strftime(buf, cap, "%Y-%m-%d %H:%M:%S", &tm) == 0)
    snprintf(buf, cap, "%.0f", t);
}

static void fields_text(FILE *f, const char *title, const mps_info_field *fs, size_t n)
{
  fprintf(f, "%s:\n", title);
  for (size_t i = 0; i < n; i++) {
    if (fs[i].text)
      fprintf(f, "  %-16s %s\n", fs[i].key, fs[i].text);
    else if (fs[i].is_bool)
      fprintf(f, "  %-16s %s\n", fs[i].key, fs[i].value ? "yes" : "no");
    else
      fprintf(f, "  %-16s %" PRId64 "\n", fs[i].key, fs[i].value);
  }
}

void out_details(FILE *f, const mps_object_info *o)
{
  char t[64], line[160];
  when(o->created, t, sizeof(t));
  out_state_line(o, line, sizeof(line));
  fprintf(f, "name:     %s\nkind:     %s\nsize:     %" PRIu64 " bytes\n", o->name, o->kind,
          o->size);
  fprintf(f, "creator:  pid %d (%s), uid %u, started at tick %" PRIu64 "\n", (int)o->creator_pid,
          alive_word(o), (unsigned)o->creator_uid, o->creator_start);
  fprintf(f, "created:  %s by mpshare %u.%u.%u\n", t, o->version >> 16, (o->version >> 8) & 0xff,
          o->version & 0xff);
  fprintf(f, "attached: %d processes\nstate:    %s\n", o->attached, line);
  fields_text(f, "state fields", o->state, o->n_state);
  fields_text(f, "counters", o->counters, o->n_counters);
  fprintf(f, "recoveries: %" PRIu64 " in all%s\n", o->recoveries,
          o->n_recent ? ", newest first:" : "");
  for (size_t i = 0; i < o->n_recent; i++) {
    when(o->recent[i].time, t, sizeof(t));
    fprintf(f, "  %s  pid %d  %s\n", t, (int)o->recent[i].pid, o->recent[i].what);
  }
}

/* ---- JSON ----------------------------------------------------------------- */

static void json_string(FILE *f, const char *s)
{
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(f, "\\%c", *p);
    else if (*p < 0x20)
      fprintf(f, "\\u%04x", *p);
    else
      fputc(*p, f);
  }
  fputc('"', f);
}

static void json_fields(FILE *f, const mps_info_field *fs, size_t n)
{
  fputc('{', f);
  for (size_t i = 0; i < n; i++) {
    fprintf(f, "%s", i ? ", " : "");
    json_string(f, fs[i].key);
    fputs(": ", f);
    if (fs[i].text)
      json_string(f, fs[i].text);
    else if (fs[i].is_bool)
      fputs(fs[i].value ? "true" : "false", f);
    else
      fprintf(f, "%" PRId64, fs[i].value);
  }
  fputc('}', f);
}

static void json_recoveries(FILE *f, const mps_object_info *o)
{
  fprintf(f, ", \"recoveries\": %" PRIu64 ", \"recent_recoveries\": [", o->recoveries);
  for (size_t i = 0; i < o->n_recent; i++) {
    fprintf(f, "%s{\"pid\": %d, \"time\": %.3f, \"what\": ", i ? ", " : "", (int)o->recent[i].pid,
            o->recent[i].time);
    json_string(f, o->recent[i].what);
    fputc('}', f);
  }
  fputc(']', f);
}

void out_json_object(FILE *f, const mps_object_info *o, bool with_details)
{
  fputs("{\"name\": ", f);
  json_string(f, o->name);
  fputs(", \"kind\": ", f);
  json_string(f, o->kind);
  fprintf(f, ", \"size\": %" PRIu64 ", \"creator_pid\": %d, \"creator_alive\": %s", o->size,
          (int)o->creator_pid, o->status == 0 && o->creator_alive ? "true" : "false");
  fprintf(f, ", \"creator_uid\": %u, \"creator_start\": %" PRIu64 ", \"created\": %.3f",
          (unsigned)o->creator_uid, o->creator_start, o->created);
  fprintf(f, ", \"version\": \"%u.%u.%u\", \"attached\": %d, \"state\": ", o->version >> 16,
          (o->version >> 8) & 0xff, o->version & 0xff, o->attached);
  json_fields(f, o->state, o->n_state);
  if (with_details) {
    fputs(", \"counters\": ", f);
    json_fields(f, o->counters, o->n_counters);
    json_recoveries(f, o);
  }
  fputc('}', f);
}

void out_json_array(FILE *f, const mps_object_info *objs, size_t n, bool with_details)
{
  fputc('[', f);
  for (size_t i = 0; i < n; i++) {
    fputs(i ? ",\n " : "", f);
    out_json_object(f, &objs[i], with_details);
  }
  fputs("]\n", f);
}
