#!/usr/bin/env python3
"""Input -> photon for a VNC server, measured the way lifebuoy's probe
measures it: a client sends a key (`x`) and times until an update that
touches a region of the screen has been received whole. The client keeps
one incremental update request outstanding, as a viewer does, and asks
for ZRLE (length-prefixed, so no decoding is needed to find the end of a
rectangle). Prints one line like the viewer's --photon:

    input_to_photon_ms p50=.. p99=.. max=.. keys=N

With --tight Q it asks for Tight instead, with JPEG at quality Q (0-9,
what TigerVNC's viewer picks for itself on a slow link) or lossless
(Q = -1), and reads Tight rectangles whole without decoding them. It also
prints first_frame_ms: the whole screen, asked for after the handshake.

Usage: vnc-photon.py [--tight Q] HOST PORT KEYS X Y W H
(used by lab/bench-session and lab/bench-link)
"""
import random
import select
import socket
import struct
import sys
import time


def read(sock, n):
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError("the server closed the connection")
        out += chunk
    return bytes(out)


def compact_length(sock):
    """Tight's 1-3 byte length."""
    value, shift = 0, 0
    for i in range(3):
        b = read(sock, 1)[0]
        value |= (b & 0x7F if i < 2 else b) << shift
        shift += 7
        if i < 2 and not b & 0x80:
            break
    return value


def skip_tight(sock, w, h):
    """Reads one Tight rectangle (32-bit true colour: 3-byte TPIXELs)."""
    control = read(sock, 1)[0]
    kind = control >> 4
    if kind == 8:  # fill
        read(sock, 3)
        return
    if kind == 9:  # JPEG
        read(sock, compact_length(sock))
        return
    if kind > 9:
        raise SystemExit(f"bad Tight control byte {control:#x}")
    filter_id = read(sock, 1)[0] if control & 0x40 else 0
    if filter_id == 1:  # palette
        colours = read(sock, 1)[0] + 1
        read(sock, colours * 3)
        size = ((w + 7) // 8) * h if colours == 2 else w * h
    elif filter_id in (0, 2):
        size = w * h * 3
    else:
        raise SystemExit(f"bad Tight filter {filter_id}")
    read(sock, size if size < 12 else compact_length(sock))


def main():
    args = sys.argv[1:]
    tight = None
    if args[0] == "--tight":
        tight, args = int(args[1]), args[2:]
    host, port, keys = args[0], int(args[1]), int(args[2])
    rx, ry, rw, rh = (int(v) for v in args[3:7])
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    read(sock, 12)
    sock.sendall(b"RFB 003.008\n")
    types = read(sock, read(sock, 1)[0])
    if 1 not in types:
        raise SystemExit(f"the server wants authentication ({list(types)}): start it with -SecurityTypes None")
    sock.sendall(b"\x01")
    if struct.unpack(">I", read(sock, 4))[0] != 0:
        raise SystemExit("security handshake failed")
    sock.sendall(b"\x01")  # shared
    width, height = struct.unpack(">HH", read(sock, 4))
    pixel_format = read(sock, 16)
    bytes_per_pixel = pixel_format[0] // 8
    read(sock, struct.unpack(">I", read(sock, 4))[0])  # name
    if tight is None:
        sock.sendall(struct.pack(">BxHii", 2, 2, 16, 0))  # SetEncodings: ZRLE, Raw
    else:
        # Tight, Raw, compression level 2 (TigerVNC's default), JPEG quality.
        encodings = [7, 0, -256 + 2] + ([-32 + tight] if tight >= 0 else [])
        sock.sendall(struct.pack(">BxH", 2, len(encodings)) + b"".join(struct.pack(">i", e) for e in encodings))

    def request():
        sock.sendall(struct.pack(">BBHHHH", 3, 1, 0, 0, width, height))

    def update():
        """Reads one server message; the rectangles of an update, else []."""
        kind = read(sock, 1)[0]
        if kind == 0:
            (count,) = struct.unpack(">xH", read(sock, 3))
            rects = []
            for _ in range(count):
                x, y, w, h, enc = struct.unpack(">HHHHi", read(sock, 12))
                if enc == 16:
                    read(sock, struct.unpack(">I", read(sock, 4))[0])
                elif enc == 7:
                    skip_tight(sock, w, h)
                elif enc == 0:
                    read(sock, w * h * bytes_per_pixel)
                else:
                    raise SystemExit(f"unexpected encoding {enc}")
                rects.append((x, y, w, h))
            return rects
        if kind == 2:  # bell
            return []
        if kind == 3:  # cut text
            read(sock, 3)
            read(sock, struct.unpack(">I", read(sock, 4))[0])
            return []
        raise SystemExit(f"unexpected server message {kind}")

    def touches(rect):
        x, y, w, h = rect
        return x < rx + rw and rx < x + w and y < ry + rh and ry < y + h

    # The first full picture, then one request always outstanding.
    sock.settimeout(60)
    started = time.monotonic()
    request()
    update()
    print(f"first_frame_ms={(time.monotonic() - started) * 1e3:.1f}", flush=True)
    request()
    samples = []
    for _ in range(keys):
        # A person's pace, out of step with any frame rate: 60-77 ms;
        # updates meanwhile (a busy screen) are read whole and re-requested.
        pause_until = time.monotonic() + 0.060 + random.random() * 0.017
        while (left := pause_until - time.monotonic()) > 0:
            if select.select([sock], [], [], left)[0]:
                update()
                request()
        started = time.monotonic()
        sock.sendall(struct.pack(">BBxxI", 4, 1, 0x78) + struct.pack(">BBxxI", 4, 0, 0x78))
        while True:
            rects = update()
            request()
            if any(touches(r) for r in rects):
                break
        samples.append((time.monotonic() - started) * 1e3)
    samples.sort()
    pick = lambda p: samples[round((len(samples) - 1) * p)]
    print(f"input_to_photon_ms p50={pick(0.5):.2f} p99={pick(0.99):.2f} max={samples[-1]:.2f} keys={len(samples)}")


if __name__ == "__main__":
    main()
