#!/usr/bin/env bash
# fetch-kernels.sh: fetch stock Debian cloud kernels for the vmtest matrix.
#
# Usage: vmtest/fetch-kernels.sh [SERIES...]      (default: 5.10 6.1 6.12 newest)
#                                                  (arm64: 6.1-arm64 6.12-arm64)
#
# For each series it resolves the newest matching Debian package with
# apt-cache, downloads it with `apt-get download`, unpacks it with
# `dpkg-deb -x` and keeps only the kernel image:
#
#   $CACHE/kernels/<uname -r>/vmlinuz          e.g. .cache/kernels/6.1.0-56-cloud-amd64/vmlinuz
#
# On stdout it prints one line per series: "<series> <uname -r> <path to vmlinuz>".
# Everything else goes to stderr.
#
#   5.10  linux-image-5.10.0-N-cloud-amd64-unsigned        (bullseye)
#   6.1   linux-image-6.1.0-N-cloud-amd64-unsigned         (bookworm)
#   6.12  linux-image-6.12.N+deb12-cloud-amd64-unsigned    (bookworm)
#   newest the newest linux-image-X.Y.N+deb13-cloud-amd64[-unsigned] in trixie
#          and trixie-backports (7.3.4 in November 2026): the matrix follows
#          Debian's newest kernel without an edit here
#   6.1-arm64  linux-image-6.1.0-N-cloud-arm64-unsigned    (bookworm, arm64)
#   6.12-arm64 linux-image-6.12.N+deb13-cloud-arm64-unsigned (trixie, arm64)
#
# The arm64 series use their own private apt state ($CACHE/apt/<suite>-arm64/)
# with APT::Architecture=arm64, so the package lists and downloads are arm64
# ones; the machine's own architecture configuration is not touched.
#
# apt is always driven with a PRIVATE configuration (own sources.list, lists
# and cache directories under $CACHE/apt/<suite>/). The machine's apt sources
# are never modified: adding another suite (bullseye) to them would let a later
# `apt-get install` pull that suite's libc. The mirror host is taken from the
# machine's own apt sources, so the same registry is used.
#
# Environment:
#   VMTEST_CACHE                  cache root (default: <repo>/.cache)
#   VMTEST_OFFLINE=1              never touch the network; use the newest cached kernel per series
#   VMTEST_LISTS_MAX_AGE_MIN      refresh the private package lists when older (default 720)
#   VMTEST_DEBIAN_MIRROR          override the archive URI   (e.g. http://deb.debian.org/debian)
#   VMTEST_DEBIAN_SECURITY_MIRROR override the security URI  (e.g. http://deb.debian.org/debian-security)
#
# Idempotent: when the newest version is already cached nothing is downloaded.
# When the registry cannot be reached, a cached kernel of the same series is
# used (with a warning); without one the script fails with a clear error.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${VMTEST_CACHE:-$repo/.cache}
kdir=$cache/kernels
max_age=${VMTEST_LISTS_MAX_AGE_MIN:-720}

log() { echo "fetch-kernels: $*" >&2; }
die() { log "error: $*"; exit 1; }

series_list=("$@")
[ ${#series_list[@]} -gt 0 ] || series_list=(5.10 6.1 6.12 newest)

# series -> suite and package-name regex. A suite "X-arm64" is suite X with
# arm64 package lists, in a private apt state of its own.
suite_of() {
	case $1 in
	5.10) echo bullseye ;;
	6.1 | 6.12) echo bookworm ;;
	newest) echo trixie ;;
	6.1-arm64) echo bookworm-arm64 ;;
	6.12-arm64) echo trixie-arm64 ;;
	*) die "unknown kernel series '$1' (known: 5.10 6.1 6.12 newest 6.1-arm64 6.12-arm64)" ;;
	esac
}
regex_of() {
	case $1 in
	5.10) echo '^linux-image-5\.10\.0-[0-9]+-cloud-amd64-unsigned$' ;;
	6.1) echo '^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$' ;;
	6.12) echo '^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$' ;;
	newest) echo '^linux-image-[0-9]+\.[0-9]+\.[0-9]+\+deb13-cloud-amd64(-unsigned)?$' ;;
	6.1-arm64) echo '^linux-image-6\.1\.0-[0-9]+-cloud-arm64-unsigned$' ;;
	6.12-arm64) echo '^linux-image-6\.12\.[0-9]+\+deb13-cloud-arm64-unsigned$' ;;
	esac
}
# glob of cached uname -r directories for a series
glob_of() {
	case $1 in
	5.10) echo '5.10.0-*-cloud-amd64' ;;
	6.1) echo '6.1.0-*-cloud-amd64' ;;
	6.12) echo '6.12.*+deb12-cloud-amd64' ;;
	newest) echo '*+deb13-cloud-amd64' ;;
	6.1-arm64) echo '6.1.0-*-cloud-arm64' ;;
	6.12-arm64) echo '6.12.*+deb13-cloud-arm64' ;;
	esac
}

newest_cached() { # series -> uname -r of newest cached kernel, or nothing
	local g d best=""
	g=$(glob_of "$1")
	# shellcheck disable=SC2086
	for d in "$kdir"/$g; do
		[ -f "$d/vmlinuz" ] || continue
		best+="$(basename "$d")"$'\n'
	done
	printf '%s' "$best" | sed '/^$/d' | sort -V | tail -n1
}

# Mirror URIs: reuse the hosts configured in the machine's own apt sources.
mirror=${VMTEST_DEBIAN_MIRROR:-}
secmirror=${VMTEST_DEBIAN_SECURITY_MIRROR:-}
detect_mirrors() {
	[ -n "$mirror" ] && [ -n "$secmirror" ] && return
	local targets=""
	if command -v apt-get >/dev/null; then
		targets=$(apt-get indextargets --no-release-info --format '$(REPO_URI) $(RELEASE)' 2>/dev/null | sort -u || true)
	fi
	if [ -z "$mirror" ]; then
		mirror=$(awk '$2 !~ /-/ && $1 ~ /\/debian\/?$/ {print $1; exit}' <<<"$targets")
		mirror=${mirror:-http://deb.debian.org/debian}
	fi
	if [ -z "$secmirror" ]; then
		secmirror=$(awk '$2 ~ /-security$/ {print $1; exit}' <<<"$targets")
		secmirror=${secmirror:-${mirror%/debian*}/debian-security}
	fi
	mirror=${mirror%/}
	secmirror=${secmirror%/}
}

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
apt_opts() { # suite -> private apt options
	local d=$cache/apt/$1
	if [ "${1%-arm64}" != "$1" ]; then
		printf '%s\n' -o "APT::Architecture=arm64" -o "APT::Architectures=arm64"
	fi
	printf '%s\n' \
		-o "Dir::Etc::SourceList=$d/sources.list" \
		-o "Dir::Etc::SourceParts=/dev/null" \
		-o "Dir::State::Lists=$d/lists" \
		-o "Dir::Cache=$d/cache" \
		-o "APT::Sandbox::User=root" \
		-o "Acquire::Languages=none" \
		-o "Debug::NoLocking=1"
}

declare -A updated=()
update_lists() { # suite -> 0 if lists are usable
	local key=$1 d=$cache/apt/$1 opts
	[ -n "${updated[$key]:-}" ] && return "${updated[$key]}"
	detect_mirrors
	mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
	local suite=${key%-arm64} arch=""
	[ "$suite" != "$key" ] && arch="arch=arm64 "
	local signed=""
	[ -f "$keyring" ] && signed="signed-by=$keyring "
	local o=""
	[ -n "$arch$signed" ] && o="[${arch}${signed% }] "
	cat >"$d/sources.list.new" <<-EOF
		deb ${o}$mirror $suite main
		deb ${o}$mirror $suite-updates main
		deb ${o}$secmirror $suite-security main
	EOF
	# Debian publishes its newest kernels in trixie-backports.
	[ "$key" = trixie ] && echo "deb ${o}$mirror $suite-backports main" >>"$d/sources.list.new"
	# Refresh when the sources changed or the lists are missing/old.
	local fresh=""
	if cmp -s "$d/sources.list.new" "$d/sources.list" 2>/dev/null &&
		[ -n "$(find "$d/lists" -maxdepth 1 -name '*_Packages*' -mmin "-$max_age" 2>/dev/null | head -n1)" ]; then
		fresh=1
	fi
	mv "$d/sources.list.new" "$d/sources.list"
	mapfile -t opts < <(apt_opts "$key")
	if [ -z "$fresh" ]; then
		log "updating private package lists for $key from $mirror"
		local out
		if ! out=$(apt-get "${opts[@]}" -q update 2>&1) ||
			grep -qE '^(W|E): (Failed to fetch|Some index files failed)' <<<"$out"; then
			printf '%s\n' "$out" | grep -E '^(W|E):' | head -n5 >&2 || true
			updated[$key]=1
			return 1
		fi
	fi
	updated[$key]=0
	return 0
}

resolve_candidates() { # series -> matching package names, newest first
	local suite regex opts
	suite=$(suite_of "$1")
	regex=$(regex_of "$1")
	mapfile -t opts < <(apt_opts "$suite")
	apt-cache "${opts[@]}" pkgnames linux-image- 2>/dev/null | grep -E "$regex" | sort -rV || true
}

# Packages listed in the index but not downloadable (the registry can lag
# behind its own index: seen here for bullseye-security 5.10.0-44..46, HTTP
# 404). Remembered for the lists' max age so repeated runs do not retry them.
unavail=$kdir/.unavailable
is_unavailable() {
	[ -f "$unavail" ] || return 1
	local now
	now=$(date +%s)
	awk -v p="$1" -v now="$now" -v age="$((max_age * 60))" '$1 == p && now - $2 < age {f = 1} END {exit !f}' "$unavail"
}
mark_unavailable() { echo "$1 $(date +%s)" >>"$unavail"; }

fetch_pkg() { # suite package version -> 0 on success
	local suite=$1 pkg=$2 ver=$3 opts tmp
	mapfile -t opts < <(apt_opts "$suite")
	tmp=$(mktemp -d "$cache/fetch.XXXXXX")
	log "downloading $pkg"
	if ! (cd "$tmp" && apt-get "${opts[@]}" -q download "$pkg" >&2); then
		rm -rf "$tmp"
		return 1
	fi
	dpkg-deb -x "$tmp"/*.deb "$tmp/x"
	local img
	img=$(ls "$tmp"/x/boot/vmlinuz-* 2>/dev/null | head -n1)
	if [ -z "$img" ]; then
		# Since 7.x (trixie-backports) linux-image-* is a meta package and
		# the image is linux-binary-<uname -r>'s /usr/lib/modules/*/vmlinuz.
		log "$pkg holds no image; downloading linux-binary-$ver"
		if (cd "$tmp" && rm -f ./*.deb && apt-get "${opts[@]}" -q download "linux-binary-$ver" >&2); then
			dpkg-deb -x "$tmp"/*.deb "$tmp/x"
			img=$(ls "$tmp"/x/boot/vmlinuz-* "$tmp"/x/usr/lib/modules/*/vmlinuz 2>/dev/null | head -n1)
		fi
	fi
	if [ -z "$img" ]; then
		rm -rf "$tmp"
		die "$pkg has no /boot/vmlinuz-* (nor linux-binary-$ver a /usr/lib/modules/*/vmlinuz)"
	fi
	mkdir -p "$kdir/$ver"
	cp "$img" "$kdir/$ver/vmlinuz.tmp"
	mv "$kdir/$ver/vmlinuz.tmp" "$kdir/$ver/vmlinuz"
	rm -rf "$tmp"
	log "cached $kdir/$ver/vmlinuz ($(du -h "$kdir/$ver/vmlinuz" | cut -f1))"
}

need() { command -v "$1" >/dev/null || die "$1 not found: $2"; }

mkdir -p "$kdir"
status=0
for s in "${series_list[@]}"; do
	suite=$(suite_of "$s")
	cached=$(newest_cached "$s")
	if [ "${VMTEST_OFFLINE:-0}" = 1 ]; then
		if [ -z "$cached" ]; then
			log "error: VMTEST_OFFLINE=1 and no cached $s kernel under $kdir"
			status=1
			continue
		fi
		echo "$s $cached $kdir/$cached/vmlinuz"
		continue
	fi
	need apt-get "vmtest needs a Debian-like host with apt to fetch kernels (or VMTEST_OFFLINE=1 with a filled cache)"
	need dpkg-deb "install dpkg"
	candidates=()
	if update_lists "$suite"; then
		mapfile -t candidates < <(resolve_candidates "$s")
	fi
	if [ ${#candidates[@]} -eq 0 ]; then
		if [ -n "$cached" ]; then
			log "warning: cannot resolve the newest $s kernel from $suite (registry unreachable?); using cached $cached"
			echo "$s $cached $kdir/$cached/vmlinuz"
			continue
		fi
		log "error: cannot resolve a $s kernel package ($(regex_of "$s")) from $suite at ${mirror:-?}, and none is cached under $kdir."
		log "       Check network access to the Debian registry, or set VMTEST_DEBIAN_MIRROR / VMTEST_DEBIAN_SECURITY_MIRROR."
		status=1
		continue
	fi
	# Newest first; skip packages the registry lists but does not serve.
	ver=""
	tries=0
	for pkg in "${candidates[@]}"; do
		v=${pkg#linux-image-}
		v=${v%-unsigned}
		if [ -f "$kdir/$v/vmlinuz" ]; then
			log "$s: $v (cached)"
			ver=$v
			break
		fi
		is_unavailable "$pkg" && continue
		tries=$((tries + 1))
		[ $tries -le 5 ] || break
		if fetch_pkg "$suite" "$pkg" "$v"; then
			ver=$v
			break
		fi
		log "warning: $pkg is listed but could not be downloaded; trying the next older one"
		mark_unavailable "$pkg"
	done
	if [ -z "$ver" ]; then
		if [ -n "$cached" ]; then
			log "warning: no $s kernel could be downloaded; using cached $cached"
			ver=$cached
		else
			log "error: no $s kernel could be downloaded (tried: ${candidates[*]:0:5})"
			status=1
			continue
		fi
	fi
	echo "$s $ver $kdir/$ver/vmlinuz"
done
exit $status
