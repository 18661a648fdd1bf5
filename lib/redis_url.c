/* redis:// names: the parser of the URLs that name remote queues and pools.
 *
 *   redis://HOST[:PORT][/DB]/NAME[?lease=SECONDS&prefetch=N&password=PASS]
 *
 * HOST is a host name, an IPv4 address or a bracketed IPv6 address; PORT
 * defaults to 6379 and DB to 0. NAME follows the local naming rules (no
 * '/', at most MPS_NAME_MAX bytes) and is the Redis key of the queue.
 * PASS may be %XX-encoded. Pure code: no memory shared, nothing to crash.
 * Compiled with or without hiredis, so that a redis:// name is always told
 * apart from a local one.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote.h"

#define PREFIX "redis://"

bool mps__is_remote_name(const char *name)
{
  return name != NULL && strncmp(name, PREFIX, strlen(PREFIX)) == 0;
}

/* A decimal integer in [lo, hi] spanning exactly s[0..n). */
static int parse_int(const char *s, size_t n, long lo, long hi, int *out)
{
  if (n == 0 || n > 9)
    return -EINVAL;
  long v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -EINVAL;
    v = v * 10 + (s[i] - '0');
  }
  if (v < lo || v > hi)
    return -EINVAL;
  *out = (int)v;
  return 0;
}

static int hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* %XX-decodes s[0..n) into out (cap bytes with the NUL). */
static int decode(const char *s, size_t n, char *out, size_t cap)
{
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    int c = (unsigned char)s[i];
    if (c == '%') {
      if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
        return -EINVAL;
      c = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
      i += 2;
    }
    if (c == 0 || k + 1 >= cap)
      return -EINVAL;
    out[k++] = (char)c;
  }
  out[k] = '\0';
  return 0;
}

/* HOST[:PORT] in s[0..n). */
static int parse_authority(const char *s, size_t n, mps__rurl *u)
{
  const char *end = s + n, *colon;
  const char *h = s, *he;
  if (n > 0 && s[0] == '[') {
    const char *rb = memchr(s, ']', n);
    if (rb == NULL)
      return -EINVAL;
    h = s + 1;
    he = rb;
    colon = rb + 1 < end ? rb + 1 : NULL;
    if (colon != NULL && *colon != ':')
      return -EINVAL;
  } else {
    colon = memchr(s, ':', n);
    he = colon ? colon : end;
  }
  size_t hl = (size_t)(he - h);
  if (hl == 0 || hl > MPS__URL_HOST_MAX)
    return -EINVAL;
  for (size_t i = 0; i < hl; i++)
    if (h[i] == '@' || h[i] == '?' || h[i] == '%' || (unsigned char)h[i] <= ' ')
      return -EINVAL;
  memcpy(u->host, h, hl);
  u->host[hl] = '\0';
  u->port = 6379;
  if (colon != NULL)
    return parse_int(colon + 1, (size_t)(end - colon - 1), 1, 65535, &u->port);
  return 0;
}

/* One key=value of the query. */
static int parse_param(const char *s, size_t n, mps__rurl *u, bool *seen_pass)
{
  const char *eq = memchr(s, '=', n);
  if (eq == NULL)
    return -EINVAL;
  size_t kl = (size_t)(eq - s), vl = n - kl - 1;
  const char *v = eq + 1;
  if (kl == 5 && memcmp(s, "lease", 5) == 0 && u->lease == 0) {
    char tmp[32], *e;
    if (decode(v, vl, tmp, sizeof(tmp)) < 0 || tmp[0] == '\0')
      return -EINVAL;
    double l = strtod(tmp, &e);
    if (*e != '\0' || !isfinite(l) || l < 0.01 || l > 86400)
      return -EINVAL;
    u->lease = l;
    return 0;
  }
  if (kl == 8 && memcmp(s, "prefetch", 8) == 0 && u->prefetch == 0) {
    int pf;
    if (parse_int(v, vl, 1, MPS__PREFETCH_MAX, &pf) < 0)
      return -EINVAL;
    u->prefetch = (size_t)pf;
    return 0;
  }
  if (kl == 8 && memcmp(s, "password", 8) == 0 && !*seen_pass) {
    *seen_pass = true;
    return decode(v, vl, u->password, sizeof(u->password));
  }
  return -EINVAL;
}

static int parse_query(const char *q, mps__rurl *u)
{
  bool seen_pass = false;
  if (*q == '\0')
    return -EINVAL; /* a '?' with nothing after it */
  while (*q != '\0') {
    const char *amp = strchr(q, '&');
    size_t n = amp ? (size_t)(amp - q) : strlen(q);
    int err = parse_param(q, n, u, &seen_pass);
    if (err < 0)
      return err;
    q += n + (amp != NULL);
    if (amp != NULL && *q == '\0')
      return -EINVAL;
  }
  return 0;
}

/* [/DB]/NAME in s[0..n): the last segment is the name. */
static int parse_path(const char *s, size_t n, mps__rurl *u)
{
  if (n < 2 || s[0] != '/')
    return -EINVAL;
  const char *slash = memchr(s + 1, '/', n - 1);
  const char *name = s + 1;
  u->db = 0;
  if (slash != NULL) {
    int err = parse_int(s + 1, (size_t)(slash - s - 1), 0, 1000000, &u->db);
    if (err < 0)
      return err;
    name = slash + 1;
  }
  size_t nl = (size_t)(s + n - name);
  char buf[MPS_NAME_MAX + 2];
  if (nl == 0 || nl > MPS_NAME_MAX || memchr(name, '/', nl) != NULL)
    return -EINVAL;
  memcpy(buf, name, nl);
  buf[nl] = '\0';
  char checked[MPS_NAME_MAX + 2];
  if (mps__name_check(buf, checked) < 0)
    return -EINVAL;
  for (size_t i = 0; i < nl; i++)
    if ((unsigned char)buf[i] <= ' ' || buf[i] == '%')
      return -EINVAL;
  memcpy(u->name, buf, nl + 1);
  return 0;
}

int mps__rurl_parse(const char *url, mps__rurl *u)
{
  if (!mps__is_remote_name(url))
    return -EINVAL;
  memset(u, 0, sizeof(*u));
  const char *a = url + strlen(PREFIX);
  const char *q = strchr(a, '?');
  const char *end = q ? q : a + strlen(a);
  const char *p = a;
  if (*p == '[') { /* the path starts after the bracketed address */
    p = memchr(a, ']', (size_t)(end - a));
    if (p == NULL)
      return -EINVAL;
  }
  p = memchr(p, '/', (size_t)(end - p));
  if (p == NULL)
    return -EINVAL;
  int err = parse_authority(a, (size_t)(p - a), u);
  if (err == 0)
    err = parse_path(p, (size_t)(end - p), u);
  if (err == 0 && q != NULL)
    err = parse_query(q + 1, u);
  if (u->prefetch == 0)
    u->prefetch = 1;
  return err;
}

int mps__rurl_format(const mps__rurl *u, const char *name, char *out, size_t cap)
{
  bool v6 = strchr(u->host, ':') != NULL;
  int n = snprintf(out, cap, "redis://%s%s%s:%d/%d/%s", v6 ? "[" : "", u->host, v6 ? "]" : "",
                   u->port, u->db, name);
  if (n < 0 || (size_t)n >= cap)
    return -EINVAL;
  size_t k = (size_t)n;
  if (u->lease > 0) {
    n = snprintf(out + k, cap - k, "?lease=%.3f", u->lease);
    if (n < 0 || (size_t)n >= cap - k)
      return -EINVAL;
    k += (size_t)n;
  }
  for (const char *p = u->password; *p; p++) {
    if (p == u->password) {
      n = snprintf(out + k, cap - k, "%spassword=", u->lease > 0 ? "&" : "?");
      if (n < 0 || (size_t)n >= cap - k)
        return -EINVAL;
      k += (size_t)n;
    }
    if (k + 4 > cap)
      return -EINVAL;
    k += (size_t)snprintf(out + k, cap - k, "%%%02X", (unsigned char)*p);
  }
  return 0;
}
