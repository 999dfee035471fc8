//go:build linux

package main

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
)

const dnsperfOut = `DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -d /tmp/q.txt -l 3
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         202939
  Queries completed:    202930 (100.00%)
  Queries lost:         9 (0.00%)

  Response codes:       NOERROR 202930 (100.00%)
  Average packet size:  request 35, response 51
  Run time (s):         3.002967
  Queries per second:   67579.497211

  Average Latency (s):  0.001308 (min 0.000028, max 0.005769)
`

func TestParseDNSPerf(t *testing.T) {
	r, err := parseDNSPerf(dnsperfOut)
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent != 202939 || r.Completed != 202930 || r.QPS != 67579.497211 {
		t.Fatalf("got %+v", r)
	}
	if _, err := parseDNSPerf("Queries sent: 1\n"); err == nil {
		t.Fatal("incomplete output accepted")
	}
}

func pcapFile(order binary.ByteOrder, lens ...int) []byte {
	var b bytes.Buffer
	hdr := make([]byte, 24)
	order.PutUint32(hdr, 0xa1b2c3d4)
	order.PutUint32(hdr[16:], 262144)
	order.PutUint32(hdr[20:], 1)
	b.Write(hdr)
	for _, n := range lens {
		rec := make([]byte, 16)
		order.PutUint32(rec[8:], uint32(n))
		order.PutUint32(rec[12:], uint32(n))
		b.Write(rec)
		b.Write(make([]byte, n))
	}
	return b.Bytes()
}

func TestCountPcap(t *testing.T) {
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		f := pcapFile(order, 77, 93, 60)
		n, err := countPcap(bytes.NewReader(f))
		if err != nil || n != 3 {
			t.Fatalf("%v: got %d, %v", order, n, err)
		}
		// A record cut short at the end is not counted.
		n, err = countPcap(bytes.NewReader(f[:len(f)-10]))
		if err != nil || n != 2 {
			t.Fatalf("%v truncated: got %d, %v", order, n, err)
		}
	}
	if _, err := countPcap(bytes.NewReader(make([]byte, 24))); err == nil {
		t.Fatal("bad magic accepted")
	}
}

func TestParseInfo(t *testing.T) {
	arr := `[
{"file":"/tmp/x.db","hook":"cgroup","messages":30000,"observations":60000,"processes":8,"ringbuf_drops":3,"decode_errors":0}
]`
	ri, err := parseInfo([]byte(arr))
	if err != nil || ri.Messages != 60000 || ri.Drops != 3 || !ri.HaveDrops {
		t.Fatalf("array: %+v, %v", ri, err)
	}
	// An older dnsrec, whose "messages" were observations.
	ri, err = parseInfo([]byte(`{"messages":5}`))
	if err != nil || ri.Messages != 5 || ri.HaveDrops {
		t.Fatalf("object: %+v, %v", ri, err)
	}
	if _, err := parseInfo([]byte(`[{"file":"x"}]`)); err == nil {
		t.Fatal("missing messages accepted")
	}
}

func TestParseWriterBench(t *testing.T) {
	out := "goos: linux\nBenchmarkStoreInsert-2   \t  200000\t     58721 ns/op\t       465.9 bytes/msg\t     17030 msgs/s\t    3351 B/op\nPASS\n"
	ws, err := parseWriterBench(out)
	if err != nil || len(ws) != 1 || ws[0] != (writerResult{"", 17030, 465.9}) {
		t.Fatalf("got %+v, %v", ws, err)
	}
	out = "BenchmarkStoreInsert/loopback-2         \t  275017\t      5551 ns/op\t       114.1 bytes/msg\t    180161 msgs/s\n" +
		"BenchmarkStoreInsert/remote-2           \t\nsome output\n  127485\t      9379 ns/op\t       223.5 bytes/msg\t    106625 msgs/s\n"
	ws, err = parseWriterBench(out)
	if err != nil || len(ws) != 2 || ws[0] != (writerResult{"loopback", 180161, 114.1}) || ws[1] != (writerResult{"remote", 106625, 223.5}) {
		t.Fatalf("sub-benchmarks: got %+v, %v", ws, err)
	}
	if _, err := parseWriterBench("FAIL\n"); err == nil {
		t.Fatal("no result accepted")
	}
}

func TestParseProc(t *testing.T) {
	stat := "5203 (dnsrec (x) y) S 1 5199 2790 0 -1 4194560 10172 0 0 0 252 57 0 0 20 0 8 0 48084"
	n, err := parseStatTicks(stat)
	if err != nil || n != 309 {
		t.Fatalf("ticks: %d, %v", n, err)
	}
	kb, err := parseVmHWM("Name:\tdnsrec\nVmPeak:\t 1 kB\nVmHWM:\t   72860 kB\nVmRSS:\t 2 kB\n")
	if err != nil || kb != 72860 {
		t.Fatalf("VmHWM: %d, %v", kb, err)
	}
	if c := clockTicks(); c <= 0 {
		t.Fatalf("clock ticks %d", c)
	}
}

func TestTcpdumpDropped(t *testing.T) {
	if n := tcpdumpDropped("29370 packets captured\n60000 packets received by filter\n7 packets dropped by kernel\n"); n != 7 {
		t.Fatalf("got %d", n)
	}
	if n := tcpdumpDropped("nothing"); n != -1 {
		t.Fatalf("got %d", n)
	}
}

func TestCheckAnswer(t *testing.T) {
	q := buildQuery(7, "host1.bench.test")
	// A response: the query with QR set, one answer pointing at the question name.
	r := append([]byte{}, q...)
	r[2] |= 0x80
	binary.BigEndian.PutUint16(r[6:], 1)
	r = append(r, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 192, 0, 2, 1)
	if err := checkAnswer(r, 7, net.ParseIP("192.0.2.1")); err != nil {
		t.Fatal(err)
	}
	if err := checkAnswer(r, 7, net.ParseIP("192.0.2.2")); err == nil {
		t.Fatal("wrong address accepted")
	}
	if err := checkAnswer(q, 7, net.ParseIP("192.0.2.1")); err == nil {
		t.Fatal("a query accepted as a response")
	}
}

func TestCommasMedian(t *testing.T) {
	for f, want := range map[float64]string{0: "0", 999.6: "1,000", 67579.49: "67,579", 1234567: "1,234,567", -4321: "-4,321"} {
		if got := commas(f); got != want {
			t.Errorf("commas(%v) = %q, want %q", f, got, want)
		}
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median odd: %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median even: %v", m)
	}
}
