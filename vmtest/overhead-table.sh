#!/usr/bin/env bash
# Turns the VMTEST-OVERHEAD lines of `make vmbench` logs into a table:
# kernel x tier -> time per DNS exchange with the recorder on, as a ratio
# to the same exchange with it off, measured in the same boot. With several
# benchmark rounds (-test.count) the cell is the median ratio.
set -euo pipefail
logdir=${1:-.cache/vmtest-logs}
shopt -s nullglob
logs=("$logdir"/*__bench.log)
[ ${#logs[@]} -gt 0 ] || { echo "no $logdir/*__bench.log: run make vmbench" >&2; exit 1; }
printf '%-34s | %-12s | %-12s | %-12s\n' kernel fentry kprobe cgroup
printf '%-34s-+-%-12s-+-%-12s-+-%-12s\n' "$(printf -- '-%.0s' {1..34})" ------------ ------------ ------------
for f in "${logs[@]}"; do
	kernel=$(basename "$f" __bench.log)
	declare -A cell=([fentry]=- [kprobe]=- [cgroup]=-)
	declare -A ratios=()
	while read -r line; do
		tier=$(sed -n 's/.*tier=\([a-z]*\).*/\1/p' <<<"$line")
		if [[ $line == *result=unsupported* ]]; then
			cell[$tier]=unsupported
			continue
		fi
		n=$(sed -n 's/.* n=\([0-9]*\).*/\1/p' <<<"$line")
		ratio=$(sed -n 's/.* ratio=\([0-9.]*\).*/\1/p' <<<"$line")
		# The benchmark framework's first call has n=1; keep the timed runs.
		[ "$n" -gt 1 ] && ratios[$tier]+="$ratio "
	done < <(grep -a 'VMTEST-OVERHEAD' "$f" | tr -d '\r')
	for tier in "${!ratios[@]}"; do
		cell[$tier]=$(tr ' ' '\n' <<<"${ratios[$tier]}" | grep . | sort -n | awk '{a[NR]=$1} END {printf "%.2fx (%d)", a[int((NR+1)/2)], NR}')
	done
	printf '%-34s | %-12s | %-12s | %-12s\n' "$kernel" "${cell[fentry]}" "${cell[kprobe]}" "${cell[cgroup]}"
	unset cell ratios
done
