#!/usr/bin/env python3
"""DNS over HTTPS by hand over HTTP/1.1 with Python's http.client and ssl
(OpenSSL): one RFC 8484 GET ?dns= for an A record, print the HTTP status and
the addresses. usage: doh_get.py HOST PORT CAFILE NAME"""
import base64
import http.client
import ssl
import struct
import sys


def query(name):
    q = struct.pack(">HHHHHH", 0, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", 1, 1)


def addresses(msg):
    ancount = struct.unpack(">H", msg[6:8])[0]
    i = 12
    while msg[i]:  # the question's name
        i += 1 + msg[i]
    i += 5
    out = []
    for _ in range(ancount):
        if msg[i] & 0xC0 == 0xC0:
            i += 2
        else:
            while msg[i]:
                i += 1 + msg[i]
            i += 1
        typ, _, _, rdlen = struct.unpack(">HHIH", msg[i:i + 10])
        i += 10
        if typ == 1:
            out.append(".".join(str(b) for b in msg[i:i + 4]))
        i += rdlen
    return out


def main():
    host, port, cafile, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    ctx = ssl.create_default_context(cafile=cafile)
    c = http.client.HTTPSConnection(host, port, context=ctx)
    dns = base64.urlsafe_b64encode(query(name)).rstrip(b"=").decode()
    c.request("GET", "/dns-query?dns=" + dns, headers={"Accept": "application/dns-message"})
    r = c.getresponse()
    print(r.status, " ".join(addresses(r.read())))


main()
