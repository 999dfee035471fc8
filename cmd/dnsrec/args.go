package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// completionFlag is how urfave/cli asks for shell completions; it only
// recognizes it as the very last argument.
const completionFlag = "--generate-bash-completion"

// interspersed reorders args so that flags given after positional arguments
// still count: `dnsrec query who-resolved evil.com --db x.db` becomes
// `dnsrec query who-resolved --db x.db evil.com`.
//
// urfave/cli v2 parses each command's flags with the standard flag package,
// which stops at the first positional argument; an analyst who appends
// `--format csv` to a command line from their history would otherwise get
// "evil.com --format csv" treated as three names. For every level (the app,
// a command, a subcommand) the flags and their values move in front of the
// positionals, keeping their relative order. Which flags consume the next
// argument comes from the command definitions; --flag=value is one argument;
// everything after "--" stays positional; and the command path (query,
// who-resolved) is not reordered, since a flag belongs to the command it
// follows. An argument that is neither a flag nor a known subcommand where a
// subcommand is expected ends the reordering: what follows is passed as is.
func interspersed(app *cli.App, args []string) []string {
	if len(args) <= 1 {
		return args
	}
	out := make([]string, 0, len(args))
	out = append(out, args[0])
	rest := args[1:]
	completion := app.EnableBashCompletion && rest[len(rest)-1] == completionFlag
	if completion {
		rest = rest[:len(rest)-1]
	}
	out = append(out, reorder(app.Flags, app.Commands, false, rest)...)
	if completion {
		out = append(out, completionFlag)
	}
	return out
}

// reorder handles one level: flags are this level's flags, and subs its
// subcommands. A level with subcommands takes no positionals of its own: its
// first positional names the next level.
func reorder(flags []cli.Flag, subs []*cli.Command, skipParsing bool, args []string) []string {
	if skipParsing {
		return args
	}
	valued := valueFlags(flags)
	var flagArgs, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			out := append(flagArgs, "--")
			out = append(out, positional...)
			return append(out, args[i+1:]...)
		case len(a) > 1 && a[0] == '-':
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && valued[name] {
				if i+1 == len(args) {
					// A value flag with no value left: keep it last, so that
					// it cannot swallow a positional and the parser reports
					// the missing value.
					return append(append(flagArgs, positional...), a)
				}
				flagArgs = append(flagArgs, a, args[i+1])
				i++
				continue
			}
			flagArgs = append(flagArgs, a)
		case len(subs) > 0:
			if c := findCommand(subs, a); c != nil {
				out := append(flagArgs, a)
				return append(out, reorder(c.Flags, c.Subcommands, c.SkipFlagParsing, args[i+1:])...)
			}
			// Not ours to understand (help, a typo): leave it for urfave/cli
			// to handle or report.
			return append(flagArgs, args[i:]...)
		default:
			positional = append(positional, a)
		}
	}
	return append(flagArgs, positional...)
}

// valueFlags returns the names and aliases of the flags that take a value.
func valueFlags(flags []cli.Flag) map[string]bool {
	m := make(map[string]bool)
	for _, f := range flags {
		takes := true
		if tv, ok := f.(interface{ TakesValue() bool }); ok {
			takes = tv.TakesValue()
		} else if _, ok := f.(*cli.BoolFlag); ok {
			takes = false
		}
		for _, n := range f.Names() {
			m[n] = takes
		}
	}
	return m
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}
