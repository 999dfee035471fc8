package main

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/xrash/smetrics"
)

// A usage error is one line naming what was wrong and, for a typo, what was
// probably meant. urfave/cli's default prints the whole help (60 lines for
// a listing) and ends with the flag package's "flag provided but not
// defined", which scrolls the one useful line out of sight.

// oneLineUsage sets the one-line usage errors on app and every command
// under it, and makes an unknown subcommand an error with a suggestion
// (urfave/cli treats it as a help topic: "No help topic for ...", exit 3).
func oneLineUsage(app *cli.App) {
	app.OnUsageError = usageError
	app.Action = unknownCommand
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			c.OnUsageError = usageError
			if len(c.Subcommands) > 0 && c.Action == nil {
				c.Action = unknownCommand
			}
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
}

// unknownCommand is the action of a command that only holds subcommands:
// with no argument it prints its help, else it names the unknown one.
func unknownCommand(c *cli.Context) error {
	if c.NArg() == 0 {
		if c.Command == nil || c.Command.Name == "" || len(c.Lineage()) <= 2 && c.Command.Name == c.App.Name {
			return cli.ShowAppHelp(c)
		}
		return cli.ShowSubcommandHelp(c)
	}
	var names []string
	var cmds []*cli.Command
	if c.Command != nil && len(c.Command.Subcommands) > 0 {
		cmds = c.Command.Subcommands
	} else {
		cmds = c.App.Commands
	}
	for _, s := range cmds {
		if !s.Hidden {
			for _, n := range s.Names() {
				if len(n) > 1 {
					names = append(names, n)
				}
			}
		}
	}
	arg := c.Args().First()
	msg := prefixed(commandPath(c), fmt.Sprintf("unknown command %q", arg))
	if s := suggest(arg, names); s != "" {
		msg += fmt.Sprintf("; did you mean %s?", s)
	} else {
		sort.Strings(names)
		msg += "; the commands are " + strings.Join(names, ", ")
	}
	return errors.New(msg)
}

var (
	undefinedFlag = regexp.MustCompile(`^flag provided but not defined: -+(.*)$`)
	invalidValue  = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for flag -+([^:]*): (.*)$`)
	needsArgument = regexp.MustCompile(`^flag needs an argument: -+(.*)$`)
)

// usageError turns the flag package's error into one line.
func usageError(c *cli.Context, err error, _ bool) error {
	where := commandPath(c)
	var flags []cli.Flag
	if c.Command != nil && c.Command.Name != "" {
		flags = c.Command.Flags
	} else {
		flags = c.App.Flags
	}
	s := err.Error()
	if m := undefinedFlag.FindStringSubmatch(s); m != nil {
		var names []string
		for _, f := range flags {
			for _, n := range f.Names() {
				if len(n) > 1 {
					names = append(names, n)
				}
			}
		}
		msg := prefixed(where, "unknown flag "+dashed(m[1]))
		if sug := suggest(m[1], names); sug != "" {
			msg += fmt.Sprintf("; did you mean %s?", dashed(sug))
		} else {
			msg += fmt.Sprintf(" (%s --help lists the flags)", strings.TrimSpace(c.App.Name+" "+where))
		}
		return errors.New(msg)
	}
	if m := invalidValue.FindStringSubmatch(s); m != nil {
		return errors.New(prefixed(where, badValue(flags, m[2], m[1], m[3])))
	}
	if m := needsArgument.FindStringSubmatch(s); m != nil {
		return errors.New(prefixed(where, dashed(m[1])+" needs a value"))
	}
	return errors.New(prefixed(where, fmt.Sprintf("%v (see %s --help)", err, strings.TrimSpace(c.App.Name+" "+where))))
}

// badValue says what a flag takes, for the flags whose value is a number
// that users give a name (--pid curl).
func badValue(flags []cli.Flag, flag, value, reason string) string {
	has := func(name string) bool {
		for _, f := range flags {
			for _, n := range f.Names() {
				if n == name {
					return true
				}
			}
		}
		return false
	}
	switch flag {
	case "pid":
		msg := fmt.Sprintf("--pid %q: takes a process id, a number", value)
		var alt []string
		if has("comm") {
			alt = append(alt, fmt.Sprintf("--comm %s (the command name)", value))
		}
		if has("exe") {
			alt = append(alt, fmt.Sprintf("--exe %s (the executable's path or base name)", value))
		}
		if len(alt) > 0 {
			msg += "; to pick processes by name use " + strings.Join(alt, " or ")
		}
		return msg
	case "uid":
		return fmt.Sprintf("--uid %q: takes a numeric user id (id -u NAME prints it)", value)
	}
	// The flag's own Set errors (--db's glob, a size) already say what is
	// wrong; strconv's are replaced by what the flag takes.
	if strings.HasPrefix(reason, "strconv.") || strings.HasPrefix(reason, "parse error") {
		return fmt.Sprintf("%s %q: not a number", dashed(flag), value)
	}
	if strings.HasPrefix(reason, "time: ") {
		return fmt.Sprintf("%s %q: not a duration (e.g. 30s, 5m, 2h)", dashed(flag), value)
	}
	return fmt.Sprintf("%s: %s", dashed(flag), reason)
}

// suggest returns the name closest to typed, or "" when none is close
// enough to be what was meant.
func suggest(typed string, names []string) string {
	best, score := "", 0.0
	for _, n := range names {
		if s := smetrics.JaroWinkler(typed, n, 0.7, 4); s > score {
			best, score = n, s
		}
	}
	if score < 0.8 {
		return ""
	}
	return best
}

func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

func prefixed(where, msg string) string {
	if where == "" {
		return msg
	}
	return where + ": " + msg
}

// commandPath is "query timeline" for the command c runs, "" for the app.
func commandPath(c *cli.Context) string {
	var parts []string
	for _, cc := range c.Lineage() {
		if cc.Command != nil && cc.Command.Name != "" {
			parts = append(parts, cc.Command.Name)
		}
	}
	// Lineage runs from c up to the app.
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	if len(parts) > 0 && parts[0] == c.App.Name {
		parts = parts[1:]
	}
	return strings.Join(parts, " ")
}
