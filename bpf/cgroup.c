//go:build ignore

// SPDX-License-Identifier: GPL-2.0
// Hook tier "cgroup": for kernels without kprobes or BPF trampolines (the
// development and CI machine among them; see shared/KERNELS.md).
//
//   cgroup_skb egress/ingress   the DNS bytes of every message, both ways,
//                               attached at the cgroup v2 root
//   cgroup sock_addr hooks      connect/sendmsg/recvmsg run in the socket
//                               user's own context: they remember the owner
//                               of each DNS socket by socket cookie
//   tp_btf sock_recv_length     the reader of sockets those hooks miss
//                               (accepted TCP connections), from 6.3
//   tp_btf sched_process_*      the process table (common.h)
//
// Identity of a message:
//   - UDP send: the cgroup egress hook runs synchronously inside sendmsg, so
//     current is the sender.
//   - TCP send and every receive: the socket cookie is looked up in
//     sock_owner. In ingress, current is whoever was running when the packet
//     arrived (on loopback: the sender), never the receiver.
//   - A socket that received before its owner was known (a server bound
//     before recording started) is announced with EV_OWNER from recvmsg, and
//     user space attaches the owner to the messages it is holding.
#include "common.h"
#include "tls.h"
#include "guard.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

// Wire headers, declared here rather than taken from vmlinux.h so that no
// CO-RE relocation is applied to on-stack copies of packet bytes.
struct wire_ip4 {
	__u8 vihl;
	__u8 tos;
	__u16 tot_len;
	__u16 id;
	__u16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__u8 saddr[4];
	__u8 daddr[4];
};

struct wire_ip6 {
	__u32 vtcfl;
	__u16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct wire_udp {
	__u16 sport;
	__u16 dport;
	__u16 len;
	__u16 check;
};

struct wire_tcp {
	__u16 sport;
	__u16 dport;
	__u32 seq;
	__u32 ack;
	__u8 doff_res; // data offset in the high nibble
	__u8 flags;
	__u16 window;
	__u16 check;
	__u16 urg;
};

// owner_slot returns the sock_owner entry for cookie, creating an empty one.
// The identity is written straight into the map value: it is too big for
// the BPF stack.
static const struct ident zero_ident;

static __always_inline struct ident *owner_slot(__u64 cookie)
{
	struct ident *o = bpf_map_lookup_elem(&sock_owner, &cookie);
	if (o)
		return o;
	bpf_map_update_elem(&sock_owner, &cookie, &zero_ident, BPF_NOEXIST);
	return bpf_map_lookup_elem(&sock_owner, &cookie);
}

// pkt is what parse learns from the headers, kept on the stack until the
// record's size class is known.
struct pkt {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 poff; // payload offset from the network header
	__u32 plen; // payload length
	__u32 seq;
	__u16 sport;
	__u16 dport;
	__u8 family;
	__u8 proto;
};

// parse returns 1 if skb is DNS on one of our ports: a UDP datagram (even an
// empty one) or a TCP segment with a payload.
static __always_inline int parse(struct __sk_buff *skb, struct pkt *p)
{
	__u32 off;
	__u8 l4;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct wire_ip4 ip;
		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return 0;
		if ((ip.vihl >> 4) != 4 || (ip.vihl & 0xf) < 5)
			return 0;
		if (ip.frag_off & bpf_htons(0x1fff))
			return 0; // later fragments carry no ports
		off = (ip.vihl & 0xf) * 4;
		l4 = ip.protocol;
		p->family = 4;
		__builtin_memcpy(p->saddr, ip.saddr, 4);
		__builtin_memcpy(p->daddr, ip.daddr, 4);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct wire_ip6 ip6;
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return 0;
		off = sizeof(ip6);
		l4 = ip6.nexthdr; // extension headers are not followed
		p->family = 6;
		__builtin_memcpy(p->saddr, ip6.saddr, 16);
		__builtin_memcpy(p->daddr, ip6.daddr, 16);
	} else {
		return 0;
	}

	if (l4 == IPPROTO_UDP) {
		struct wire_udp uh;
		if (bpf_skb_load_bytes(skb, off, &uh, sizeof(uh)))
			return 0;
		p->sport = bpf_ntohs(uh.sport);
		p->dport = bpf_ntohs(uh.dport);
		p->poff = off + sizeof(uh);
		__u32 ulen = bpf_ntohs(uh.len);
		if (ulen < sizeof(uh))
			return 0; // malformed: shorter than its own header
		// An empty datagram is a message too: recorded, not dropped.
		p->plen = ulen - sizeof(uh);
		p->seq = 0;
	} else if (l4 == IPPROTO_TCP) {
		struct wire_tcp th;
		if (bpf_skb_load_bytes(skb, off, &th, sizeof(th)))
			return 0;
		p->sport = bpf_ntohs(th.sport);
		p->dport = bpf_ntohs(th.dport);
		p->poff = off + (th.doff_res >> 4) * 4;
		// skb->len, not the IP length field: an egress GSO packet's
		// header describes only its first segment.
		if (skb->len <= p->poff)
			return 0; // handshake, pure ACK, FIN
		p->plen = skb->len - p->poff;
		p->seq = bpf_ntohl(th.seq);
	} else {
		return 0;
	}
	p->proto = l4;
	return is_dns_flow(p->sport, p->dport);
}

// fill writes one DNS record in place: header, identity, cap payload bytes.
static __always_inline void fill(struct __sk_buff *skb, struct pkt *p, __u8 dir,
				 struct dns_event *ev, __u8 *data, __u64 cap, __u64 max)
{
	__u64 cookie = bpf_get_socket_cookie(skb); // on the stack: helpers take one ring buffer argument
	dns_header(ev, dir, p->proto, p->family, 0, p->sport, p->dport, p->saddr, p->daddr, p->plen, p->seq,
		   cookie, skb->ifindex);

	// For a UDP send, current is the sender: record it as the socket's
	// owner (written in place in the map: 5.10 does not accept ring buffer
	// memory as a map value argument), then copy it. Otherwise look the
	// owner up by socket.
	struct ident *o;
	if (dir == DIR_SEND && p->proto == IPPROTO_UDP) {
		o = owner_slot(cookie);
		if (o)
			fill_ident(o);
		ev->flags = F_IDENT_CURRENT;
	} else {
		o = bpf_map_lookup_elem(&sock_owner, &cookie);
	}
	if (o) {
		__builtin_memcpy(&ev->id, o, sizeof(*o));
		ev->flags |= F_IDENT;
	} else {
		__builtin_memset(&ev->id, 0, sizeof(ev->id));
		ev->flags = 0;
	}

	if (cap == 0) {
		ev->cap_len = 0;
		return;
	}
	cap = cap_mask(cap, max);
	if (bpf_skb_load_bytes(skb, p->poff, data, cap))
		cap = 0;
	ev->cap_len = cap;
}

static __always_inline void capture(struct __sk_buff *skb, __u8 dir)
{
	struct pkt p = {};
	if (!parse(skb, &p))
		return;

	__u64 cap = snap_cap(p.plen);
#define FILL_SKB(ev, data, max) fill(skb, &p, dir, ev, data, cap, max)
	EMIT_SIZE_CLASSES(FILL_SKB)
#undef FILL_SKB
}

SEC("cgroup_skb/egress")
int dns_egress(struct __sk_buff *skb)
{
	capture(skb, DIR_SEND);
	return 1;
}

SEC("cgroup_skb/ingress")
int dns_ingress(struct __sk_buff *skb)
{
	capture(skb, DIR_RECV);
	return 1;
}

// remember_owner records current as the owner of a socket. With announce
// set, an EV_OWNER record tells user space about a socket whose owner was
// not known before, or changed, so that it can attribute the received
// messages it is holding.
static __always_inline void remember_owner(__u64 cookie, int announce)
{
	struct ident *o = bpf_map_lookup_elem(&sock_owner, &cookie);
	if (o && announce && o->pid == BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), tgid))
		return;
	if (!o)
		o = owner_slot(cookie);
	if (!o)
		return;
	fill_ident(o);
	if (!announce)
		return;

	struct dns_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		count_drop();
		return;
	}
	__builtin_memset(ev, 0, sizeof(*ev) - sizeof(ev->id));
	ev->kind = EV_OWNER;
	ev->dir = DIR_RECV;
	ev->flags = F_IDENT | F_IDENT_CURRENT;
	ev->cookie = cookie;
	ev->boot_ns = bpf_ktime_get_boot_ns();
	__builtin_memcpy(&ev->id, o, sizeof(*o));
	bpf_ringbuf_submit(ev, 0);
}

static __always_inline int dns_peer(struct bpf_sock_addr *ctx)
{
	return is_dns_port(bpf_ntohs((__u16)ctx->user_port));
}

SEC("cgroup/connect4")
int dns_connect4(struct bpf_sock_addr *ctx)
{
	if (dns_peer(ctx))
		remember_owner(bpf_get_socket_cookie(ctx), 0);
	return 1;
}

SEC("cgroup/connect6")
int dns_connect6(struct bpf_sock_addr *ctx)
{
	if (dns_peer(ctx))
		remember_owner(bpf_get_socket_cookie(ctx), 0);
	return 1;
}

// A UDP sendmsg to a DNS port: the egress hook of the same call fills in
// the owner again from current, so a socket whose entry already names this
// thread is left alone here (a full identity costs about a microsecond, and
// a busy resolver answers with sendmsg every time).
static __always_inline void sendmsg_owner(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct ident *o = bpf_map_lookup_elem(&sock_owner, &cookie);
	if (o && o->tid == BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), pid))
		return;
	remember_owner(cookie, 0);
}

SEC("cgroup/sendmsg4")
int dns_sendmsg4(struct bpf_sock_addr *ctx)
{
	if (dns_peer(ctx))
		sendmsg_owner(ctx);
	return 1;
}

SEC("cgroup/sendmsg6")
int dns_sendmsg6(struct bpf_sock_addr *ctx)
{
	if (dns_peer(ctx))
		sendmsg_owner(ctx);
	return 1;
}

// recvmsg hooks run in the reader's context after a datagram was dequeued;
// user_port is the datagram's source port.
static __always_inline int dns_local(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	return sk && is_dns_port(sk->src_port);
}

SEC("cgroup/recvmsg4")
int dns_recvmsg4(struct bpf_sock_addr *ctx)
{
	if (dns_peer(ctx) || dns_local(ctx))
		remember_owner(bpf_get_socket_cookie(ctx), 1);
	return 1;
}

SEC("cgroup/recvmsg6")
int dns_recvmsg6(struct bpf_sock_addr *ctx)
{
	if (dns_peer(ctx) || dns_local(ctx))
		remember_owner(bpf_get_socket_cookie(ctx), 1);
	return 1;
}

// sock_recv_length fires at the end of every sock_recvmsg, in the reader's
// context. It covers the readers no cgroup hook sees: an accepted TCP
// connection (a DNS server's) never passes connect or sendmsg, and a
// connected UDP socket read without an address skips recvmsg4/6. The
// tracepoint exists from Linux 6.3; on older kernels the program is left
// out at load time (bpf/tiers.go) and those sockets stay unattributed.
SEC("tp_btf/sock_recv_length")
int BPF_PROG(dns_sock_recv, struct sock *sk, int ret, int flags)
{
	if (ret <= 0)
		return 0;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != 2 && family != 10) // AF_INET, AF_INET6
		return 0;
	__u16 lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	__u16 rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (!is_dns_flow(lport, rport))
		return 0;
	remember_owner(bpf_get_socket_cookie(sk), 1);
	return 0;
}
