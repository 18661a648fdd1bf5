// Boost.Interprocess message_queue, the peer queue_throughput compares
// mpshare's queue with: P producer processes -> C consumer processes move
// N 64-byte messages through a 1024-message queue (a mutex and two
// condition variables in shared memory, not robust: a process killed
// inside it can leave the others waiting for ever). queue_throughput runs
// it for its Boost row, in the same round as the other kinds.
//
//   boost_mq P C N    prints messages per second (0 on failure)
//
// message_queue has no batch call: mpshare's batches are compared with
// its single calls.
#include <boost/interprocess/ipc/message_queue.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

namespace bip = boost::interprocess;

static const std::size_t MSG = 64, CAP = 1024;
static const std::uint64_t STOP = UINT64_MAX;

static double now()
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int produce(bip::message_queue &mq, std::uint64_t n)
{
  char m[MSG] = {0};
  for (std::uint64_t i = 0; i < n; i++) {
    std::memcpy(m, &i, 8);
    mq.send(m, MSG, 0);
  }
  return 0;
}

static int consume(bip::message_queue &mq)
{
  char m[MSG];
  for (;;) {
    bip::message_queue::size_type got;
    unsigned prio;
    mq.receive(m, MSG, got, prio);
    if (got != MSG)
      return 4;
    std::uint64_t id;
    std::memcpy(&id, m, 8);
    if (id == STOP)
      return 0;
  }
}

int main(int argc, char **argv)
{
  if (argc < 4)
    return 2;
  int np = std::atoi(argv[1]), nc = std::atoi(argv[2]);
  std::uint64_t n = std::strtoull(argv[3], nullptr, 10);
  if (np < 1 || nc < 1 || np > 16 || nc > 16 || n < 1)
    return 2;
  char name[64];
  std::snprintf(name, sizeof(name), "mps-bench-boost-%d", (int)getpid());
  bip::message_queue::remove(name);
  double rate = 0;
  try {
    bip::message_queue mq(bip::create_only, name, CAP, MSG);
    pid_t pids[32];
    double t0 = now();
    for (int i = 0; i < nc; i++)
      if ((pids[i] = fork()) == 0)
        _exit(consume(mq));
    for (int i = 0; i < np; i++)
      if ((pids[nc + i] = fork()) == 0)
        _exit(produce(mq, n / (std::uint64_t)np));
    int status, bad = 0;
    for (int i = nc; i < nc + np; i++)
      bad |= waitpid(pids[i], &status, 0) < 0 || status != 0;
    char stop[MSG];
    std::memset(stop, 0xff, sizeof(stop));
    for (int i = 0; i < nc; i++)
      mq.send(stop, MSG, 0);
    for (int i = 0; i < nc; i++)
      bad |= waitpid(pids[i], &status, 0) < 0 || status != 0;
    double secs = now() - t0;
    if (!bad)
      rate = (double)(n / (std::uint64_t)np * (std::uint64_t)np) / secs;
  } catch (const bip::interprocess_exception &) {
    rate = 0;
  }
  bip::message_queue::remove(name);
  std::printf("%.0f\n", rate);
  return 0;
}
