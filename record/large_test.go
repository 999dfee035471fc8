//go:build linux && (amd64 || arm64)

package record_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/record"
)

// txtAnswer is an answer section for name TXT of exactly n bytes on the wire
// (n >= 13), its owner names compressed to a pointer at the question: TXT
// records of one 255-byte string, the last one sized to make up n. The
// strings are numbered, so a record out of place shows.
func txtAnswer(name string, n int) []dns.RR {
	const full = 2 + 10 + 1 + 255 // pointer, type..rdlength, one full string
	var rrs []dns.RR
	add := func(strs ...string) {
		rrs = append(rrs, &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: strs})
	}
	str := func(i, size int) string {
		s := fmt.Sprintf("%04d", i) + strings.Repeat(string(rune('a'+i%26)), 251)
		return s[:size]
	}
	for n >= full+13 {
		add(str(len(rrs), 255))
		n -= full
	}
	// 13 to full+12 bytes left: one record of 12 bytes and rdata of one
	// string, or two when it does not fit in one.
	rdata := n - 12
	if rdata <= 256 {
		add(str(len(rrs), rdata-1))
	} else {
		add(str(len(rrs), 255), str(len(rrs)+1000, rdata-256-1))
	}
	return rrs
}

// TestTXTAnswerSize checks the helper the large-message tests stand on.
func TestTXTAnswerSize(t *testing.T) {
	for _, size := range []int{6000, 30000, 65535, 300, 65535 - 270} {
		q := new(dns.Msg)
		q.SetQuestion("size.large.test.", dns.TypeTXT)
		m := new(dns.Msg)
		m.SetReply(q)
		m.Compress = true
		m.Answer = txtAnswer("size.large.test.", size-m.Len())
		b, err := m.Pack()
		if err != nil || len(b) != size {
			t.Errorf("size %d: packed %d bytes, %v", size, len(b), err)
		}
	}
}

// unboundTXT is a large TXT RRset unbound serves: the records of a
// txtAnswer of about size bytes.
type unboundTXT struct {
	name string
	size int
	rrs  []dns.RR
}

// startUnbound runs unbound (the Debian package) on 127.0.0.1:53 in the test's
// network namespace, serving each TXT RRset from its configuration
// (local-data), with answers up to 65535 bytes over UDP. It returns once
// unbound answers.
func startUnbound(t *testing.T, zone string, sets []unboundTXT) {
	t.Helper()
	bin := lookExe(t, "unbound")
	dir := t.TempDir()
	var conf strings.Builder
	conf.WriteString(unboundServer(dir))
	fmt.Fprintf(&conf, `	verbosity: 1
	max-udp-size: 65535
	rrset-roundrobin: no
	local-zone: %q static
`, zone)
	for _, s := range sets {
		for _, rr := range s.rrs {
			fmt.Fprintf(&conf, "\tlocal-data: '%s'\n", rr.String())
		}
	}
	conf.WriteString("remote-control:\n\tcontrol-enable: no\n")
	path := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(path, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(lookExe(t, "unbound-checkconf"), path).CombinedOutput(); err != nil {
		t.Fatalf("unbound-checkconf: %v\n%s", err, out)
	}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(sets[0].name), dns.TypeTXT)
	startDaemon(t, []string{bin, "-d", "-c", path}, &dns.Client{Net: "tcp", Timeout: time.Second}, q, len(sets[0].rrs))
}

var reMsgSize = regexp.MustCompile(`;; MSG SIZE\s+rcvd: (\d+)`)

// digTXT is one dig of the test: what it asked and what it got.
type digTXT struct {
	set    unboundTXT
	client string // dig/udp, dig/tcp or edns65535/udp
	proto  string
	pid    int
	size   int // the response's length, as dig reports it
}

// TestLargeMessages: unbound serves TXT answers of about 6 KB and
// 30 KB; dig fetches each over UDP (EDNS 32767, the most dig 9.18 asks for)
// and over TCP, and a client of the test's own over UDP with EDNS 65535.
//
// Recorded with the default snaplen, each response is stored whole (no
// orig_len, raw as long as dig says the message was), every TXT record is
// in its answers, and who-resolved lists them all for each dig.
//
// With --snaplen 1024, each response is stored cut with its length on the
// wire; the records inside the bytes kept are still its answers (the same
// ones miekg/dns finds in them), the parse error says where it stopped, and
// who-resolved lists those records with the status "cut at snaplen".
func TestLargeMessages(t *testing.T) {
	requireRoot(t)
	dig := lookExe(t, "dig")
	const zone = "large.test"
	var sets []unboundTXT
	for _, s := range []struct {
		name string
		size int
	}{{"six." + zone, 6000}, {"thirty." + zone, 30000}} {
		// The answer section alone; unbound adds the header, the question
		// and its OPT record.
		sets = append(sets, unboundTXT{s.name, s.size, txtAnswer(s.name+".", s.size)})
	}
	startUnbound(t, zone, sets)

	for _, snaplen := range []uint32{0, 1024} {
		t.Run(fmt.Sprintf("snaplen=%d", snaplen), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "large.db")
			stop := startRecorder(t, path, record.Options{Snaplen: uint(snaplen), OwnerWait: 300 * time.Millisecond})
			self, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			var digs []digTXT
			for _, s := range sets {
				for _, client := range []string{"dig/udp", "dig/tcp", "edns65535/udp"} {
					proto := client[strings.IndexByte(client, '/')+1:]
					var pid, size int
					if client == "edns65535/udp" {
						// dig 9.18 advertises no more than 32767 bytes
						// (+bufsize=32768 and above send its default, 1232),
						// so the largest EDNS size comes from a client of
						// the test's own.
						cmd := exec.Command(self)
						cmd.Env = append(os.Environ(), envChild+"="+s.name, "DNSREC_TEST_SERVER=127.0.0.1:53", "DNSREC_TEST_TXT=1")
						var out string
						pid, out = run(t, cmd)
						var n int
						if _, err := fmt.Sscanf(out, "size=%d answers=%d", &size, &n); err != nil || n != len(s.rrs) {
							t.Fatalf("%s %s: want %d records, whole: %q", client, s.name, len(s.rrs), out)
						}
					} else {
						args := []string{"@127.0.0.1", "-p", "53", s.name, "TXT", "+bufsize=32767", "+tries=1", "+time=5"}
						if proto == "tcp" {
							args = append(args, "+tcp")
						}
						var out string
						pid, out = run(t, exec.Command(dig, args...))
						m := reMsgSize.FindStringSubmatch(out)
						if m == nil || strings.Contains(out, "Truncated") || !strings.Contains(out, fmt.Sprintf("ANSWER: %d,", len(s.rrs))) {
							t.Fatalf("%s %s: want %d records, whole:\n%s", client, s.name, len(s.rrs), out)
						}
						size, _ = strconv.Atoi(m[1])
					}
					if size < s.size {
						t.Fatalf("%s %s: %d bytes, want more than %d", client, s.name, size, s.size)
					}
					digs = append(digs, digTXT{s, client, proto, pid, size})
				}
			}
			stop()

			db := openRO(t, path)
			qdb, err := query.Open(context.Background(), []string{path})
			if err != nil {
				t.Fatal(err)
			}
			defer qdb.Close()
			who, err := qdb.WhoResolved(context.Background(), zone, query.WhoResolvedOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range digs {
				t.Run(d.set.name+"/"+d.client, func(t *testing.T) {
					checkLarge(t, db, d, snaplen, who)
				})
			}
		})
	}
}

// checkLarge checks what the recording holds of the response dig d received.
func checkLarge(t *testing.T, db *sql.DB, d digTXT, snaplen uint32, who []query.WhoResolvedRow) {
	var id int64
	var proto string
	var origLen int64
	var cut bool
	var raw []byte
	var perr sql.NullString
	err := db.QueryRow(`SELECT id, proto, orig_len, truncated, raw, parse_error FROM messages
		WHERE qname = ? AND pid = ? AND direction = 'recv' AND role = 'client'`, d.set.name, d.pid).Scan(&id, &proto, &origLen, &cut, &raw, &perr)
	if err != nil {
		t.Fatalf("the response dig (pid %d) received: %v\nall messages for %s:\n%s", d.pid, err, d.set.name, dumpMessages(t, db, d.set.name))
	}
	if proto != d.proto {
		t.Errorf("proto %s, want %s", proto, d.proto)
	}
	rows, err := db.Query(`SELECT type, data FROM answers WHERE message_id = ? AND section = 'answer' ORDER BY id`, id)
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for rows.Next() {
		var typ int
		var data string
		if err := rows.Scan(&typ, &data); err != nil {
			t.Fatal(err)
		}
		if typ != int(dns.TypeTXT) {
			t.Errorf("answer of type %d", typ)
		}
		stored = append(stored, data)
	}
	rows.Close()
	inRaw := txtIn(t, raw)

	if snaplen == 0 {
		if cut || origLen != int64(d.size) || len(raw) != d.size || perr.Valid {
			t.Errorf("stored %d of %d bytes (truncated %v), parse error %v; want the whole %d-byte message", len(raw), origLen, cut, perr, d.size)
		}
		var all []string
		for _, rr := range d.set.rrs {
			all = append(all, rdata(rr))
		}
		if !sameSet(stored, all) {
			t.Errorf("%d answers stored, want all %d TXT records", len(stored), len(all))
		}
	} else {
		if !cut || origLen != int64(d.size) || len(raw) > int(snaplen) || len(raw) < int(snaplen)-2 {
			t.Errorf("stored %d bytes, orig_len %d, truncated %v; want at most %d of %d bytes, marked cut", len(raw), origLen, cut, snaplen, d.size)
		}
		if !perr.Valid || !strings.Contains(perr.String, "message ends inside the record") {
			t.Errorf("parse error %v, want where the cut fell", perr)
		}
		if len(inRaw) < 3 {
			t.Errorf("only %d whole records in the %d bytes kept: the test is wrong", len(inRaw), len(raw))
		}
	}
	// Either way the answers are the records inside the bytes kept.
	if !slices.Equal(stored, inRaw) {
		t.Errorf("%d answers stored; the %d bytes kept hold %d whole TXT records", len(stored), len(raw), len(inRaw))
	}

	wantStatus := "NOERROR"
	if snaplen != 0 {
		wantStatus = "cut at snaplen"
	}
	for _, r := range who {
		if r.QName != d.set.name || !r.PID.Valid || r.PID.V != int64(d.pid) {
			continue
		}
		var want []string
		for _, s := range stored {
			want = append(want, "TXT "+s)
		}
		if !sameSet(r.Answers, want) {
			t.Errorf("who-resolved lists %d answers for dig (pid %d), want the %d stored", len(r.Answers), d.pid, len(want))
		}
		if r.Status != wantStatus {
			t.Errorf("who-resolved status %q, want %q", r.Status, wantStatus)
		}
		return
	}
	t.Errorf("who-resolved has no row for dig (pid %d) and %s", d.pid, d.set.name)
}

// txtIn is the rdata of the answer records wholly inside msg, which may be
// cut short, as miekg/dns reads them one by one.
func txtIn(t *testing.T, msg []byte) []string {
	t.Helper()
	_, off, err := dns.UnpackDomainName(msg, 12)
	if err != nil {
		t.Fatalf("question: %v", err)
	}
	off += 4
	var out []string
	for range int(msg[6])<<8 | int(msg[7]) {
		rr, next, err := dns.UnpackRR(msg, off)
		if err != nil {
			break
		}
		out = append(out, rdata(rr))
		off = next
	}
	return out
}

// rdata is an RR's data as dnsrec stores it: presentation format.
func rdata(rr dns.RR) string {
	return strings.TrimSpace(strings.TrimPrefix(rr.String(), rr.Header().String()))
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
