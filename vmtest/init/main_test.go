//go:build linux

package main

import (
	"reflect"
	"testing"
)

func TestCmdlineArgs(t *testing.T) {
	// vmrun encodes ["-test.run","Test A","x=y"] as base64url(JSON) without padding.
	p := parseCmdline("console=ttyS0 quiet vmtest.id=abc vmtest.args=WyItdGVzdC5ydW4iLCJUZXN0IEEiLCJ4PXkiXQ\n")
	if p["vmtest.id"] != "abc" {
		t.Fatalf("id %q", p["vmtest.id"])
	}
	got, err := decodeList(p["vmtest.args"])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"-test.run", "Test A", "x=y"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q want %q", got, want)
	}
	if l, err := decodeList(""); err != nil || l != nil {
		t.Fatalf("empty: %q %v", l, err)
	}
}
