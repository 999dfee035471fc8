package schema

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// Known answers for the chain's hashing: every file ever written is
// verified with these functions, so a refactor that changes a single byte
// they hash makes every existing file fail verification. These values
// were computed once and must never change; a new hashing needs a new
// version (see "dnsrec chain v1" in Hash).

func TestChainLinkHashKnownAnswer(t *testing.T) {
	stopped := int64(1_700_000_123_000_000_000)
	l := &ChainLink{
		Seq:  7,
		TsNs: 1_700_000_000_000_000_000,
		Prev: "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b",
		Tables: map[string]ChainRange{
			// Out of ChainTables order on purpose: Hash puts them in order.
			"msgs":     {First: 11, Last: 20, Digest: "aa"},
			"sessions": {First: 1, Last: 1, Digest: "bb"},
			"anchors":  {First: 3, Last: 4, Digest: "cc"},
		},
		Exits:     [][2]int64{{5, 1_700_000_050_000_000_000}, {2, 9}},
		StoppedNs: &stopped,
	}
	// The text Hash feeds SHA-256, spelled out.
	text := "dnsrec chain v1\n" +
		"6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b\n7\n1700000000000000000\n" +
		"sessions 1 1 bb\n" +
		"msgs 11 20 aa\n" +
		"anchors 3 4 cc\n" +
		"exit 5 1700000050000000000\n" +
		"exit 2 9\n" +
		"stopped 1700000123000000000\n"
	sum := sha256.Sum256([]byte(text))
	if got, want := l.Hash(), hex.EncodeToString(sum[:]); got != want {
		t.Errorf("Hash() = %s; the spelled-out text hashes to %s", got, want)
	}
	if got, want := l.Hash(), "58c15bfeac751011c766d5377a91913f995ce8e03d9f4550c7e5b4d457de40a0"; got != want {
		t.Errorf("Hash() = %s, want %s", got, want)
	}
	// The first link: no predecessor, no exits, no stop.
	first := &ChainLink{Seq: 1, TsNs: 42, Tables: map[string]ChainRange{"sessions": {First: 1, Last: 1, Digest: "00"}}}
	if got, want := first.Hash(), "550699872e6130e7df3ac9b23ca89a7e1f3ca83dee229c97288de56317160e87"; got != want {
		t.Errorf("first link Hash() = %s, want %s", got, want)
	}
}

func TestRowHasherKnownAnswer(t *testing.T) {
	h := NewRowHasher()
	if err := h.Row([]any{int64(1), nil, "ab", []byte{0xff}, float64(1.5), int64(-1)}); err != nil {
		t.Fatal(err)
	}
	if err := h.Row([]any{int64(2)}); err != nil {
		t.Fatal(err)
	}
	// The encoding, spelled out: a row is its value count (uint32), then
	// each value tagged and, for text and blobs, length-prefixed; all
	// big-endian.
	enc := "00000006" +
		"69" + "0000000000000001" + // 'i' 1
		"6e" + // 'n'
		"74" + "00000002" + "6162" + // 't' "ab"
		"62" + "00000001" + "ff" + // 'b' ff
		"66" + "3ff8000000000000" + // 'f' 1.5
		"69" + "ffffffffffffffff" + // 'i' -1
		"00000001" + "69" + "0000000000000002"
	raw, _ := hex.DecodeString(enc)
	sum := sha256.Sum256(raw)
	if got, want := h.Sum(), hex.EncodeToString(sum[:]); got != want {
		t.Errorf("Sum() = %s; the spelled-out encoding hashes to %s", got, want)
	}
	if got, want := h.Sum(), "06956d721643a7c2f32efbe45e910f221603a9278fe31263ac162ef74228e4e2"; got != want {
		t.Errorf("Sum() = %s, want %s", got, want)
	}
	if err := NewRowHasher().Row([]any{int32(1)}); err == nil {
		t.Error("an int32 was hashed: the recorder must bind int64")
	}
}

// TestChainTablesFor: which columns each version hashes. A version's list
// must never change once files of it exist.
func TestChainTablesFor(t *testing.T) {
	cols := func(v int, table string) string {
		for _, c := range ChainTablesFor(v) {
			if c.Name == table {
				return c.Columns
			}
		}
		return ""
	}
	if got := cols(11, "sessions"); got != "id, hostname, machine_id, boot_id, kernel, version, cmdline, hook, ports, snaplen, started_ns, anchor_wall_ns, anchor_boot_ns, part, filters" {
		t.Errorf("v11 sessions: %s", got)
	}
	if got := cols(12, "sessions"); got != "id, hostname, machine_id, boot_id, kernel, version, cmdline, hook, ports, snaplen, started_ns, anchor_wall_ns, anchor_boot_ns, part, filters, recording_id, sign_key" {
		t.Errorf("v12 sessions: %s", got)
	}
	if cols(11, "anchors") != "" || cols(12, "anchors") == "" {
		t.Error("anchors is hashed from v12 on")
	}
	if got := cols(7, "loss"); got != "id, session_id, ts_ns, ringbuf_drops, decode_errors, unattributed, filtered, hook_misses" {
		t.Errorf("v7 loss: %s", got)
	}
}
