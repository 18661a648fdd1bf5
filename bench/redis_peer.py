"""The peer of bench/redis_bench: Python's remote queue, a queue.Queue served
by multiprocessing.managers over TCP on loopback.

    python3 bench/redis_peer.py MESSAGES PRODUCERS CONSUMERS

Producers and consumers are separate processes that connect to the manager
(as clients on other hosts would); each producer puts its share of 64-byte
messages one by one, each consumer gets its share and calls task_done. Prints
messages per second, from the moment every client is connected to the last
get.
"""
import multiprocessing as mp
import queue
import sys
import time
from multiprocessing.managers import BaseManager

AUTH = b"mps-bench"


class QueueManager(BaseManager):
    pass


def serve(port_out, ready):
    q = queue.Queue(maxsize=1024)
    QueueManager.register("get_queue", callable=lambda: q)
    m = QueueManager(address=("127.0.0.1", 0), authkey=AUTH)
    s = m.get_server()
    port_out.value = s.address[1]
    ready.set()
    s.serve_forever()


def client(port):
    QueueManager.register("get_queue")
    m = QueueManager(address=("127.0.0.1", port), authkey=AUTH)
    m.connect()
    return m.get_queue()


def producer(port, n, start):
    q = client(port)
    msg = b"x" * 64
    start.wait()  # a barrier: every client is connected
    for _ in range(n):
        q.put(msg)


def consumer(port, n, start):
    q = client(port)
    start.wait()
    for _ in range(n):
        q.get()
        q.task_done()


def main():
    n, p, c = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    port, ready, start = mp.Value("i", 0), mp.Event(), mp.Barrier(p + c + 1)
    server = mp.Process(target=serve, args=(port, ready), daemon=True)
    server.start()
    ready.wait()
    procs = [mp.Process(target=producer, args=(port.value, n // p, start)) for _ in range(p)]
    procs += [mp.Process(target=consumer, args=(port.value, n // c, start)) for _ in range(c)]
    for pr in procs:
        pr.start()
    start.wait()
    t0 = time.perf_counter()
    for pr in procs:
        pr.join()
    print(n / (time.perf_counter() - t0))
    server.terminate()


if __name__ == "__main__":
    main()
