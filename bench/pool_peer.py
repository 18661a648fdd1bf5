#!/usr/bin/env python3
"""The Python peer of bench/pool_bench: concurrent.futures.ProcessPoolExecutor
over the same trivial task, timed the same way (pool started and warmed up
before the clock starts).

    pool_peer.py map N WORKERS     # executor.map(square, range(N), chunksize=256)
    pool_peer.py submit N WORKERS  # N x executor.submit(square, i), then every result

Prints one number: tasks per second.
"""
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def square(x):
    return x * x


def main():
    what, n, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with ProcessPoolExecutor(max_workers=workers) as ex:
        list(ex.map(square, range(4 * workers), chunksize=1))  # start every worker
        t0 = time.perf_counter()
        if what == "map":
            out = list(ex.map(square, range(n), chunksize=256))
        else:
            fs = [ex.submit(square, i) for i in range(n)]
            out = [f.result() for f in fs]
        dt = time.perf_counter() - t0
    assert out[-1] == (n - 1) * (n - 1)
    print(f"{n / dt:.0f}")


if __name__ == "__main__":
    main()
