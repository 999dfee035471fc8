//go:build ignore

// SPDX-License-Identifier: GPL-2.0
// Hook tier "kprobe": kprobes and kretprobes on the functions listed in
// tracing.h, for kernels with kprobes but without BPF trampolines. Symbol
// names are resolved from /proc/kallsyms at attach time (bpf/kprobe.go),
// because some builds rename static functions (udp_send_skb.isra.0).
#include "tracing.h"
#include "tls.h"
#include "guard.h"

SEC("kprobe/udp_send_skb")
int BPF_KPROBE(kp_udp_send_skb, struct sk_buff *skb, struct flowi4 *fl4)
{
	on_udp_send4(skb, fl4);
	return 0;
}

SEC("kprobe/udp_v6_send_skb")
int BPF_KPROBE(kp_udp_v6_send_skb, struct sk_buff *skb, struct flowi6 *fl6)
{
	on_udp_send6(skb, fl6);
	return 0;
}

SEC("kprobe/ip_send_skb")
int BPF_KPROBE(kp_ip_send_skb, struct net *net, struct sk_buff *skb)
{
	udp_from_headers(skb, DIR_SEND, 0);
	return 0;
}

SEC("kprobe/ip6_send_skb")
int BPF_KPROBE(kp_ip6_send_skb, struct sk_buff *skb)
{
	udp_from_headers(skb, DIR_SEND, 0);
	return 0;
}

SEC("kprobe/skb_consume_udp")
int BPF_KPROBE(kp_skb_consume_udp, struct sock *sk, struct sk_buff *skb)
{
	udp_from_headers(skb, DIR_RECV, sk);
	return 0;
}

// The user buffers of UDP sends and receives, for datagrams the kernel
// keeps in page fragments (tracing.h, udp_emit).
SEC("kprobe/udp_sendmsg")
int BPF_KPROBE(kp_udp_sendmsg, struct sock *sk, struct msghdr *msg, size_t len)
{
	on_udp_call(sk, msg, len, 0);
	return 0;
}

SEC("kprobe/udpv6_sendmsg")
int BPF_KPROBE(kp_udpv6_sendmsg, struct sock *sk, struct msghdr *msg, size_t len)
{
	on_udp_call(sk, msg, len, 0);
	return 0;
}

SEC("kprobe/udp_recvmsg")
int BPF_KPROBE(kp_udp_recvmsg, struct sock *sk, struct msghdr *msg)
{
	on_udp_call(sk, msg, 0, 1);
	return 0;
}

SEC("kprobe/udpv6_recvmsg")
int BPF_KPROBE(kp_udpv6_recvmsg, struct sock *sk, struct msghdr *msg)
{
	on_udp_call(sk, msg, 0, 1);
	return 0;
}

SEC("kprobe/tcp_sendmsg")
int BPF_KPROBE(kp_tcp_sendmsg, struct sock *sk, struct msghdr *msg, size_t size)
{
	on_tcp_send(sk, msg, size);
	return 0;
}

SEC("kprobe/tcp_recvmsg")
int BPF_KPROBE(kp_tcp_recvmsg, struct sock *sk, struct msghdr *msg)
{
	on_tcp_recv_entry(sk, msg);
	return 0;
}

// tcp_recvmsg returns int: reading the whole of rax as a long would turn
// -EAGAIN into 4294967285 bytes received.
SEC("kretprobe/tcp_recvmsg")
int BPF_KRETPROBE(kr_tcp_recvmsg, int ret)
{
	on_tcp_recv_return(ret);
	return 0;
}
