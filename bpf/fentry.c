//go:build ignore

// SPDX-License-Identifier: GPL-2.0
// Hook tier "fentry": BPF trampolines on the functions listed in tracing.h.
// The lowest-overhead tier, with typed arguments; needs BTF and trampoline
// support (about Linux 5.5 on, and not refused by lockdown or policy).
//
// ip_send_skb/ip6_send_skb are only attached where udp_send_skb/
// udp_v6_send_skb are missing from the kernel's BTF (inlined); both sets
// attached would record every datagram twice. bpf/fentry.go decides
// (planFentry).
#include "tracing.h"
#include "tls.h"
#include "guard.h"

SEC("fentry/udp_send_skb")
int BPF_PROG(fe_udp_send_skb, struct sk_buff *skb, struct flowi4 *fl4)
{
	on_udp_send4(skb, fl4);
	return 0;
}

SEC("fentry/udp_v6_send_skb")
int BPF_PROG(fe_udp_v6_send_skb, struct sk_buff *skb, struct flowi6 *fl6)
{
	on_udp_send6(skb, fl6);
	return 0;
}

SEC("fentry/ip_send_skb")
int BPF_PROG(fe_ip_send_skb, struct net *net, struct sk_buff *skb)
{
	udp_from_headers(skb, DIR_SEND, 0);
	return 0;
}

SEC("fentry/ip6_send_skb")
int BPF_PROG(fe_ip6_send_skb, struct sk_buff *skb)
{
	udp_from_headers(skb, DIR_SEND, 0);
	return 0;
}

SEC("fentry/skb_consume_udp")
int BPF_PROG(fe_skb_consume_udp, struct sock *sk, struct sk_buff *skb)
{
	udp_from_headers(skb, DIR_RECV, sk);
	return 0;
}

// The user buffers of UDP sends and receives, for datagrams the kernel
// keeps in page fragments (tracing.h, udp_emit).
SEC("fentry/udp_sendmsg")
int BPF_PROG(fe_udp_sendmsg, struct sock *sk, struct msghdr *msg, size_t len)
{
	on_udp_call(sk, msg, len, 0);
	return 0;
}

SEC("fentry/udpv6_sendmsg")
int BPF_PROG(fe_udpv6_sendmsg, struct sock *sk, struct msghdr *msg, size_t len)
{
	on_udp_call(sk, msg, len, 0);
	return 0;
}

SEC("fentry/udp_recvmsg")
int BPF_PROG(fe_udp_recvmsg, struct sock *sk, struct msghdr *msg)
{
	on_udp_call(sk, msg, 0, 1);
	return 0;
}

SEC("fentry/udpv6_recvmsg")
int BPF_PROG(fe_udpv6_recvmsg, struct sock *sk, struct msghdr *msg)
{
	on_udp_call(sk, msg, 0, 1);
	return 0;
}

SEC("fentry/tcp_sendmsg")
int BPF_PROG(fe_tcp_sendmsg, struct sock *sk, struct msghdr *msg, size_t size)
{
	on_tcp_send(sk, msg, size);
	return 0;
}

SEC("fentry/tcp_recvmsg")
int BPF_PROG(fe_tcp_recvmsg, struct sock *sk, struct msghdr *msg)
{
	on_tcp_recv_entry(sk, msg);
	return 0;
}

// The return value follows the arguments, and tcp_recvmsg lost one in 5.19
// (nonblock) and another in 6.18 (addr_len): one program per signature, and
// bpf/fentry.go keeps the one that matches the kernel's BTF.
SEC("fexit/tcp_recvmsg")
int BPF_PROG(fx_tcp_recvmsg4, struct sock *sk, struct msghdr *msg, size_t len, int flags, int ret)
{
	on_tcp_recv_return(ret);
	return 0;
}

SEC("fexit/tcp_recvmsg")
int BPF_PROG(fx_tcp_recvmsg5, struct sock *sk, struct msghdr *msg, size_t len, int flags, int *addr_len, int ret)
{
	on_tcp_recv_return(ret);
	return 0;
}

SEC("fexit/tcp_recvmsg")
int BPF_PROG(fx_tcp_recvmsg6, struct sock *sk, struct msghdr *msg, size_t len, int nonblock, int flags,
	     int *addr_len, int ret)
{
	on_tcp_recv_return(ret);
	return 0;
}
