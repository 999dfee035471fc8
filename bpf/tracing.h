// SPDX-License-Identifier: GPL-2.0
// Shared by the fentry and kprobe tiers: both hook the same kernel functions,
// in the process context of the socket's user, and differ only in how they
// attach. Every message is attributed to current, on both the send and the
// receive path, so no socket-owner map is needed.
//
//   udp_send_skb / udp_v6_send_skb   UDP send; the IP header is built, the
//                                    UDP header not yet: ports from the flow
//   ip_send_skb / ip6_send_skb       stable alternative where udp_send_skb
//                                    was inlined away: complete headers
//   skb_consume_udp                  UDP receive, after the copy to the reader
//   tcp_sendmsg                      TCP send: the user's buffers
//   tcp_recvmsg (entry + return)     TCP receive: the user's buffers, filled
#pragma once

#include "common.h"


#define IOV_SEGS 4 // iovec segments followed per send/recv (glibc writes 2)

struct flow {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 family;
	__u8 proto;
	__u32 seq;
	__u64 sockid;
};

// sock_id is what these tiers store in dns_event.cookie: the socket's inode
// number, as in /proc/PID/fd's "socket:[N]" and `ss -e`. (The socket cookie
// of the cgroup tier needs bpf_get_socket_cookie, which tracing programs
// only have from 5.12; and a kernel pointer has no place in evidence.)
static __always_inline __u64 sock_id(struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino);
}

// fill_tr writes one record in place; src is kernel memory, or user memory
// when user is set.
// The identity is current's: read here, or copied from id when the caller
// read it once for several records.
static __always_inline void fill_tr(struct flow *f, __u8 dir, struct dns_event *ev, __u8 *data,
				    const void *src, __u32 orig, __u64 cap, __u64 max, int user,
				    const struct ident *id)
{
	dns_header(ev, dir, f->proto, f->family, F_IDENT | F_IDENT_CURRENT, f->sport, f->dport, f->saddr,
		   f->daddr, orig, f->seq, f->sockid, 0);
	if (id)
		__builtin_memcpy(&ev->id, id, sizeof(*id));
	else
		fill_ident(&ev->id);

	if (cap == 0) {
		ev->cap_len = 0;
		return;
	}
	cap = cap_mask(cap, max);
	long err = user ? bpf_probe_read_user(data, cap, src) : bpf_probe_read_kernel(data, cap, src);
	ev->cap_len = err ? 0 : cap;
}

// emit sends one message (or TCP chunk) of orig bytes at src, of which
// avail can be read. id is current's identity, or 0 to read it here.
static __always_inline void emit(struct flow *f, __u8 dir, const void *src, __u32 orig, __u32 avail, int user,
				 const struct ident *id)
{
	// A TCP read or write of nothing carries no data (an EOF, say); an
	// empty UDP datagram is a message, and is recorded.
	if (orig == 0 && f->proto == IPPROTO_TCP)
		return;
	__u64 cap = snap_cap(orig < avail ? orig : avail);
#define FILL_TR(ev, data, max) fill_tr(f, dir, ev, data, src, orig, cap, max, user, id)
	EMIT_SIZE_CLASSES(FILL_TR)
#undef FILL_TR
}

// skb_linear_from returns how many bytes of skb's linear data start at p.
static __always_inline __u32 skb_linear_from(struct sk_buff *skb, unsigned char *p)
{
	unsigned char *data = BPF_CORE_READ(skb, data);
	__u32 headlen = BPF_CORE_READ(skb, len) - BPF_CORE_READ(skb, data_len);
	if (p < data || p > data + headlen)
		return 0;
	return data + headlen - p;
}

// A UDP sendmsg or recvmsg in progress on a socket that can carry DNS: its
// one user buffer, where the datagram's bytes are (send) or will be
// copied (receive). The kernel keeps a large datagram mostly, on 6.1 and
// later wholly, in page fragments that the linear read above cannot see;
// within the same call, the user's buffer holds the same bytes. len is 0
// when the call's buffer cannot be used (several segments), so that a
// stale entry of the thread's previous call is never read.
struct udp_call {
	__u64 sk; // struct sock *, as an integer
	__u64 base;
	__u64 len;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); // pid_tgid
	__type(value, struct udp_call);
} udp_calls SEC(".maps");

// UDP_USER_MIN: smaller datagrams are read from the skb's linear part (they
// always fit there), and calls with smaller buffers are not remembered.
#define UDP_USER_MIN 512

// udp_emit sends one datagram of orig payload bytes at payload, of which
// avail are linear; the rest comes from the user buffer of the call in
// progress on sk, when there is one.
static __always_inline void udp_emit(struct flow *f, __u8 dir, struct sock *sk, unsigned char *payload, __u32 orig,
				     __u32 avail)
{
	if (avail < orig && orig > UDP_USER_MIN) {
		__u64 key = bpf_get_current_pid_tgid();
		struct udp_call *c = bpf_map_lookup_elem(&udp_calls, &key);
		// A send's buffer is exactly the datagram; a receive's buffer
		// may be shorter (MSG_TRUNC): then it holds what it holds.
		if (c && c->sk == (__u64)sk && c->len > 0 && (dir == DIR_RECV || c->len == orig)) {
			__u32 n = c->len < orig ? c->len : orig;
			emit(f, dir, (const void *)c->base, orig, n, 1, 0);
			return;
		}
	}
	emit(f, dir, payload, orig, avail, 0, 0);
}

// udp_send sends from udp_send_skb / udp_v6_send_skb: addresses and ports
// from the flow, payload after the (still empty) UDP header.
static __always_inline void udp_send(struct sk_buff *skb, struct flow *f)
{
	if (!is_dns_flow(f->sport, f->dport))
		return;
	f->proto = IPPROTO_UDP;
	f->seq = 0;
	f->sockid = sock_id(BPF_CORE_READ(skb, sk));
	unsigned char *head = BPF_CORE_READ(skb, head);
	unsigned char *uh = head + BPF_CORE_READ(skb, transport_header);
	unsigned char *payload = uh + 8;
	unsigned char *data = BPF_CORE_READ(skb, data);
	__u32 len = BPF_CORE_READ(skb, len);
	__u32 off = payload - data;
	if (off > len)
		return;
	udp_emit(f, DIR_SEND, BPF_CORE_READ(skb, sk), payload, len - off, skb_linear_from(skb, payload));
}

static __always_inline void on_udp_send4(struct sk_buff *skb, struct flowi4 *fl4)
{
	struct flow f = {.family = 4};
	f.sport = bpf_ntohs(BPF_CORE_READ(fl4, uli.ports.sport));
	f.dport = bpf_ntohs(BPF_CORE_READ(fl4, uli.ports.dport));
	__be32 s = BPF_CORE_READ(fl4, saddr), d = BPF_CORE_READ(fl4, daddr);
	__builtin_memcpy(f.saddr, &s, 4);
	__builtin_memcpy(f.daddr, &d, 4);
	udp_send(skb, &f);
}

static __always_inline void on_udp_send6(struct sk_buff *skb, struct flowi6 *fl6)
{
	struct flow f = {.family = 6};
	f.sport = bpf_ntohs(BPF_CORE_READ(fl6, uli.ports.sport));
	f.dport = bpf_ntohs(BPF_CORE_READ(fl6, uli.ports.dport));
	BPF_CORE_READ_INTO(&f.saddr, fl6, saddr);
	BPF_CORE_READ_INTO(&f.daddr, fl6, daddr);
	udp_send(skb, &f);
}

// udp_from_headers reads a UDP datagram whose IP and UDP headers are built:
// received (skb_consume_udp, by sk) or about to be sent (ip_send_skb; sk is
// 0, and the skb's owner is the sender).
static __always_inline void udp_from_headers(struct sk_buff *skb, __u8 dir, struct sock *sk)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	unsigned char *nh = head + BPF_CORE_READ(skb, network_header);
	unsigned char *th = head + BPF_CORE_READ(skb, transport_header);
	struct flow f = {.proto = IPPROTO_UDP};
	__u8 vihl = 0;
	bpf_probe_read_kernel(&vihl, 1, nh);
	if ((vihl >> 4) == 4) {
		struct iphdr ip;
		if (bpf_probe_read_kernel(&ip, sizeof(ip), nh))
			return;
		if (ip.protocol != IPPROTO_UDP)
			return;
		f.family = 4;
		__builtin_memcpy(f.saddr, &ip.saddr, 4);
		__builtin_memcpy(f.daddr, &ip.daddr, 4);
	} else if ((vihl >> 4) == 6) {
		struct ipv6hdr ip6;
		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), nh))
			return;
		if (ip6.nexthdr != IPPROTO_UDP)
			return;
		f.family = 6;
		__builtin_memcpy(f.saddr, &ip6.saddr, 16);
		__builtin_memcpy(f.daddr, &ip6.daddr, 16);
	} else {
		return;
	}
	struct udphdr uh;
	if (bpf_probe_read_kernel(&uh, sizeof(uh), th))
		return;
	f.sport = bpf_ntohs(uh.source);
	f.dport = bpf_ntohs(uh.dest);
	if (!is_dns_flow(f.sport, f.dport))
		return;
	__u32 ulen = bpf_ntohs(uh.len);
	if (ulen < sizeof(uh))
		return; // malformed: shorter than its own header
	if (!sk)
		sk = BPF_CORE_READ(skb, sk);
	f.sockid = sock_id(BPF_CORE_READ(skb, sk));
	unsigned char *payload = th + sizeof(uh);
	udp_emit(&f, dir, sk, payload, ulen - sizeof(uh), skb_linear_from(skb, payload));
}

// sock_flow describes a TCP socket from its user's side.
static __always_inline int sock_flow(struct sock *sk, struct flow *f, __u8 dir)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u16 lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	__u16 rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (!is_dns_flow(lport, rport))
		return 0;
	__u8 local[16] = {}, remote[16] = {};
	if (family == 2) {
		f->family = 4;
		BPF_CORE_READ_INTO((__be32 *)local, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__be32 *)remote, sk, __sk_common.skc_daddr);
	} else if (family == 10) {
		f->family = 6;
		BPF_CORE_READ_INTO((struct in6_addr *)local, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO((struct in6_addr *)remote, sk, __sk_common.skc_v6_daddr);
	} else {
		return 0;
	}
	f->proto = IPPROTO_TCP;
	f->sockid = sock_id(sk);
	if (dir == DIR_SEND) {
		__builtin_memcpy(f->saddr, local, 16);
		__builtin_memcpy(f->daddr, remote, 16);
		f->sport = lport;
		f->dport = rport;
	} else {
		__builtin_memcpy(f->saddr, remote, 16);
		__builtin_memcpy(f->daddr, local, 16);
		f->sport = rport;
		f->dport = lport;
	}
	return 1;
}

// User buffers of a send or receive, read from its iov_iter before the call
// consumes it.
struct ubufs {
	__u64 base[IOV_SEGS];
	__u64 len[IOV_SEGS];
	__u32 n;
};

// Layout of struct iov_iter before Linux 5.14: type and direction in one int.
struct iov_iter___v510 {
	unsigned int type;
	size_t iov_offset;
	size_t count;
	const struct iovec *iov;
	unsigned long nr_segs;
} __attribute__((preserve_access_index));

// Linux 5.14 to 6.3 named the iovec pointer iov, 6.4 renamed it __iov.
struct iov_iter___v61 {
	u8 iter_type;
	const struct iovec *iov;
} __attribute__((preserve_access_index));

static __always_inline int read_iter(struct msghdr *msg, struct ubufs *u)
{
	struct iov_iter *it = &msg->msg_iter;
	const struct iovec *iov = 0;
	size_t offset = BPF_CORE_READ(it, iov_offset);
	unsigned long segs = 0;
	u->n = 0;

	if (bpf_core_field_exists(struct iov_iter___v510, type)) {
		unsigned int type = BPF_CORE_READ((struct iov_iter___v510 *)it, type);
		if (!(type & 4)) // ITER_IOVEC
			return 0;
		iov = BPF_CORE_READ((struct iov_iter___v510 *)it, iov);
		segs = BPF_CORE_READ((struct iov_iter___v510 *)it, nr_segs);
	} else {
		__u8 type = BPF_CORE_READ(it, iter_type);
		int ubuf = bpf_core_enum_value_exists(enum iter_type, ITER_UBUF) &&
			   type == bpf_core_enum_value(enum iter_type, ITER_UBUF);
		if (ubuf) {
			u->base[0] = (__u64)BPF_CORE_READ(it, ubuf) + offset;
			u->len[0] = BPF_CORE_READ(it, count);
			u->n = 1;
			return 1;
		}
		if (type != bpf_core_enum_value(enum iter_type, ITER_IOVEC))
			return 0;
		if (bpf_core_field_exists(it->__iov))
			iov = BPF_CORE_READ(it, __iov);
		else
			iov = BPF_CORE_READ((struct iov_iter___v61 *)it, iov);
		segs = BPF_CORE_READ(it, nr_segs);
	}
#pragma unroll
	for (int i = 0; i < IOV_SEGS; i++) {
		if (i >= segs)
			break;
		struct iovec v;
		if (bpf_probe_read_kernel(&v, sizeof(v), &iov[i]))
			break;
		u->base[i] = (__u64)v.iov_base + (i == 0 ? offset : 0);
		u->len[i] = v.iov_len - (i == 0 ? offset : 0);
		u->n = i + 1;
	}
	return u->n > 0;
}

// on_udp_call remembers the user buffer of a UDP sendmsg or recvmsg on a
// socket that can carry DNS (a DNS port at either end, or an unconnected
// socket on an unprivileged port, as resolvers' upstream sockets are), for
// udp_emit. size is the send's length, or 0 for a receive.
static __always_inline void on_udp_call(struct sock *sk, struct msghdr *msg, __u64 size, int recv)
{
	if (!recv && size <= UDP_USER_MIN)
		return; // linear: never looked up
	__u16 lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	__u16 rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (!is_dns_flow(lport, rport) && (rport != 0 || lport < 1024))
		return;
	struct ubufs u = {};
	struct udp_call c = {.sk = (__u64)sk};
	if (read_iter(msg, &u) && u.n == 1 && u.len[0] > UDP_USER_MIN) {
		c.base = u.base[0];
		c.len = u.len[0];
	}
	__u64 key = bpf_get_current_pid_tgid();
	bpf_map_update_elem(&udp_calls, &key, &c, BPF_ANY);
}

// Current's identity for the several records of one TCP send or receive,
// read once: fill_ident inlined in each record's every size class made the
// verifier's work grow with the product of their paths (kp_tcp_sendmsg
// processed 537k instructions of its 1M budget with five classes, 43k
// without the identity). Keyed by thread, so that no other program run can
// write it in between, as one sharing a per-CPU slot could.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); // pid_tgid
	__type(value, struct ident);
} thread_ident SEC(".maps");

static const struct ident no_ident;

static __always_inline struct ident *current_ident(void)
{
	__u64 key = bpf_get_current_pid_tgid();
	struct ident *id = bpf_map_lookup_elem(&thread_ident, &key);
	if (!id) {
		bpf_map_update_elem(&thread_ident, &key, &no_ident, BPF_NOEXIST);
		id = bpf_map_lookup_elem(&thread_ident, &key);
		if (!id)
			return 0;
	}
	fill_ident(id);
	return id;
}

// emit_bufs sends up to total bytes from the user buffers as TCP chunks,
// each with its stream sequence number. A buffer longer than MAX_SNAP (a
// 65535-byte message written with its length prefix, or several messages
// in one write) takes a second record for the rest: up to MAX_SNAP more
// bytes are captured, and any beyond are counted in its length, not kept.
static __always_inline void emit_bufs(struct flow *f, __u8 dir, struct ubufs *u, __u64 total)
{
	struct ident *id = current_ident();
	if (!id)
		return; // the map refused a slot: there is no owner to record
#pragma unroll
	for (int i = 0; i < IOV_SEGS; i++) {
		if (i >= u->n || total == 0)
			break;
		__u64 n = u->len[i] < total ? u->len[i] : total;
		__u64 base = u->base[i];
		total -= n;
		if (n > 0xffffffff)
			n = 0xffffffff; // orig_len is 32 bits
		__u64 first = n < MAX_SNAP ? n : MAX_SNAP;
		emit(f, dir, (const void *)base, first, first, 1, id);
		f->seq += first;
		if (n > first) {
			emit(f, dir, (const void *)(base + first), n - first, n - first, 1, id);
			f->seq += n - first;
		}
	}
}

static __always_inline void on_tcp_send(struct sock *sk, struct msghdr *msg, size_t size)
{
	struct flow f = {};
	if (!sock_flow(sk, &f, DIR_SEND))
		return;
	struct ubufs u = {};
	if (!read_iter(msg, &u))
		return;
	f.seq = BPF_CORE_READ((struct tcp_sock *)sk, write_seq);
	emit_bufs(&f, DIR_SEND, &u, size);
}

// A receive in progress, between tcp_recvmsg's entry and return.
struct tcp_recv {
	__u64 sk; // struct sock *, as an integer: map values hold no pointers
	__u32 seq;
	struct ubufs u;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); // pid_tgid
	__type(value, struct tcp_recv);
} tcp_recvs SEC(".maps");

static __always_inline void on_tcp_recv_entry(struct sock *sk, struct msghdr *msg)
{
	struct flow f = {};
	if (!sock_flow(sk, &f, DIR_RECV))
		return;
	struct tcp_recv r = {.sk = (__u64)sk};
	if (!read_iter(msg, &r.u))
		return;
	r.seq = BPF_CORE_READ((struct tcp_sock *)sk, copied_seq);
	__u64 id = bpf_get_current_pid_tgid();
	bpf_map_update_elem(&tcp_recvs, &id, &r, BPF_ANY);
}

static __always_inline void on_tcp_recv_return(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tcp_recv *r = bpf_map_lookup_elem(&tcp_recvs, &id);
	if (!r)
		return;
	if (ret > 0) {
		struct flow f = {};
		if (sock_flow((struct sock *)r->sk, &f, DIR_RECV)) {
			f.seq = r->seq;
			emit_bufs(&f, DIR_RECV, &r->u, ret);
		}
	}
	bpf_map_delete_elem(&tcp_recvs, &id);
}
