/* mpshare: share state between processes on one Linux machine, the way
 * Python's multiprocessing does, at the speed of shared memory.
 *
 * Include this one header; link with `pkg-config --libs mpshare`.
 */
#ifndef MPSHARE_H
#define MPSHARE_H

#include <mpshare/common.h>
#include <mpshare/inspect.h>
#include <mpshare/lock.h>
#include <mpshare/pipe.h>
#include <mpshare/pool.h>
#include <mpshare/process.h>
#include <mpshare/queue.h>
#include <mpshare/sync.h>
#include <mpshare/value.h>
#include <mpshare/version.h>

#endif
