/* Output of the mpshare command: one-line states, aligned tables, JSON. */
#ifndef MPSHARE_TOOLS_OUTPUT_H
#define MPSHARE_TOOLS_OUTPUT_H

#include <stdbool.h>
#include <stdio.h>

#include <mpshare.h>

/* The one-line state of an object, as `mpshare ls` shows it. */
void out_state_line(const mps_object_info *o, char *buf, size_t cap);

/* The table of `mpshare ls` (and gc): a heading, then one row per object. */
void out_table(FILE *f, const mps_object_info *objs, size_t n);

/* Everything about one object, as `mpshare inspect` shows it. */
void out_details(FILE *f, const mps_object_info *o);

/* One JSON object; with_details adds counters and recoveries. */
void out_json_object(FILE *f, const mps_object_info *o, bool with_details);

/* A JSON array of objects. */
void out_json_array(FILE *f, const mps_object_info *objs, size_t n, bool with_details);

#endif
