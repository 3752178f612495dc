#!/usr/bin/env python3
"""A userspace delay/loss line on a TUN device (this kernel has no netem).

    delayline.py IFNAME DELAY_MS LOSS [SEED]

Every packet the kernel routes into IFNAME is held DELAY_MS milliseconds,
dropped with probability LOSS, and written back into IFNAME, from where the
kernel routes it on (policy routing by incoming interface keeps it from
looping). Order is kept: a fixed delay never reorders.
"""
import fcntl
import heapq
import os
import random
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def main() -> None:
    name, delay_ms, loss = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    print("ready", flush=True)
    delay = delay_ms / 1000.0
    queue: list = []
    seq = 0
    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else None
        readable, _, _ = select.select([fd], [], [], timeout)
        if readable:
            packet = os.read(fd, 65535)
            if rng.random() >= loss:
                heapq.heappush(queue, (time.monotonic() + delay, seq, packet))
                seq += 1
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            os.write(fd, heapq.heappop(queue)[2])


if __name__ == "__main__":
    main()
