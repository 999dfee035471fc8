package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/query/querytest"
)

// TestRespondersGuide runs every command docs/responders.md shows against
// an evidence file: a guide whose commands were mistyped or whose flags
// went away would send a responder down the wrong path mid-incident. The
// README must link to it.
func TestRespondersGuide(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "responders.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "(docs/responders.md)") {
		t.Error("README does not link docs/responders.md")
	}
	dir := t.TempDir()
	build(t, dir, "case.db", querytest.Incident, "web01")
	var cmds [][]string
	in := false
	for _, l := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(l, "```") {
			in = !in
			continue
		}
		if in && strings.HasPrefix(l, "dnsrec query ") {
			cmds = append(cmds, shellWords(t, l)[1:])
		}
	}
	for _, want := range []string{"verify", "who-resolved", "resolved-to", "process", "stats", "timeline", "export", "info"} {
		found := false
		for _, c := range cmds {
			found = found || c[1] == want
		}
		if !found {
			t.Errorf("the guide shows no %s", want)
		}
	}
	for _, args := range cmds {
		r := dnsrec(t, dir, nil, args...)
		// verify exits 1 on a file built without the recorder's chain; it
		// must still run.
		if r.code != 0 && !(args[1] == "verify" && r.code == 1 && strings.Contains(r.stdout, "FAILED")) {
			t.Errorf("%q: exit %d\n%s", args, r.code, r.stderr)
		}
	}
}

// shellWords splits a command line as sh would for the guide's commands:
// words, single and double quotes, and a # comment.
func shellWords(t *testing.T, line string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case r == '#' && !inWord:
			return words
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatalf("unclosed quote in %q", line)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}
