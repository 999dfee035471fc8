package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/anchor"
)

// TestKeygen: the key written is one --sign-key reads, the key printed its
// public half, and an existing file is not replaced.
func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "sign.key")
	r := dnsrec(t, dir, nil, "keygen", "-o", key, "--name", "case-42")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	b, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	k, err := anchor.FixedKeys(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if vkey := strings.TrimSpace(r.stdout); vkey != k.First() || !strings.HasPrefix(vkey, "case-42+") {
		t.Errorf("printed %q, the key's public half is %q", vkey, k.First())
	}
	if fi, _ := os.Stat(key); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	if r := dnsrec(t, dir, nil, "keygen", "-o", key); r.code == 0 || !strings.Contains(r.stderr, "exists") {
		t.Errorf("an existing key file was replaced: exit %d %s", r.code, r.stderr)
	}
}
