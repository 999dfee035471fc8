#!/usr/bin/env python3
"""DNS over TLS by hand with Python's ssl (OpenSSL): one A query, print the
addresses. usage: dot.py HOST PORT CAFILE NAME [membio]

With membio, OpenSSL works on memory BIOs (ssl.SSLObject) and this script
moves the ciphertext between them and the socket itself: OpenSSL then makes
no system call of its own."""
import socket
import ssl
import struct
import sys


def query(name, qid=0x2222):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", 1, 1)


def read_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b


def answers(msg):
    qd, an = struct.unpack(">HH", msg[4:8])
    i = 12
    for _ in range(qd):
        while msg[i]:
            i += msg[i] + 1
        i += 5
    out = []
    for _ in range(an):
        if msg[i] & 0xC0 == 0xC0:
            i += 2
        else:
            while msg[i]:
                i += msg[i] + 1
            i += 1
        typ, _, _, rdlen = struct.unpack(">HHIH", msg[i:i + 10])
        i += 10
        if typ == 1:
            out.append(socket.inet_ntoa(msg[i:i + rdlen]))
        i += rdlen
    return out


class MemBIO:
    """A socket-like object over ssl.SSLObject and two memory BIOs."""

    def __init__(self, raw, ctx):
        self.raw = raw
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="dns.test")
        self.retry(self.obj.do_handshake)

    def flush(self):
        data = self.out.read()
        if data:
            self.raw.sendall(data)

    def retry(self, op, *args):
        while True:
            try:
                r = op(*args)
                self.flush()
                return r
            except ssl.SSLWantReadError:
                self.flush()
                data = self.raw.recv(65536)
                if not data:
                    raise EOFError
                self.inc.write(data)

    def sendall(self, b):
        self.retry(self.obj.write, b)

    def recv(self, n):
        return self.retry(self.obj.read, n)


def main():
    host, port, ca, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    ctx = ssl.create_default_context(cafile=ca)
    if sys.argv[5:] == ["membio"]:
        with socket.create_connection((host, port)) as raw:
            s = MemBIO(raw, ctx)
            q = query(name, 0x3333)
            s.sendall(struct.pack(">H", len(q)) + q)
            n = struct.unpack(">H", read_exact(s, 2))[0]
            print(" ".join(answers(read_exact(s, n))))
        return
    with socket.create_connection((host, port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="dns.test") as s:
            q = query(name)
            s.sendall(struct.pack(">H", len(q)) + q)
            n = struct.unpack(">H", read_exact(s, 2))[0]
            print(" ".join(answers(read_exact(s, n))))


main()
