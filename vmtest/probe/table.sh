#!/usr/bin/env bash
# table.sh: turn probe console logs into the markdown table of vmtest/README.md.
#
#   vmtest/probe/table.sh host=.cache/vmtest-logs/host__default.log \
#       5.10=.cache/vmtest-logs/5.10__default.log ...
#
# Reads the "PROBE<TAB>section<TAB>name<TAB>ok|no<TAB>detail" lines.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 LABEL=LOG..." >&2; exit 2; }
for a in "$@"; do
	label=${a%%=*} log=${a#*=}
	tr -d '\r' <"$log" | awk -F'\t' -v l="$label" '$1 == "PROBE" && $2 != "env" {print l "\t" $2 "\t" $3 "\t" $4 "\t" $5}'
done | awk -F'\t' -v order="$(printf '%s ' "${@%%=*}")" '
BEGIN { n = split(order, cols, " ") }
{
	key = $2 "\t" $3
	if (!(key in seen)) { seen[key] = 1; rows[++nr] = key }
	v = $4
	if (v == "no") {
		if (!(($5) in fn)) { fn[$5] = ++nf; notes[nf] = $5 }
		v = "no [" fn[$5] "]"
	}
	cell[key, $1] = v
}
END {
	printf "| section | check |"
	for (i = 1; i <= n; i++) printf " %s |", cols[i]
	printf "\n|---|---|"
	for (i = 1; i <= n; i++) printf "---|"
	printf "\n"
	for (r = 1; r <= nr; r++) {
		split(rows[r], k, "\t")
		printf "| %s | %s |", k[1], k[2]
		for (i = 1; i <= n; i++) printf " %s |", ((rows[r], cols[i]) in cell) ? cell[rows[r], cols[i]] : "-"
		printf "\n"
	}
	if (nf) printf "\n"
	for (i = 1; i <= nf; i++) printf "%d. `%s`\n", i, notes[i]
}'
