/* A small JSON reader for the tests of the mpshare command: parses one
 * document into a tree, so that a test can check its output field by
 * field. Strict enough to fail on malformed output: anything but one
 * complete value with only whitespace around it is an error. */
#ifndef MPS_TEST_JSON_H
#define MPS_TEST_JSON_H

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct jval {
  enum jtype type;
  double num;  /* J_NUM, J_BOOL (0 or 1) */
  char *str;   /* J_STR */
  size_t n;    /* J_ARR, J_OBJ: items */
  char **keys; /* J_OBJ */
  struct jval **items;
} jval;

static jval *j_value(const char **p);

static void j_ws(const char **p)
{
  while (isspace((unsigned char)**p))
    (*p)++;
}

static jval *j_new(enum jtype t)
{
  jval *v = calloc(1, sizeof(*v));
  v->type = t;
  return v;
}

static char *j_string(const char **p)
{
  if (**p != '"')
    return NULL;
  size_t cap = strlen(*p) + 1, n = 0;
  char *s = malloc(cap);
  for ((*p)++; **p != '"'; (*p)++) {
    if (**p == '\0' || (unsigned char)**p < 0x20) {
      free(s);
      return NULL;
    }
    if (**p == '\\') {
      (*p)++;
      if (**p == 'u') {
        s[n++] = (char)strtol((char[5]){(*p)[1], (*p)[2], (*p)[3], (*p)[4], 0}, NULL, 16);
        *p += 4;
      } else if (strchr("\"\\/", **p) != NULL) {
        s[n++] = **p;
      } else {
        free(s);
        return NULL;
      }
    } else {
      s[n++] = **p;
    }
  }
  (*p)++;
  s[n] = '\0';
  return s;
}

static void j_push(jval *v, char *key, jval *item)
{
  v->items = realloc(v->items, (v->n + 1) * sizeof(*v->items));
  v->keys = realloc(v->keys, (v->n + 1) * sizeof(*v->keys));
  v->items[v->n] = item;
  v->keys[v->n++] = key;
}

/* An array (obj false) or an object, after its opening bracket. */
static jval *j_container(const char **p, bool obj)
{
  jval *v = j_new(obj ? J_OBJ : J_ARR);
  j_ws(p);
  if (**p == (obj ? '}' : ']')) {
    (*p)++;
    return v;
  }
  for (;;) {
    char *key = NULL;
    j_ws(p);
    if (obj) {
      if ((key = j_string(p)) == NULL)
        return NULL;
      j_ws(p);
      if (*(*p)++ != ':')
        return NULL;
    }
    jval *item = j_value(p);
    if (item == NULL)
      return NULL;
    j_push(v, key, item);
    j_ws(p);
    char c = *(*p)++;
    if (c == (obj ? '}' : ']'))
      return v;
    if (c != ',')
      return NULL;
  }
}

static jval *j_value(const char **p)
{
  j_ws(p);
  if (**p == '{' || **p == '[') {
    bool obj = **p == '{';
    (*p)++;
    return j_container(p, obj);
  }
  if (**p == '"') {
    jval *v = j_new(J_STR);
    v->str = j_string(p);
    return v->str ? v : NULL;
  }
  static const char *const words[] = {"true", "false", "null"};
  for (int i = 0; i < 3; i++)
    if (strncmp(*p, words[i], strlen(words[i])) == 0) {
      *p += strlen(words[i]);
      jval *v = j_new(i == 2 ? J_NULL : J_BOOL);
      v->num = i == 0;
      return v;
    }
  char *end;
  double d = strtod(*p, &end);
  if (end == *p)
    return NULL;
  *p = end;
  jval *v = j_new(J_NUM);
  v->num = d;
  return v;
}

/* The document in text, or NULL if it is not exactly one JSON value. */
static inline jval *json_parse(const char *text)
{
  jval *v = j_value(&text);
  j_ws(&text);
  return v != NULL && *text == '\0' ? v : NULL;
}

static inline void json_free(jval *v)
{
  if (v == NULL)
    return;
  for (size_t i = 0; i < v->n; i++) {
    json_free(v->items[i]);
    free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
  free(v->str);
  free(v);
}

/* Member key of object v, or NULL. */
static inline jval *json_get(const jval *v, const char *key)
{
  for (size_t i = 0; v != NULL && v->type == J_OBJ && i < v->n; i++)
    if (strcmp(v->keys[i], key) == 0)
      return v->items[i];
  return NULL;
}

/* The element of array v whose "name" member is name, or NULL. */
static inline jval *json_find_name(const jval *v, const char *name)
{
  for (size_t i = 0; v != NULL && v->type == J_ARR && i < v->n; i++) {
    jval *n = json_get(v->items[i], "name");
    if (n != NULL && n->type == J_STR && strcmp(n->str, name) == 0)
      return v->items[i];
  }
  return NULL;
}

#endif
