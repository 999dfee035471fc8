package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestInterspersed(t *testing.T) {
	app := &cli.App{
		Name:                 "dnsrec",
		EnableBashCompletion: true,
		Flags:                []cli.Flag{&cli.StringFlag{Name: "log", Aliases: []string{"l"}}},
		Commands: []*cli.Command{
			{Name: "record", Flags: []cli.Flag{
				&cli.StringFlag{Name: "output", Aliases: []string{"o"}},
				&cli.BoolFlag{Name: "force"},
				&cli.UintSliceFlag{Name: "port"},
			}},
			queryCommand(),
			{Name: "raw", SkipFlagParsing: true},
		},
	}
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"flags after the name", "dnsrec query who-resolved evil.com --db x.db --format csv",
			"dnsrec query who-resolved --db x.db --format csv evil.com"},
		{"already in order", "dnsrec query who-resolved --db x.db --format csv evil.com",
			"dnsrec query who-resolved --db x.db --format csv evil.com"},
		{"bool flag takes no value", "dnsrec query who-resolved evil.com --exact --db x.db",
			"dnsrec query who-resolved --exact --db x.db evil.com"},
		{"bool flag before the name", "dnsrec query who-resolved --exact evil.com",
			"dnsrec query who-resolved --exact evil.com"},
		{"repeated --db around the name", "dnsrec query who-resolved --db a.db evil.com --db b.db",
			"dnsrec query who-resolved --db a.db --db b.db evil.com"},
		{"--flag=value is one argument", "dnsrec query who-resolved evil.com --format=json --exact=false",
			"dnsrec query who-resolved --format=json --exact=false evil.com"},
		{"single dash", "dnsrec query who-resolved evil.com -db x.db",
			"dnsrec query who-resolved -db x.db evil.com"},
		{"value that looks like a flag", "dnsrec query who-resolved evil.com --db --weird.db",
			"dnsrec query who-resolved --db --weird.db evil.com"},
		{"value that looks like a command", "dnsrec query who-resolved evil.com --db query",
			"dnsrec query who-resolved --db query evil.com"},
		{"everything after -- is positional", "dnsrec query who-resolved --db x.db -- --exact evil.com",
			"dnsrec query who-resolved --db x.db -- --exact evil.com"},
		{"positionals before -- move after the flags", "dnsrec query who-resolved evil.com --exact -- -x",
			"dnsrec query who-resolved --exact -- evil.com -x"},
		{"a lone dash is positional", "dnsrec query who-resolved - --exact",
			"dnsrec query who-resolved --exact -"},
		{"app flags stay at the app level", "dnsrec --log debug query who-resolved evil.com --exact",
			"dnsrec --log debug query who-resolved --exact evil.com"},
		{"app flag alias with value", "dnsrec -l debug record --force -o out.db",
			"dnsrec -l debug record --force -o out.db"},
		{"slice flag with value", "dnsrec record extra --port 5353 --force",
			"dnsrec record --port 5353 --force extra"},
		{"unknown flag is taken as boolean", "dnsrec query who-resolved evil.com --nope",
			"dnsrec query who-resolved --nope evil.com"},
		{"help after the name", "dnsrec query who-resolved evil.com --help",
			"dnsrec query who-resolved --help evil.com"},
		{"unknown subcommand is left alone", "dnsrec query bogus --db x.db evil.com",
			"dnsrec query bogus --db x.db evil.com"},
		{"help command is left alone", "dnsrec help query who-resolved",
			"dnsrec help query who-resolved"},
		{"skip flag parsing", "dnsrec raw a --b c", "dnsrec raw a --b c"},
		{"completion flag stays last", "dnsrec query who-resolved evil.com --exact --generate-bash-completion",
			"dnsrec query who-resolved --exact evil.com --generate-bash-completion"},
		{"no arguments", "dnsrec", "dnsrec"},
		{"trailing value flag without value", "dnsrec query who-resolved evil.com --db",
			"dnsrec query who-resolved evil.com --db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := interspersed(app, strings.Fields(tt.in))
			if want := strings.Fields(tt.want); !slices.Equal(got, want) {
				t.Errorf("interspersed(%q)\n got %q\nwant %q", tt.in, got, want)
			}
		})
	}
}

// TestInterspersedKeepsArguments checks that reordering never adds, drops
// or alters an argument, for arguments with spaces and '=' too.
func TestInterspersedKeepsArguments(t *testing.T) {
	app := &cli.App{Commands: []*cli.Command{queryCommand()}}
	in := []string{"dnsrec", "query", "who-resolved", "a b.com", "--db", "my case.db", "--format=c s v", "x=y", "--", "--db"}
	got := interspersed(app, in)
	a, b := slices.Clone(in), slices.Clone(got)
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		t.Errorf("interspersed(%q) = %q: not a permutation", in, got)
	}
}
