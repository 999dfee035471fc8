#!/bin/sh
# Encrypted-DNS test bed on loopback: unbound serving one local zone in clear
# (UDP/TCP), over DoT and over DoH, with a certificate made here.
#
#   setup.sh start DIR   write the certificate and unbound.conf into DIR, start
#                        unbound (pid in DIR/unbound.pid) and an HTTP server
#                        for curl to fetch from (DIR/http.pid)
#   setup.sh clients DIR resolve c2.evil.test with every client, one line each
#   setup.sh stop DIR    stop both
#
# Ports (environment): PLAIN (5399), DOT (853), DOH (8443), HTTP (8080).
# The zone answers with loopback addresses so that clients that connect to
# what they resolved (curl) stay on the machine.
set -eu
cmd=${1:?start|clients|stop}
dir=${2:?DIR}
PLAIN=${PLAIN:-5399}
DOT=${DOT:-853}
DOH=${DOH:-8443}
HTTP=${HTTP:-8080}
here=$(cd "$(dirname "$0")" && pwd)

start() {
	mkdir -p "$dir"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-subj /CN=dns.test -addext "subjectAltName=IP:127.0.0.1,DNS:dns.test" \
		-days 2 -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
	cat >"$dir/unbound.conf" <<CONF
server:
	username: ""
	chroot: ""
	directory: "$dir"
	pidfile: "$dir/unbound.pid"
	do-daemonize: no
	use-syslog: no
	logfile: "$dir/unbound.log"
	verbosity: 1
	interface: 127.0.0.1@$PLAIN
	interface: 127.0.0.1@$DOT
	interface: 127.0.0.1@$DOH
	tls-port: $DOT
	https-port: $DOH
	tls-service-key: "$dir/key.pem"
	tls-service-pem: "$dir/cert.pem"
	http-endpoint: "/dns-query"
	access-control: 127.0.0.0/8 allow
	do-not-query-localhost: yes
	local-zone: "evil.test." static
	local-data: "c2.evil.test. 60 IN A 127.0.0.1"
	local-data: "c2.evil.test. 60 IN AAAA ::1"
	local-data: "drop.evil.test. 60 IN A 127.0.0.8"
	local-data: "www.evil.test. 60 IN A 127.0.0.7"
	local-data: "dns.test. 60 IN A 127.0.0.1"
CONF
	unbound-checkconf "$dir/unbound.conf" >/dev/null
	unbound -c "$dir/unbound.conf" &
	echo $! >"$dir/unbound.pid.sh"
	python3 -m http.server --bind 127.0.0.1 "$HTTP" --directory "$dir" >"$dir/http.log" 2>&1 &
	echo $! >"$dir/http.pid"
	# unbound opens its ports after reading the config: wait for the plain one.
	i=0
	until dig +short +time=1 +tries=1 @127.0.0.1 -p "$PLAIN" dns.test >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -lt 50 ] || { echo "unbound did not start" >&2; cat "$dir/unbound.log" >&2; exit 1; }
		sleep 0.1
	done
}

clients() {
	n=c2.evil.test
	echo "plain  $(dig +short @127.0.0.1 -p "$PLAIN" $n A | tr '\n' ' ')"
	echo "kdig   $(kdig +short +tls +tls-ca="$dir/cert.pem" +tls-hostname=dns.test @127.0.0.1 -p "$DOT" $n A | tr '\n' ' ')"
	echo "dig-t  $(dig +short +tls +tls-ca="$dir/cert.pem" +tls-hostname=dns.test @127.0.0.1 -p "$DOT" $n A | tr '\n' ' ')"
	echo "dig-h  $(dig +short +https +tls-ca="$dir/cert.pem" +tls-hostname=dns.test @127.0.0.1 -p "$DOH" $n A | tr '\n' ' ')"
	echo "curl   $(curl -4 -sS --cacert "$dir/cert.pem" --doh-url "https://127.0.0.1:$DOH/dns-query" \
		-o /dev/null -w '%{remote_ip} %{http_code}' "http://$n:$HTTP/cert.pem")"
	echo "python $(python3 "$here/dot.py" 127.0.0.1 "$DOT" "$dir/cert.pem" $n)"
	echo "py-mem $(python3 "$here/dot.py" 127.0.0.1 "$DOT" "$dir/cert.pem" $n membio)"
}

stop() {
	for f in "$dir/unbound.pid.sh" "$dir/http.pid"; do
		[ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
		rm -f "$f"
	done
}

case $cmd in
start) start ;;
clients) clients ;;
stop) stop ;;
*) echo "usage: $0 start|clients|stop DIR" >&2; exit 2 ;;
esac
