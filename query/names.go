package query

import (
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"

	"github.com/dnsrec/dnsrec/schema"
)

// NamePattern is a DNS name as a user typed it, resolved to the forms the
// evidence stores. Names are stored as the recorder's DNS library prints
// them: lowercase, no trailing dot, internationalised names in their ASCII
// (xn--) form, and bytes outside letters, digits, '-' and '_' escaped
// ("a\'b", "\009"). A user types "bücher.evil.test" or "a'b.evil.test";
// ParseName turns both into the stored forms, and keeps what they typed when
// it already is one.
type NamePattern struct {
	// Input is what the user typed.
	Input string
	// Revs are the candidate stored forms, reversed label by label
	// (schema.ReverseName), without duplicates.
	Revs []string
	// Subdomains: the pattern matches names below the stored forms.
	Subdomains bool
	// Self: the pattern matches the stored forms themselves. False for
	// "*.evil.test", which means the subdomains only.
	Self bool
	// Glob is set for a pattern with wildcards elsewhere than a leading
	// "*.": it is matched against names.name with SQLite's GLOB, and Revs
	// is empty.
	Glob string
}

// ParseName parses a name or pattern:
//
//	evil.test      evil.test and its subdomains (subdomains false: evil.test only)
//	*.evil.test    the subdomains of evil.test, not evil.test itself
//	c2-*.evil.test a glob over whole names ('*', '?' and [...] as in SQLite GLOB)
func ParseName(input string, subdomains bool) (NamePattern, error) {
	p := NamePattern{Input: input, Subdomains: subdomains, Self: true}
	s := strings.TrimSpace(input)
	if rest, ok := strings.CutPrefix(s, "*."); ok && !strings.ContainsAny(rest, "*?[") {
		s, p.Subdomains, p.Self = rest, true, false
	} else if strings.ContainsAny(s, "*?[") {
		g, err := storedForm(s)
		if err != nil {
			g = schema.NormalizeName(s)
		}
		p.Glob, p.Subdomains = g, false
		return p, nil
	}
	forms, err := storedForms(s)
	if err != nil {
		return p, err
	}
	for _, f := range forms {
		rev := schema.ReverseName(f)
		if !contains(p.Revs, rev) {
			p.Revs = append(p.Revs, rev)
		}
	}
	return p, nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// storedForms returns the forms name may be stored in: as typed (if it is
// already in presentation form, escapes included), and as the escaped form
// of the literal bytes typed, after IDNA conversion of non-ASCII labels.
func storedForms(name string) ([]string, error) {
	norm := schema.NormalizeName(name)
	if norm == "" {
		// Every name is a subdomain of the root; that is a timeline, not a question.
		return nil, errors.New("empty name")
	}
	var forms []string
	if _, ok := dns.IsDomainName(norm); ok && isASCII(norm) {
		forms = append(forms, canonical(norm))
	}
	if f, err := storedForm(name); err == nil {
		forms = append(forms, f)
	} else if len(forms) == 0 {
		return nil, fmt.Errorf("%q is not a DNS name: %w", name, err)
	}
	return forms, nil
}

// storedForm converts literal label bytes (no escapes: a backslash is a
// backslash) to the stored presentation form.
func storedForm(name string) (string, error) {
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return "", errors.New("empty name")
	}
	labels := strings.Split(name, ".")
	wire := make([]byte, 0, len(name)+2)
	for _, l := range labels {
		if l == "" {
			return "", errors.New("empty label")
		}
		if !isASCII(l) {
			a, err := idna.ToASCII(l)
			if err != nil {
				return "", fmt.Errorf("label %q: %w", l, err)
			}
			l = a
		}
		if len(l) > 63 {
			return "", fmt.Errorf("label %q is longer than 63 bytes", l)
		}
		wire = append(wire, byte(len(l)))
		wire = append(wire, strings.ToLower(l)...)
	}
	wire = append(wire, 0)
	if len(wire) > 255 {
		return "", errors.New("name is longer than 255 bytes")
	}
	s, _, err := dns.UnpackDomainName(wire, 0)
	if err != nil {
		return "", err
	}
	return schema.NormalizeName(s), nil
}

// canonical re-escapes a presentation-format name the way the recorder's
// library prints it ("\097" becomes "a").
func canonical(name string) string {
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(dns.Fqdn(name), buf, 0, nil, false)
	if err != nil {
		return name
	}
	s, _, err := dns.UnpackDomainName(buf[:n], 0)
	if err != nil {
		return name
	}
	return schema.NormalizeName(s)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// where returns an SQL condition on the names table (columns name and rev,
// with the given alias prefix) and its arguments.
func (p NamePattern) where(alias string) (string, []any) {
	return p.whereCols(alias+"name", alias+"rev")
}

// whereCols is where for any pair of name and reversed-name columns.
func (p NamePattern) whereCols(nameCol, revCol string) (string, []any) {
	if p.Glob != "" {
		return nameCol + " GLOB ?", []any{p.Glob}
	}
	var conds []string
	var args []any
	for _, rev := range p.Revs {
		if p.Self {
			conds = append(conds, revCol+" = ?")
			args = append(args, rev)
		}
		if p.Subdomains {
			// "com.evil"'s subdomains are "com.evil.*", which sort in
			// ["com.evil.", "com.evil/"): '/' follows '.' in ASCII. A
			// plain prefix range would also catch "evil-x.com"
			// ("com.evil-x"), and LIKE could not use the index.
			conds = append(conds, "("+revCol+" >= ? AND "+revCol+" < ?)")
			args = append(args, rev+".", rev+"/")
		}
	}
	return "(" + strings.Join(conds, " OR ") + ")", args
}
