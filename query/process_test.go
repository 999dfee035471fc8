package query_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/query"
)

func TestProcesses(t *testing.T) {
	db := open(t, incident(t, t.TempDir(), "web01.db", "web01"))
	tests := []struct {
		arg  string
		want []string
	}{
		{"901", []string{"curl(901) < sh(812) > sshd(640) > systemd(1) children=[] queries=4 names=[www.evil.com (3) evil.com (1)]"}},
		{"/usr/bin/python3.11", []string{"python3(950) < sh(812) > sshd(640) > systemd(1) children=[] queries=4 " +
			"names=[notevil.com (1) api.evil.com (1) evil.com.example.net (1) evil-x.com (1)]"}},
		{"sh", []string{"sh(812) < sshd(640) > systemd(1) children=[curl(901) python3(950)] queries=0 names=[]"}},
		{"dash", []string{"sh(812) < sshd(640) > systemd(1) children=[curl(901) python3(950)] queries=0 names=[]"}},
		// A parent cycle in a corrupt file ends the walk.
		{"evil", []string{"evil(2000) < spawner(2001) > evil(2000) children=[spawner(2001)] queries=1 names=[beacon.evil.com (1)]"}},
		{"4243", nil},
	}
	for _, tt := range tests {
		t.Run(tt.arg, func(t *testing.T) {
			rows, err := db.Processes(context.Background(), tt.arg, query.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rows {
				var ch, names []string
				for _, c := range r.Children {
					ch = append(ch, query.Ancestry{c}.String())
				}
				for _, n := range r.Names {
					names = append(names, n.String())
				}
				got = append(got, fmt.Sprintf("%s < %s children=[%s] queries=%d names=[%s]",
					r.Proc.String(), r.Proc.Ancestry, strings.Join(ch, " "), r.Queries, strings.Join(names, " ")))
			}
			sameLines(t, got, tt.want)
		})
	}
	rows, err := db.Processes(context.Background(), "curl", query.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	goldenFormats(t, "process-curl", query.ProcessTable(rows, false))
}
