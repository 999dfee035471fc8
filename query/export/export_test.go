package export_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/export"
	"github.com/dnsrec/dnsrec/query/querytest"
)

// exportEvidence writes querytest.Incident with real DNS bytes into
// dir/case.db, plus the cases the exports render specially:
//
//   - curl(901) asks lo.evil.com of dnsmasq(300) over loopback, and both
//     ends are seen: each message is one msgs row naming both processes;
//   - python3(950) asks tcp.evil.com (TXT) over TCP and IPv6, the query and
//     the response on one flow, the answer's strings holding a comma;
//   - curl's response for big.evil.com was cut at snaplen after 40 bytes.
//
// It has 25 messages: 15 transactions (10 queries with their response, 4
// unanswered queries, dnsmasq's response to a LAN client alone).
func exportEvidence(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "case.db")
	b := querytest.New(t, p)
	b.RealRaw = true
	querytest.Incident(b, "web1")
	var s, curl, py, dnsmasq int64
	for pid, id := range map[int64]*int64{901: &curl, 950: &py, 300: &dnsmasq} {
		if err := b.DB.QueryRow(`SELECT session_id, id FROM processes WHERE pid = ?`, pid).Scan(&s, id); err != nil {
			t.Fatal(err)
		}
	}
	at := func(ms int) time.Time { return querytest.At(time.Duration(ms) * time.Millisecond) }
	curlMsg := func(ms int, dir string, resp bool, qname string, qtype int, answers ...querytest.Answer) int64 {
		return b.Message(querytest.Message{Session: s, Process: curl, PID: 901, Comm: "curl", UID: querytest.UID(1000), TS: at(ms),
			Direction: dir, Response: resp, QName: qname, QType: qtype, Answers: answers})
	}

	// Loopback: the query seen sent by curl and received by dnsmasq, the
	// response sent by dnsmasq and received by curl.
	q := curlMsg(9000, "send", false, "lo.evil.com", 1)
	r := curlMsg(9000, "recv", true, "lo.evil.com", 1, querytest.Answer{Data: "203.0.113.10"})
	b.Exec(`UPDATE msgs SET ts_ns = ts_ns + 300000 WHERE id = ?`, r)
	b.Exec(`UPDATE msgs SET ts_ns = ts_ns + 123 WHERE id = ?`, q) // nanoseconds, which some formats keep
	owner := b.Exec(`INSERT INTO owners (process_id, pid, tid, uid, comm) VALUES (?, 300, 300, 65534, 'dnsmasq')`, dnsmasq)
	b.Exec(`UPDATE msgs SET obs = obs | 2 | 8, r_owner = ?, r_dt_ns = 40000 WHERE id = ?`, owner, q)
	b.Exec(`UPDATE msgs SET obs = obs | 1 | 4, s_owner = ?, r_dt_ns = 35000 WHERE id = ?`, owner, r)
	b.Exec(`UPDATE flows SET a_addr = CASE a_port WHEN 53 THEN '127.0.0.53' ELSE '127.0.0.1' END,
		b_addr = CASE b_port WHEN 53 THEN '127.0.0.53' ELSE '127.0.0.1' END
		WHERE id IN (SELECT flow_id FROM msgs WHERE id IN (?, ?))`, q, r)
	// Both ends on lo, and curl in a container (schema v4).
	b.Exec(`INSERT INTO interfaces (id, netns, ifindex, name) VALUES (1, 4026531840, 1, 'lo')`)
	b.Exec(`UPDATE msgs SET s_iface = 1, r_iface = 1 WHERE id IN (?, ?)`, q, r)
	b.Exec(`UPDATE processes SET container = 'c0ffee0123456789', cgroup = '/system.slice/docker-c0ffee0123456789.scope' WHERE id = ?`, curl)

	// TCP over IPv6, one flow for both messages.
	q = b.Message(querytest.Message{Session: s, Process: py, PID: 950, Comm: "python3", UID: querytest.UID(1000), TS: at(9500),
		Direction: "send", QName: "tcp.evil.com", QType: 16})
	r = b.Message(querytest.Message{Session: s, Process: py, PID: 950, Comm: "python3", UID: querytest.UID(1000), TS: at(9530),
		Direction: "recv", Response: true, QName: "tcp.evil.com", QType: 16,
		Answers: []querytest.Answer{{Type: 16, Data: `"v=spf1 -all" "second, string"`}}})
	b.Exec(`UPDATE flows SET proto = 'tcp', a_addr = '2001:db8::5', b_addr = '2001:db8::1' WHERE id = (SELECT flow_id FROM msgs WHERE id = ?)`, q)
	b.Exec(`UPDATE msgs SET flow_id = (SELECT flow_id FROM msgs WHERE id = ?), obs = obs | 16 WHERE id = ?`, q, r)

	// dnsmasq answers a client on the LAN: its two messages on one flow
	// from 192.168.1.50 to the resolver (the builder gives every message a
	// flow from the host's client address).
	b.Exec(`UPDATE flows SET a_addr = '192.168.1.50', a_port = 51000, b_addr = '10.0.0.1', b_port = 53
		WHERE id = (SELECT flow_id FROM msgs m JOIN owners o ON o.id = m.r_owner WHERE o.pid = 300)`)
	b.Exec(`UPDATE msgs SET obs = obs | 16, flow_id = (SELECT flow_id FROM msgs m JOIN owners o ON o.id = m.r_owner WHERE o.pid = 300)
		WHERE s_owner IN (SELECT id FROM owners WHERE pid = 300)`)

	// The builder links a response to its client's last query for the
	// name: curl's A and AAAA responses both to the AAAA query. Link each
	// to its own query, as the recorder does by DNS id and question.
	for _, l := range [][2]time.Duration{{1000, 1010}, {1001, 1012}} {
		b.Exec(`UPDATE msgs SET query_id = (SELECT id FROM msgs WHERE ts_ns = ?), latency_ns = ? WHERE ts_ns = ?`,
			at(int(l[0])).UnixNano(), (l[1]-l[0])*time.Millisecond, at(int(l[1])).UnixNano())
	}

	// Cut at snaplen.
	curlMsg(9800, "send", false, "big.evil.com", 1)
	r = curlMsg(9810, "recv", true, "big.evil.com", 1,
		querytest.Answer{Data: "198.51.100.1"}, querytest.Answer{Data: "198.51.100.2"}, querytest.Answer{Data: "198.51.100.3"})
	b.Exec(`UPDATE msgs SET orig_len = length(raw), raw = substr(raw, 1, 40) WHERE id = ?`, r)
	b.Close()
	return p
}

// export runs one export into memory.
func exportBytes(t *testing.T, db *query.DB, format string, f query.Filter) ([]byte, export.Stats) {
	t.Helper()
	var buf bytes.Buffer
	st, err := export.Write(context.Background(), db, &buf, format, f)
	if err != nil {
		t.Fatalf("export %s: %v", format, err)
	}
	return buf.Bytes(), st
}

// exportFile runs one export into dir/name.
func exportFile(t *testing.T, db *query.DB, format, path string) export.Stats {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := export.Write(context.Background(), db, f, format, query.Filter{})
	if err != nil {
		t.Fatalf("export %s: %v", format, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return st
}

// sqliteTransactions counts the transactions in the evidence with SQL alone:
// every message, less the responses linked to a query (they share its row).
func sqliteTransactions(t *testing.T, path string) int64 {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRow(`SELECT (SELECT count(*) FROM msgs) - (SELECT count(*) FROM msgs r WHERE r.query_id IN (SELECT id FROM msgs))`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestExportStats(t *testing.T) {
	dir := t.TempDir()
	p := exportEvidence(t, dir)
	db := openDB(t, p)
	want := export.Stats{Messages: 25, Rows: 15, Unanswered: 4, Alone: 1}
	if n := sqliteTransactions(t, p); n != want.Rows {
		t.Fatalf("SQLite counts %d transactions, the test expects %d", n, want.Rows)
	}
	for _, format := range []string{"zeek", "ocsf", "parquet"} {
		if _, st := exportBytes(t, db, format, query.Filter{}); st != want {
			t.Errorf("%s: %+v, want %+v", format, st, want)
		}
	}
	if _, st := exportBytes(t, db, "pcapng", query.Filter{}); st != (export.Stats{Messages: 25, Rows: 25}) {
		t.Errorf("pcapng: %+v, want 25 messages and 25 packets", st)
	}
	// --limit counts what is written.
	if _, st := exportBytes(t, db, "zeek", query.Filter{Limit: 3}); st.Rows != 3 {
		t.Errorf("zeek --limit 3: %+v", st)
	}
	if _, st := exportBytes(t, db, "pcapng", query.Filter{Limit: 3}); st.Rows != 3 {
		t.Errorf("pcapng --limit 3: %+v", st)
	}
	if _, err := export.Write(context.Background(), db, io.Discard, "pcap", query.Filter{}); err == nil {
		t.Error("unknown format accepted")
	}
}

// TestTransactionsPairing: a query waits for its response only a window of
// stream time; what it pairs with is the recorder's link, not the name.
func TestTransactionsPairing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pair.db")
	b := querytest.New(t, p)
	s := b.Session("h", querytest.Base)
	curl := b.Process(querytest.Process{Session: s, PID: 901, Comm: "curl"})
	msg := func(ts time.Duration, dir string, resp bool, name string) {
		b.Message(querytest.Message{Session: s, Process: curl, PID: 901, Comm: "curl", TS: querytest.At(ts), Direction: dir, Response: resp, QName: name})
	}
	msg(0, "send", false, "lost.test")
	msg(time.Second, "send", false, "a.test")
	msg(40*time.Second, "send", false, "b.test")
	msg(40*time.Second+5*time.Millisecond, "recv", true, "b.test")
	msg(50*time.Second, "recv", true, "a.test") // linked by the test builder, but 49 s late
	b.Close()
	db := openDB(t, p)
	var got []string
	_, err := db.Transactions(context.Background(), query.MessageOptions{}, func(tx *query.Transaction) error {
		var parts []string
		for _, m := range []*query.Message{tx.Query, tx.Response} {
			if m == nil {
				parts = append(parts, "-")
			} else {
				parts = append(parts, fmt.Sprintf("%s@%s", m.QName, m.Time.Sub(querytest.Base)))
			}
		}
		got = append(got, strings.Join(parts, " ")+" "+tx.Status())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"lost.test@0s - unanswered", // expired when the stream reached 40 s
		"a.test@1s - unanswered",    // likewise
		"b.test@40s b.test@40.005s NOERROR",
		"- a.test@50s NOERROR", // its query was already written
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestExportGolden: the zeek and ocsf exports, and the parquet export read
// back, of exportEvidence. Paths are the temporary directory's, shown as
// $DIR.
func TestExportGolden(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, exportEvidence(t, dir))
	for _, tc := range []struct{ format, golden string }{
		{"zeek", "export-case.zeek.log"},
		{"ocsf", "export-case.ocsf.jsonl"},
		{"parquet", "export-case.parquet.jsonl"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			got, _ := exportBytes(t, db, tc.format, query.Filter{})
			if tc.format == "parquet" {
				got = parquetJSONL(t, got)
			}
			got = bytes.ReplaceAll(got, []byte(dir), []byte("$DIR"))
			querytest.Golden(t, filepath.Join("testdata", tc.golden), got)
		})
	}
}

// parquetJSONL reads a parquet export back with parquet-go, by the file's
// own schema, one JSON object per row with the columns in the file's
// order: null for a null, timestamps as times.
func parquetJSONL(t *testing.T, data []byte) []byte {
	t.Helper()
	r := parquet.NewGenericReader[any](bytes.NewReader(data))
	defer r.Close()
	rows := make([]any, r.NumRows())
	n, err := r.Read(rows)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	fields := r.Schema().Fields()
	var out, val bytes.Buffer
	enc := json.NewEncoder(&val)
	enc.SetEscapeHTML(false)
	encode := func(v any) []byte {
		val.Reset()
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		return bytes.TrimSuffix(val.Bytes(), []byte("\n"))
	}
	for _, row := range rows[:n] {
		m := row.(map[string]any)
		out.WriteByte('{')
		for i, f := range fields {
			v := m[f.Name()]
			if lt := f.Type().LogicalType(); lt != nil && v != nil {
				if _, ok := lt.Value.(*format.TimestampType); ok {
					v = time.Unix(0, v.(int64)).UTC()
				}
			}
			if i > 0 {
				out.WriteByte(',')
			}
			out.Write(encode(f.Name()))
			out.WriteByte(':')
			out.Write(encode(v))
		}
		out.WriteString("}\n")
	}
	return out.Bytes()
}

// TestExportZeekParses reads the zeek export as a Zeek log reader would:
// the header, then every row against #fields and #types.
func TestExportZeekParses(t *testing.T) {
	db := openDB(t, exportEvidence(t, t.TempDir()))
	got, st := exportBytes(t, db, "zeek", query.Filter{})
	rows := checkZeekLog(t, got)
	if int64(len(rows)) != st.Rows {
		t.Errorf("%d rows, the export says %d", len(rows), st.Rows)
	}
	// The loopback exchange names both processes.
	found := false
	for _, r := range rows {
		if r["query"] == "lo.evil.com" {
			found = true
			if r["orig_pid"] != "901" || r["resp_pid"] != "300" || r["orig_ancestry"] != "sh(812),sshd(640),systemd(1)" || r["answers"] != "203.0.113.10" {
				t.Errorf("loopback row: %v", r)
			}
		}
		if r["query"] == "tcp.evil.com" && (r["proto"] != "tcp" || r["id.orig_h"] != "2001:db8::5" || r["answers"] != `TXT 11 v=spf1 -all TXT 14 second\x2c string`) {
			t.Errorf("tcp row: %v", r)
		}
	}
	if !found {
		t.Error("no row for lo.evil.com")
	}
	// An empty export is a valid log too.
	empty, _ := exportBytes(t, db, "zeek", query.Filter{PIDs: []int64{1}})
	if rows := checkZeekLog(t, empty); len(rows) != 0 {
		t.Errorf("empty export has %d rows", len(rows))
	}
}

// checkZeekLog parses a Zeek ASCII log and returns its rows as maps of
// field to raw value. Every row must have as many fields as #fields, and
// every value must parse as its #types type.
func checkZeekLog(t *testing.T, log []byte) []map[string]string {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(nil, 1<<20)
	meta := map[string]string{}
	var fields, types []string
	var rows []map[string]string
	var order []string
	closed := false
	line := 0
	for sc.Scan() {
		line++
		l := sc.Text()
		if closed {
			t.Fatalf("line %d after #close: %q", line, l)
		}
		if strings.HasPrefix(l, "#") {
			if l == `#separator \x09` {
				order = append(order, "separator")
				continue
			}
			k, v, ok := strings.Cut(l[1:], "\t")
			if !ok {
				t.Fatalf("line %d: header without a tab: %q", line, l)
			}
			order = append(order, k)
			meta[k] = v
			switch k {
			case "fields":
				fields = strings.Split(v, "\t")
			case "types":
				types = strings.Split(v, "\t")
			case "close":
				closed = true
			}
			continue
		}
		if len(fields) == 0 || len(fields) != len(types) {
			t.Fatalf("line %d: a row before #fields and #types of equal length (%d, %d)", line, len(fields), len(types))
		}
		vals := strings.Split(l, "\t")
		if len(vals) != len(fields) {
			t.Fatalf("line %d: %d fields, #fields has %d: %q", line, len(vals), len(fields), l)
		}
		row := map[string]string{}
		for i, v := range vals {
			if err := zeekValue(types[i], v); err != nil {
				t.Errorf("line %d: %s (%s) = %q: %v", line, fields[i], types[i], v, err)
			}
			row[fields[i]] = v
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	wantOrder := []string{"separator", "set_separator", "empty_field", "unset_field", "path", "open", "fields", "types", "close"}
	if !slices.Equal(order, wantOrder) {
		t.Errorf("header lines %v, want %v", order, wantOrder)
	}
	if meta["set_separator"] != "," || meta["empty_field"] != "(empty)" || meta["unset_field"] != "-" || meta["path"] != "dns" {
		t.Errorf("header %v", meta)
	}
	for _, k := range []string{"open", "close"} {
		if _, err := time.Parse("2006-01-02-15-04-05", meta[k]); err != nil {
			t.Errorf("#%s %q: %v", k, meta[k], err)
		}
	}
	// Zeek's own fields come first, in Zeek's order.
	zeek := []string{"ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "trans_id", "rtt", "query",
		"qclass", "qclass_name", "qtype", "qtype_name", "rcode", "rcode_name", "AA", "TC", "RD", "RA", "Z", "answers", "TTLs",
		"rejected", "opcode", "opcode_name"}
	if len(fields) < len(zeek) || !slices.Equal(fields[:len(zeek)], zeek) {
		t.Errorf("#fields %v do not start with Zeek's %v", fields, zeek)
	}
	return rows
}

var (
	zeekTimeRE = regexp.MustCompile(`^-?[0-9]+\.[0-9]{6}$`)
	zeekEscRE  = regexp.MustCompile(`\\x[0-9a-f]{2}`)
)

// zeekValue checks one value against its Zeek type.
func zeekValue(typ, v string) error {
	if v == "-" {
		return nil // unset
	}
	if elem, ok := strings.CutPrefix(typ, "vector["); ok {
		elem = strings.TrimSuffix(elem, "]")
		if v == "(empty)" {
			return nil
		}
		for _, e := range strings.Split(v, ",") {
			if err := zeekValue(elem, e); err != nil {
				return fmt.Errorf("element %q: %w", e, err)
			}
		}
		return nil
	}
	switch typ {
	case "time", "interval":
		if !zeekTimeRE.MatchString(v) {
			return errors.New("not seconds with six decimals")
		}
	case "count":
		if _, err := strconv.ParseUint(v, 10, 64); err != nil {
			return err
		}
	case "port":
		if _, err := strconv.ParseUint(v, 10, 16); err != nil {
			return err
		}
	case "addr":
		if _, err := netip.ParseAddr(v); err != nil {
			return err
		}
	case "bool":
		if v != "T" && v != "F" {
			return errors.New("not T or F")
		}
	case "enum", "string":
		if v == "" {
			return errors.New("empty: should be (empty)")
		}
		rest := zeekEscRE.ReplaceAllString(v, "")
		for _, c := range []byte(rest) {
			if c < 0x20 || c == 0x7f || c == '\\' {
				return fmt.Errorf("unescaped byte %#x", c)
			}
		}
	default:
		return fmt.Errorf("unknown type %s", typ)
	}
	return nil
}

// needTool finds an external program a test needs. CI (DNSREC_CI=1, or
// running as root as .ci/run does) must have it; elsewhere the test is
// skipped with what to install.
func needTool(t *testing.T, ok bool, what, install string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("DNSREC_CI") == "1" || os.Geteuid() == 0 {
		t.Fatalf("%s is missing (CI must have it): %s", what, install)
	}
	t.Skipf("%s is missing: %s", what, install)
}

// TestExportPcapngTshark reads the pcapng export with tshark: every message
// is a packet that decodes as DNS, with valid checksums, and its comments
// name its processes.
func TestExportPcapngTshark(t *testing.T) {
	_, err := exec.LookPath("tshark")
	needTool(t, err == nil, "tshark", "apt-get install tshark")
	dir := t.TempDir()
	db := openDB(t, exportEvidence(t, dir))
	out := filepath.Join(dir, "case.pcapng")
	st := exportFile(t, db, "pcapng", out)

	fields := []string{"frame.cap_len", "frame.len", "ip.src", "ipv6.src", "tcp.srcport", "udp.srcport", "dns.qry.name",
		"dns.flags.response", "udp.checksum.status", "tcp.checksum.status", "ip.checksum.status", "COMMENT"}
	var rows [][]string
	for _, comment := range []string{"frame.comment", "pkt_comment"} {
		args := []string{"-r", out, "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=|",
			"-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE"}
		for _, f := range fields {
			if f == "COMMENT" {
				f = comment
			}
			args = append(args, "-e", f)
		}
		cmd := exec.Command("tshark", args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		got, err := cmd.Output()
		if err != nil {
			if strings.Contains(stderr.String(), "aren't valid") {
				continue // an older or newer name for the comment field
			}
			t.Fatalf("tshark: %v\n%s", err, stderr.String())
		}
		for _, l := range strings.Split(strings.TrimSuffix(string(got), "\n"), "\n") {
			rows = append(rows, strings.Split(l, "\t"))
		}
		break
	}
	if int64(len(rows)) != st.Rows || st.Rows != 25 {
		t.Fatalf("tshark reads %d packets, the export wrote %d, the evidence has 25 messages", len(rows), st.Rows)
	}
	col := func(r []string, name string) string { return r[slices.Index(fields, name)] }
	var tcp, cut, loopback int
	for i, r := range rows {
		comment := col(r, "COMMENT")
		if col(r, "dns.qry.name") == "" {
			t.Errorf("packet %d: no DNS question decoded: %q", i+1, r)
		}
		if !strings.Contains(comment, "dnsrec ") || !strings.Contains(comment, "pid=") {
			t.Errorf("packet %d: comment %q names no process", i+1, comment)
		}
		capLen, _ := strconv.Atoi(col(r, "frame.cap_len"))
		wireLen, _ := strconv.Atoi(col(r, "frame.len"))
		if capLen < wireLen {
			cut++
			if col(r, "dns.qry.name") != "big.evil.com" || !strings.Contains(comment, "cut at snaplen") {
				t.Errorf("packet %d cut: %q", i+1, r)
			}
			continue
		}
		// Checksums: 1 is good in tshark's status fields.
		for _, f := range []string{"udp.checksum.status", "tcp.checksum.status", "ip.checksum.status"} {
			if v := col(r, f); v != "" && v != "1" {
				t.Errorf("packet %d: %s = %s", i+1, f, v)
			}
		}
		if col(r, "tcp.srcport") != "" {
			tcp++
			if col(r, "dns.qry.name") != "tcp.evil.com" {
				t.Errorf("packet %d: TCP but %q", i+1, r)
			}
			if col(r, "dns.flags.response") == "0" && col(r, "ipv6.src") != "2001:db8::5" {
				t.Errorf("packet %d: TCP query from %q", i+1, col(r, "ipv6.src"))
			}
		}
		if col(r, "dns.qry.name") == "lo.evil.com" {
			loopback++
			client, server := "client: pid=901", "server: pid=300"
			if !strings.Contains(comment, client) || !strings.Contains(comment, server) || !strings.Contains(comment, `ancestry="sh(812) > sshd(640) > systemd(1)"`) {
				t.Errorf("packet %d: loopback comment %q does not name both ends", i+1, comment)
			}
			if !strings.Contains(comment, "container=c0ffee0123456789") || strings.Count(comment, "iface=lo") != 2 {
				t.Errorf("packet %d: loopback comment %q lacks curl's container or both ends' iface=lo", i+1, comment)
			}
		}
	}
	if tcp != 2 || cut != 1 || loopback != 2 {
		t.Errorf("%d TCP packets decoded (want 2), %d cut (want 1), %d loopback (want 2)", tcp, cut, loopback)
	}
}

// TestExportParquetDuckDB reads the parquet export with DuckDB: as many rows
// as SQLite counts transactions, the timestamp typed as one, and the same
// values as parquet-go reads.
func TestExportParquetDuckDB(t *testing.T) {
	_, nodeErr := exec.LookPath("node")
	modules, err := filepath.Abs(filepath.Join("..", "..", ".cache", "duckdb", "node_modules"))
	if err != nil {
		t.Fatal(err)
	}
	_, modErr := os.Stat(filepath.Join(modules, "@duckdb", "node-api"))
	needTool(t, nodeErr == nil && modErr == nil, "node with @duckdb/node-api",
		"npm install --prefix .cache/duckdb @duckdb/node-api@"+duckdbVersion+" (as .ci/run does)")
	dir := t.TempDir()
	p := exportEvidence(t, dir)
	db := openDB(t, p)
	out := filepath.Join(dir, "case.parquet")
	exportFile(t, db, "parquet", out)

	cmd := exec.Command("node", filepath.Join("testdata", "duckdb", "read.cjs"), out)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("duckdb: %v\n%s", err, stderr.String())
	}
	var res struct {
		Count  int64             `json:"count"`
		TSType string            `json:"ts_type"`
		Rows   []json.RawMessage `json:"rows"`
	}
	if err := json.Unmarshal(got, &res); err != nil {
		t.Fatalf("%v: %s", err, got)
	}
	if want := sqliteTransactions(t, p); res.Count != want {
		t.Errorf("DuckDB counts %d rows, SQLite %d transactions", res.Count, want)
	}
	if !strings.HasPrefix(res.TSType, "TIMESTAMP") {
		t.Errorf("ts is %s in DuckDB, want a timestamp", res.TSType)
	}
	// The same values as parquet-go reads, by uid.
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// The columns compared, as parquetJSONL and read.cjs give them: ts_ns
	// a number from the first, a string from DuckDB (JSON numbers lose
	// nanoseconds).
	type duckFields struct {
		UID        string          `json:"uid"`
		QName      *string         `json:"qname"`
		ClientPID  *int64          `json:"client_pid"`
		ClientComm *string         `json:"client_comm"`
		ServerComm *string         `json:"server_comm"`
		Status     string          `json:"status"`
		Answers    []string        `json:"answers"`
		TSNs       json.RawMessage `json:"ts_ns"`
		TSUs       string          `json:"ts_us"`
	}
	row := func(line []byte) (duckFields, int64, string) {
		var r duckFields
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatal(err)
		}
		ts, err := strconv.ParseInt(strings.Trim(string(r.TSNs), `"`), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return r, ts, duckRow(r.UID, deref(r.QName), r.ClientPID, deref(r.ClientComm), deref(r.ServerComm), r.Status, r.Answers, ts)
	}
	want := map[string]string{}
	for _, l := range bytes.Split(bytes.TrimSpace(parquetJSONL(t, data)), []byte("\n")) {
		r, _, text := row(l)
		want[r.UID] = text
	}
	for _, raw := range res.Rows {
		r, ts, got := row(raw)
		if us, err := strconv.ParseInt(r.TSUs, 10, 64); err != nil || us != ts/1000 {
			t.Errorf("%s: DuckDB reads ts as %s µs, ts_ns is %d ns", r.UID, r.TSUs, ts)
		}
		if got != want[r.UID] {
			t.Errorf("DuckDB reads\n%s\nparquet-go\n%s", got, want[r.UID])
		}
		delete(want, r.UID)
	}
	if len(want) > 0 {
		t.Errorf("DuckDB lacks %d rows: %v", len(want), want)
	}
}

// duckdbVersion is the @duckdb/node-api that .ci/run installs.
const duckdbVersion = "1.5.6-r.1"

func duckRow(uid, qname string, pid *int64, comm, server, status string, answers []string, ts int64) string {
	p := "-"
	if pid != nil {
		p = strconv.FormatInt(*pid, 10)
	}
	return fmt.Sprintf("%s %s pid=%s comm=%s server=%s %s %q %d", uid, qname, p, comm, server, status, answers, ts)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TestExportEvidenceUnchanged: no export changes a byte of the evidence or
// leaves a file beside it. (Opening a WAL-mode file read-only lets SQLite
// create an empty -wal and its -shm, as every query does; see
// readonly_test.go.)
func TestExportEvidenceUnchanged(t *testing.T) {
	dir := t.TempDir()
	p := exportEvidence(t, dir)
	before := querytest.Sum(t, p)
	entries := func() []string {
		es, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range es {
			switch e.Name() {
			case "case.db-shm":
			case "case.db-wal":
				if fi, err := e.Info(); err != nil || fi.Size() != 0 {
					t.Errorf("a -wal with content appeared beside the evidence: %v %v", fi, err)
				}
			default:
				names = append(names, e.Name())
			}
		}
		return names
	}
	names := entries()
	db := openDB(t, p)
	for _, format := range export.Formats {
		exportBytes(t, db, format, query.Filter{})
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if after := querytest.Sum(t, p); after != before {
		t.Errorf("the evidence's SHA-256 changed: %x, was %x", after, before)
	}
	if got := entries(); !slices.Equal(got, names) {
		t.Errorf("files beside the evidence: %v, were %v", got, names)
	}
}

func openDB(t *testing.T, paths ...string) *query.DB {
	t.Helper()
	db, err := query.Open(context.Background(), paths)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
