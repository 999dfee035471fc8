//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// perfResult is what we take from one dnsperf run.
type perfResult struct {
	Sent, Completed int64
	QPS             float64
}

var (
	rePerfSent      = regexp.MustCompile(`(?m)^\s*Queries sent:\s+(\d+)`)
	rePerfCompleted = regexp.MustCompile(`(?m)^\s*Queries completed:\s+(\d+)`)
	rePerfQPS       = regexp.MustCompile(`(?m)^\s*Queries per second:\s+([0-9.]+)`)
)

// parseDNSPerf reads the statistics block dnsperf prints at the end of a run.
func parseDNSPerf(out string) (perfResult, error) {
	var r perfResult
	m1 := rePerfSent.FindStringSubmatch(out)
	m2 := rePerfCompleted.FindStringSubmatch(out)
	m3 := rePerfQPS.FindStringSubmatch(out)
	if m1 == nil || m2 == nil || m3 == nil {
		return r, errors.New(`dnsperf output lacks "Queries sent", "Queries completed" or "Queries per second"`)
	}
	var err error
	if r.Sent, err = strconv.ParseInt(m1[1], 10, 64); err != nil {
		return r, err
	}
	if r.Completed, err = strconv.ParseInt(m2[1], 10, 64); err != nil {
		return r, err
	}
	if r.QPS, err = strconv.ParseFloat(m3[1], 64); err != nil {
		return r, err
	}
	return r, nil
}

// pcapStats counts the records of a classic (libpcap, not pcapng) capture
// file. A record cut short at the end of the file is not counted.
func pcapStats(path string) (packets, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	packets, err = countPcap(f)
	return packets, fi.Size(), err
}

func countPcap(r io.Reader) (int64, error) {
	var hdr [24]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, fmt.Errorf("pcap global header: %w", err)
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(hdr[:4]) {
	case 0xa1b2c3d4, 0xa1b23c4d: // micro- and nanosecond timestamps
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return 0, fmt.Errorf("not a classic pcap file (magic %x)", hdr[:4])
	}
	br := bufio.NewReaderSize(r, 1<<16)
	var n int64
	var rec [16]byte
	for {
		if _, err := io.ReadFull(br, rec[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return n, nil
			}
			return n, err
		}
		incl := int64(bo.Uint32(rec[8:12]))
		if incl > 1<<20 {
			return n, fmt.Errorf("pcap record %d: implausible length %d", n+1, incl)
		}
		skipped, err := io.CopyN(io.Discard, br, incl)
		if skipped < incl {
			return n, nil // cut short at the end of the file
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

// recInfo is what we take from `dnsrec query info --format json`.
type recInfo struct {
	Messages  int64 // observations: each end a message was seen at, what the recorder's work scales with
	Drops     int64
	HaveDrops bool
}

// parseInfo accepts the JSON `query info` prints: an array with one object
// per database (the current shape) or a single object. Counts of several
// objects are summed.
func parseInfo(out []byte) (recInfo, error) {
	var ri recInfo
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return ri, fmt.Errorf("query info: not JSON: %w", err)
	}
	var objs []map[string]any
	switch t := v.(type) {
	case []any:
		for _, e := range t {
			if o, ok := e.(map[string]any); ok {
				objs = append(objs, o)
			}
		}
	case map[string]any:
		objs = append(objs, t)
	}
	if len(objs) == 0 {
		return ri, errors.New("query info: no object in the JSON output")
	}
	for _, o := range objs {
		// "observations" since info counted messages and observations
		// apart; "messages" meant observations before.
		m, ok := jsonInt(o["observations"])
		if !ok {
			if m, ok = jsonInt(o["messages"]); !ok {
				return ri, errors.New(`query info: no numeric "observations" field`)
			}
		}
		ri.Messages += m
		if d, ok := jsonInt(o["ringbuf_drops"]); ok {
			ri.Drops += d
			ri.HaveDrops = true
		}
	}
	return ri, nil
}

func jsonInt(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	if i, err := n.Int64(); err == nil {
		return i, true
	}
	f, err := n.Float64()
	return int64(f), err == nil
}

// writerResult is one result line of the writer microbenchmark: its custom
// metrics. A benchmark with sub-benchmarks gives one per sub-benchmark.
type writerResult struct {
	Name        string // sub-benchmark, "" for the benchmark itself
	MsgsPerSec  float64
	BytesPerMsg float64 // 0 if not reported
}

var (
	reBenchName   = regexp.MustCompile(`^Benchmark[^/\s]*(?:/(\S+?))?(?:-\d+)?\s`)
	reMsgsPerSec  = regexp.MustCompile(`([0-9.e+]+)\s+msgs/s\b`)
	reBytesPerMsg = regexp.MustCompile(`([0-9.e+]+)\s+bytes/msg\b`)
)

// parseWriterBench finds the msgs/s metric on the benchmark's result lines.
func parseWriterBench(out string) ([]writerResult, error) {
	var ws []writerResult
	name := ""
	for _, line := range strings.Split(out, "\n") {
		// A result line may follow its name line when the benchmark prints.
		if m := reBenchName.FindStringSubmatch(line + " "); m != nil {
			name = m[1]
		}
		m := reMsgsPerSec.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return nil, err
		}
		w := writerResult{Name: name, MsgsPerSec: v}
		if b := reBytesPerMsg.FindStringSubmatch(line); b != nil {
			w.BytesPerMsg, _ = strconv.ParseFloat(b[1], 64)
		}
		ws = append(ws, w)
	}
	if len(ws) == 0 {
		return nil, errors.New(`no benchmark result line with a "msgs/s" metric`)
	}
	return ws, nil
}

// procTicks is utime+stime of a process (all its threads), in clock ticks.
func procTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatTicks(string(b))
}

func parseStatTicks(stat string) (int64, error) {
	// comm, field 2, may hold spaces and parentheses: split after the last ')'.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("/proc/PID/stat: no ')'")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("/proc/PID/stat: too few fields")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("/proc/PID/stat: bad utime/stime")
	}
	return ut + st, nil
}

// vmHWMKiB is the process's peak resident set size.
func vmHWMKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmHWM(string(b))
}

func parseVmHWM(status string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, errors.New("/proc/PID/status: no VmHWM")
}

// clockTicks is the kernel's USER_HZ, from the auxiliary vector (what
// sysconf(_SC_CLK_TCK) returns); 100 if it cannot be read.
func clockTicks() int64 {
	const atClkTck = 17
	b, err := os.ReadFile("/proc/self/auxv")
	if err == nil {
		for i := 0; i+16 <= len(b); i += 16 {
			k := binary.NativeEndian.Uint64(b[i:])
			v := binary.NativeEndian.Uint64(b[i+8:])
			if k == atClkTck && v > 0 {
				return int64(v)
			}
			if k == 0 {
				break
			}
		}
	}
	return 100
}

var rePcapDropped = regexp.MustCompile(`(\d+) packets? dropped by kernel`)

// tcpdumpDropped reads the "N packets dropped by kernel" line tcpdump
// prints when it stops; -1 if absent.
func tcpdumpDropped(stderr string) int64 {
	m := rePcapDropped.FindStringSubmatch(stderr)
	if m == nil {
		return -1
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}
