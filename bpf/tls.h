// SPDX-License-Identifier: GPL-2.0
// DNS over TLS and HTTPS in clear: the plaintext of TLS connections with a
// DoT port (853, --dot-port) at either end, or a client's to a DoH port (443,
// --doh-port), read at the TLS libraries' write and read
// calls (OpenSSL's SSL_write/SSL_read and their _ex forms, GnuTLS's
// gnutls_record_send/recv). Included by every tier after common.h: uprobes
// and tp_btf run on all of them. bpf/tls.go attaches the uprobes per library
// file, like the libc resolver probes.
//
// The plaintext is tied to its connection without any struct offset of the
// TLS library, so that it survives library releases:
//   1. the entry probe notes the thread (pid_tgid), the library object (SSL*,
//      gnutls_session_t) and the buffer;
//   2. a library with a socket BIO makes its send or receive system call on
//      the calling thread before it returns: tls_sys_enter (tp_btf/sys_enter)
//      takes the fd and resolves it through the current task's fd table to
//      its TCP socket (CO-RE reads of kernel structs only), and remembers the
//      object's socket (tls_objs) for calls that make no system call;
//   3. the return probe copies the plaintext, only if a port matches.
// An application with a memory BIO (it moves the ciphertext itself) makes no
// system call inside the library: the thread is armed, and its next send or
// receive system call binds the object (EV_TLS_BIND). Plaintext seen before
// that is emitted flagged TLS_F_UNBOUND; user space keeps or drops it when
// the bind arrives.
#pragma once

#define TLS_MAX_DATA 16384 // one TLS record's plaintext at most
#define TLS_AF_INET 2
#define TLS_AF_INET6 10
#define TLS_S_IFMT 00170000
#define TLS_S_IFSOCK 0140000

enum tls_lib {
	TLS_LIB_OPENSSL = 1,
	TLS_LIB_GNUTLS = 2,
	TLS_LIB_GO = 3, // crypto/tls compiled into a Go executable
};

enum tls_flags {
	TLS_F_UNBOUND = 1, // no socket known yet for this object (memory BIO)
	TLS_F_CUT = 2,     // the call moved more than TLS_MAX_DATA bytes: data holds the first ones
	TLS_F_SYSCALL = 4, // the socket came from a system call made inside this very call
};

struct tls_conn {
	__u16 family; // 4 or 6
	__u16 lport;  // host byte order
	__u16 rport;
	__u16 _pad;
	__u8 laddr[16]; // IPv4 in the first 4 bytes
	__u8 raddr[16];
};

// The head of a TLS record, built on the stack (an ident is too big there).
struct tls_head {
	__u8 kind;
	__u8 dir; // DIR_SEND or DIR_RECV
	__u8 lib;
	__u8 flags;
	__u32 len; // bytes the call moved
	__u32 cap; // of them, bytes that follow the record's header
	__u32 _pad;
	__u64 obj; // SSL* or gnutls_session_t
	__u64 boot_ns;
	struct tls_conn conn;
};

// EV_TLS_DATA: head, identity, then cap plaintext bytes. EV_TLS_BIND: the
// head and id.pid, id.tid only, no data: obj is bound to conn.
struct tls_event {
	struct tls_head head;
	struct ident id;
};

// DoT ports to capture at either end; set from Go before load.
volatile const __u16 dot_ports[MAX_PORTS] = {853};
// DoH ports: the plaintext of client connections to them is copied (443 and
// --doh-port); set from Go before load.
volatile const __u16 doh_ports[MAX_PORTS] = {443};

// A TLS call in progress on a thread.
struct tls_call {
	__u64 obj;
	__u64 buf;
	__u64 outlen; // size_t* of the _ex forms, else 0
	__u8 dir;
	__u8 lib;
	__u8 bound; // conn holds the socket of a system call made inside the call
	__u8 _pad[5];
	__u64 start_ns; // boot time at the call's entry
	struct tls_conn conn;
};

struct tls_obj_key {
	__u64 obj;
	__u32 tgid;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); // pid_tgid
	__type(value, struct tls_call);
} tls_active SEC(".maps");

// (tgid, object) -> its socket, kept between calls.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tls_obj_key);
	__type(value, struct tls_conn);
} tls_objs SEC(".maps");

// Threads whose last TLS call had no socket (memory BIO): pid_tgid -> object.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct tls_obj_key);
} tls_armed SEC(".maps");

// Threads inside gnutls_record_uncork. Uncork sends the records buffered by
// gnutls_record_send calls made while corked through gnutls_record_send
// again: that plaintext was already emitted once.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} tls_uncork SEC(".maps");

// Objects whose connection user space found not to be DNS (its first HTTP
// request was not DoH): nothing more of them is copied. (tgid, object) -> 1.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tls_obj_key);
	__type(value, __u8);
} tls_skip SEC(".maps");

static __always_inline int is_doh_port(__u16 port)
{
#pragma unroll
	for (int i = 0; i < MAX_PORTS; i++) {
		if (doh_ports[i] != 0 && doh_ports[i] == port)
			return 1;
	}
	return 0;
}

static __always_inline int is_dot_port(__u16 port)
{
#pragma unroll
	for (int i = 0; i < MAX_PORTS; i++) {
		if (dot_ports[i] != 0 && dot_ports[i] == port)
			return 1;
	}
	return 0;
}

// fd_sock returns the socket behind the current task's fd, 0 if fd is not
// an AF_INET/AF_INET6 socket.
static __always_inline struct sock *fd_sock(__u32 fd)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return 0;
	umode_t mode = BPF_CORE_READ(f, f_inode, i_mode);
	if ((mode & TLS_S_IFMT) != TLS_S_IFSOCK)
		return 0;
	struct socket *so = BPF_CORE_READ(f, private_data);
	struct sock *sk = BPF_CORE_READ(so, sk);
	if (!sk)
		return 0;
	__u16 fam = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (fam != TLS_AF_INET && fam != TLS_AF_INET6)
		return 0;
	return sk;
}

// sock_conn reads a socket's addresses and ports.
static __always_inline void sock_conn(struct sock *sk, struct tls_conn *c)
{
	__u16 fam = BPF_CORE_READ(sk, __sk_common.skc_family);
	c->family = fam == TLS_AF_INET ? 4 : 6;
	c->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	c->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	c->_pad = 0;
	// BPF_CORE_READ_INTO would copy sizeof(*dst) bytes: one, for an array.
	__builtin_memset(c->laddr, 0, sizeof(c->laddr));
	__builtin_memset(c->raddr, 0, sizeof(c->raddr));
	if (fam == TLS_AF_INET) {
		__u32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 r = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(c->laddr, &l, 4);
		__builtin_memcpy(c->raddr, &r, 4);
	} else {
		bpf_core_read(c->laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(c->raddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

// tls_fd_conn reads the TCP socket behind the current task's fd; 0 if fd is
// not an AF_INET/AF_INET6 TCP socket.
static __always_inline int tls_fd_conn(__u32 fd, struct tls_conn *c)
{
	struct sock *sk = fd_sock(fd);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	sock_conn(sk, c);
	return 1;
}

static __always_inline void tls_emit_bind(__u64 id, __u64 obj, __u8 lib, const struct tls_conn *c)
{
	struct tls_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		count_drop();
		return;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->head.kind = EV_TLS_BIND;
	ev->head.lib = lib;
	ev->head.obj = obj;
	ev->head.boot_ns = bpf_ktime_get_boot_ns();
	ev->head.conn = *c;
	ev->id.pid = id >> 32;
	ev->id.tid = (__u32)id;
	bpf_ringbuf_submit(ev, 0);
}

// tls_on_sys runs at a send or receive system call on fd. Inside a TLS call
// it ties the call's object to the socket; outside, on an armed thread, it
// binds the object of the thread's last unbound TLS call.
static __always_inline void tls_on_sys(__u64 fd)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call *call = bpf_map_lookup_elem(&tls_active, &id);
	if (call) {
		if (call->bound)
			return;
		if (!tls_fd_conn((__u32)fd, &call->conn))
			return;
		call->bound = 1;
		struct tls_obj_key k = {.obj = call->obj, .tgid = id >> 32};
		struct tls_conn *old = bpf_map_lookup_elem(&tls_objs, &k);
		int fresh = !old || old->lport != call->conn.lport || old->rport != call->conn.rport;
		bpf_map_update_elem(&tls_objs, &k, &call->conn, BPF_ANY);
		struct tls_obj_key *armed = bpf_map_lookup_elem(&tls_armed, &id);
		if (armed && armed->obj == call->obj)
			bpf_map_delete_elem(&tls_armed, &id);
		// User space holds the object's unbound plaintext until this.
		if (fresh)
			tls_emit_bind(id, call->obj, call->lib, &call->conn);
		return;
	}
	struct tls_obj_key *armed = bpf_map_lookup_elem(&tls_armed, &id);
	if (!armed)
		return;
	struct tls_obj_key k = *armed;
	struct tls_conn c = {};
	if (!tls_fd_conn((__u32)fd, &c))
		return;
	bpf_map_delete_elem(&tls_armed, &id);
	bpf_map_update_elem(&tls_objs, &k, &c, BPF_ANY);
	tls_emit_bind(id, k.obj, 0, &c);
}

// The send and receive system calls by number: read, write, readv, writev,
// sendto, recvfrom, sendmsg, recvmsg; and the ones enc_on_sys looks at.
#if defined(__TARGET_ARCH_x86)
#define TLS_RW_SYSCALL(n) ((n) == 0 || (n) == 1 || (n) == 19 || (n) == 20 || ((n) >= 44 && (n) <= 47))
#define NR_CONNECT 42
#define NR_WRITE 1
#define NR_WRITEV 20
#define NR_SENDTO 44
#define NR_SENDMSG 46
#else // arm64 (asm-generic numbers)
#define TLS_RW_SYSCALL(n) (((n) >= 63 && (n) <= 66) || (n) == 206 || (n) == 207 || (n) == 211 || (n) == 212)
#define NR_CONNECT 203
#define NR_WRITE 64
#define NR_WRITEV 66
#define NR_SENDTO 206
#define NR_SENDMSG 211
#endif

// Encrypted DNS that cannot be opened is still on record: every connection
// a process opens (connect) or sends to (sendto, sendmsg with an address)
// to a DoT port (853, --dot-port), TCP or UDP (DoQ), or to port 443 of a
// known DoH/DoT resolver address (enc_addrs, filled from Go) makes an
// EV_ENC_CONN record in the process's own context, with its identity. The
// (tgid, fd) is then marked, and the first bytes the process sends on it
// (a TLS ClientHello, whose SNI user space reads) make one EV_ENC_HELLO,
// with both ends of the socket.

#define ENC_HELLO_MAX 2048 // a ClientHello with a post-quantum key share fits
#define ENC_DOH_PORT 443

enum enc_via {
	ENC_VIA_CONNECT = 1,
	ENC_VIA_SENDTO = 2,
	ENC_VIA_SENDMSG = 3,
};

enum enc_match {
	ENC_MATCH_PORT = 1,     // a DoT port
	ENC_MATCH_RESOLVER = 2, // 443 on a listed resolver address
};

struct enc_event {
	__u8 kind;  // EV_ENC_CONN, EV_ENC_HELLO
	__u8 proto; // IPPROTO_TCP or IPPROTO_UDP
	__u8 via;   // enum enc_via
	__u8 match; // enum enc_match
	__u32 fd;
	__u32 len; // bytes the call sent (EV_ENC_HELLO)
	__u32 cap; // of them, bytes that follow the record
	__u64 boot_ns;
	struct tls_conn conn; // EV_ENC_CONN: the remote end only; EV_ENC_HELLO: both
	struct ident id;      // EV_ENC_HELLO: id.pid and id.tid only
};

// A resolver address: family 4 or 6, IPv4 in the first 4 bytes.
struct enc_addr {
	__u8 family;
	__u8 _pad[3];
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct enc_addr);
	__type(value, __u8);
} enc_addrs SEC(".maps");

// A marked (tgid, fd): the remote it was seen going to, and whether its
// first bytes are still to be copied.
struct enc_mark {
	struct tls_conn conn;
	__u8 hello; // 1 until the first send was copied
	__u8 _pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); // tgid << 32 | fd
	__type(value, struct enc_mark);
} enc_fds SEC(".maps");

// enc_sockaddr reads a user sockaddr into c's remote end; 0 if it is not
// AF_INET/AF_INET6. An IPv4-mapped IPv6 address is taken as IPv4.
static __always_inline int enc_sockaddr(__u64 uaddr, struct tls_conn *c)
{
	struct {
		__u16 family;
		__u16 port;
		__u32 v4; // sin_addr, or sin6_flowinfo
		__u8 v6[16];
	} sa = {};
	if (!uaddr || bpf_probe_read_user(&sa, 8, (void *)uaddr))
		return 0;
	__builtin_memset(c, 0, sizeof(*c));
	c->rport = bpf_ntohs(sa.port);
	if (sa.family == TLS_AF_INET) {
		c->family = 4;
		__builtin_memcpy(c->raddr, &sa.v4, 4);
		return 1;
	}
	if (sa.family != TLS_AF_INET6 || bpf_probe_read_user(&sa.v6, 16, (void *)(uaddr + 8)))
		return 0;
	__u32 w[4];
	__builtin_memcpy(w, sa.v6, 16);
	if (w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0xffff)) {
		c->family = 4;
		__builtin_memcpy(c->raddr, &w[3], 4);
		return 1;
	}
	c->family = 6;
	__builtin_memcpy(c->raddr, sa.v6, 16);
	return 1;
}

// enc_wanted says whether the remote end c is encrypted DNS (enum enc_match).
static __always_inline int enc_wanted(const struct tls_conn *c)
{
	if (is_dot_port(c->rport))
		return ENC_MATCH_PORT;
	if (c->rport != ENC_DOH_PORT)
		return 0;
	struct enc_addr k = {.family = c->family};
	__builtin_memcpy(k.addr, c->raddr, 16);
	return bpf_map_lookup_elem(&enc_addrs, &k) ? ENC_MATCH_RESOLVER : 0;
}

static __always_inline void enc_emit_conn(__u32 fd, __u8 proto, __u8 via, __u8 match, const struct tls_conn *c)
{
	struct enc_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		count_drop();
		return;
	}
	__builtin_memset(ev, 0, sizeof(struct enc_event) - sizeof(struct ident));
	ev->kind = EV_ENC_CONN;
	ev->proto = proto;
	ev->via = via;
	ev->match = match;
	ev->fd = fd;
	ev->boot_ns = bpf_ktime_get_boot_ns();
	ev->conn = *c;
	fill_ident(&ev->id);
	bpf_ringbuf_submit(ev, 0);
}

// enc_emit_hello copies the first bytes of a marked socket's first send.
static __always_inline void enc_emit_hello(__u32 fd, struct sock *sk, __u64 buf, __u64 len)
{
	if (!buf || len == 0)
		return;
	__u64 cap = len > ENC_HELLO_MAX ? ENC_HELLO_MAX : len;
	struct enc_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev) + ENC_HELLO_MAX, 0);
	if (!ev) {
		count_drop();
		return;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->kind = EV_ENC_HELLO;
	ev->proto = BPF_CORE_READ(sk, sk_protocol);
	ev->fd = fd;
	ev->len = len;
	ev->boot_ns = bpf_ktime_get_boot_ns();
	sock_conn(sk, &ev->conn);
	__u64 id = bpf_get_current_pid_tgid();
	ev->id.pid = id >> 32;
	ev->id.tid = (__u32)id;
	if (bpf_probe_read_user((__u8 *)(ev + 1), cap_mask(cap, ENC_HELLO_MAX), (void *)buf) == 0)
		ev->cap = cap;
	bpf_ringbuf_submit(ev, 0);
}

// enc_first_iov reads the first buffer of an iovec array.
static __always_inline void enc_first_iov(__u64 iov, __u64 *buf, __u64 *len)
{
	struct iovec v = {};
	if (iov && bpf_probe_read_user(&v, sizeof(v), (void *)iov) == 0) {
		*buf = (__u64)v.iov_base;
		*len = v.iov_len;
	}
}

static __always_inline int enc_same_remote(const struct tls_conn *a, const struct tls_conn *b)
{
	__u32 x[4], y[4];
	__builtin_memcpy(x, a->raddr, 16);
	__builtin_memcpy(y, b->raddr, 16);
	return a->family == b->family && a->rport == b->rport &&
	       x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

// enc_on_sys runs at connect and at every send system call.
static __always_inline void enc_on_sys(struct pt_regs *regs, long nr)
{
	__u32 fd = PT_REGS_PARM1_CORE_SYSCALL(regs);
	__u64 key = (bpf_get_current_pid_tgid() & 0xffffffff00000000ULL) | fd;
	__u64 uaddr = 0, buf = 0, len = 0;
	__u8 via = 0;
	if (nr == NR_CONNECT) {
		uaddr = PT_REGS_PARM2_CORE_SYSCALL(regs);
		via = ENC_VIA_CONNECT;
	} else if (nr == NR_SENDTO) {
		buf = PT_REGS_PARM2_CORE_SYSCALL(regs);
		len = PT_REGS_PARM3_CORE_SYSCALL(regs);
		uaddr = PT_REGS_PARM5_CORE_SYSCALL(regs);
		via = ENC_VIA_SENDTO;
	} else if (nr == NR_SENDMSG) {
		struct user_msghdr m = {};
		if (bpf_probe_read_user(&m, sizeof(m), (void *)PT_REGS_PARM2_CORE_SYSCALL(regs)))
			return;
		uaddr = (__u64)m.msg_name;
		if (!m.msg_namelen)
			uaddr = 0;
		enc_first_iov((__u64)m.msg_iov, &buf, &len);
		via = ENC_VIA_SENDMSG;
	} else if (nr == NR_WRITE) {
		buf = PT_REGS_PARM2_CORE_SYSCALL(regs);
		len = PT_REGS_PARM3_CORE_SYSCALL(regs);
	} else if (nr == NR_WRITEV) {
		enc_first_iov(PT_REGS_PARM2_CORE_SYSCALL(regs), &buf, &len);
	} else {
		return;
	}

	struct enc_mark *mark = 0;
	struct tls_conn c;
	if (uaddr && enc_sockaddr(uaddr, &c)) {
		int match = enc_wanted(&c);
		if (!match) {
			// A reused fd (connect) must not keep another socket's mark.
			if (via == ENC_VIA_CONNECT)
				bpf_map_delete_elem(&enc_fds, &key);
			return;
		}
		mark = bpf_map_lookup_elem(&enc_fds, &key);
		// A sendto to the same remote as before is the same flow.
		if (via == ENC_VIA_CONNECT || !mark || !enc_same_remote(&mark->conn, &c)) {
			struct sock *sk = fd_sock(fd);
			if (!sk)
				return;
			__u8 proto = BPF_CORE_READ(sk, sk_protocol);
			if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
				return;
			enc_emit_conn(fd, proto, via, match, &c);
			struct enc_mark m = {.conn = c, .hello = 1};
			bpf_map_update_elem(&enc_fds, &key, &m, BPF_ANY);
			if (via == ENC_VIA_CONNECT)
				return;
			mark = bpf_map_lookup_elem(&enc_fds, &key);
		}
	} else {
		if (via == ENC_VIA_CONNECT)
			return;
		mark = bpf_map_lookup_elem(&enc_fds, &key);
	}
	if (!mark || !mark->hello)
		return;
	mark->hello = 0;
	struct sock *sk = fd_sock(fd);
	if (sk)
		enc_emit_hello(fd, sk, buf, len);
}

// tp_btf rather than the syscalls/ perf tracepoints: those need a mounted
// tracefs to be attached, and this is one program for all the calls. It
// runs on every system call of every process, so the number comes first.
SEC("tp_btf/sys_enter")
int BPF_PROG(tls_sys_enter, struct pt_regs *regs, long nr)
{
	if (nr == NR_CONNECT) {
		enc_on_sys(regs, nr);
		return 0;
	}
	if (!TLS_RW_SYSCALL(nr))
		return 0;
	if (nr == NR_WRITE || nr == NR_WRITEV || nr == NR_SENDTO || nr == NR_SENDMSG)
		enc_on_sys(regs, nr);
	tls_on_sys(PT_REGS_PARM1_CORE_SYSCALL(regs));
	return 0;
}

static __always_inline void tls_enter(__u64 obj, __u64 buf, __u64 outlen, __u8 dir, __u8 lib)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call c = {.obj = obj, .buf = buf, .outlen = outlen, .dir = dir, .lib = lib, .start_ns = bpf_ktime_get_boot_ns()};
	bpf_map_update_elem(&tls_active, &id, &c, BPF_ANY);
}

// TLS_RESERVE_CLASS reserves a record for cap plaintext bytes in the size
// class N, fills it and submits it; it returns from the calling function.
// Data records are messages: a full ring counts them in msg_drops.
#define TLS_RESERVE_CLASS(N)                                                          \
	if (cap <= N) {                                                               \
		struct tls_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev) + N, 0); \
		if (!ev) {                                                            \
			count_msg_drop();                                             \
			return;                                                       \
		}                                                                     \
		ev->head = h;                                                         \
		fill_ident(&ev->id);                                                  \
		if (bpf_probe_read_user((__u8 *)(ev + 1), cap_mask(cap, N), (void *)buf)) \
			ev->head.cap = 0;                                             \
		bpf_ringbuf_submit(ev, 0);                                            \
		return;                                                               \
	}

static __always_inline void tls_data(__u64 id, const struct tls_call *cp, __u64 n);

// tls_leave runs at the return of a probed call. ret is the library's return
// value; for the _ex forms, 1 on success with the byte count at outlen.
static __always_inline void tls_leave(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call *call = bpf_map_lookup_elem(&tls_active, &id);
	if (!call)
		return;
	struct tls_call c = *call;
	bpf_map_delete_elem(&tls_active, &id);

	if (c.lib == TLS_LIB_GNUTLS && c.dir == DIR_SEND && bpf_map_lookup_elem(&tls_uncork, &id))
		return;

	__u64 n = 0;
	if (c.outlen) {
		if (ret != 1 || bpf_probe_read_user(&n, sizeof(n), (void *)c.outlen))
			return;
	} else {
		if (ret <= 0)
			return;
		n = ret;
	}
	if (n == 0)
		return;
	tls_data(id, &c, n);
}

// tls_data emits the n bytes of plaintext a call moved at c->buf, tied to
// the socket of a system call made inside the call, else to the object's
// known socket, else flagged unbound with the thread armed.
static __always_inline void tls_data(__u64 id, const struct tls_call *cp, __u64 n)
{
	struct tls_call c = *cp;
	struct tls_head h = {};
	h.kind = EV_TLS_DATA;
	h.dir = c.dir;
	h.lib = c.lib;
	h.obj = c.obj;
	h.len = n;
	// Plaintext handed to a write is sent from the call's entry on (the
	// peer may answer before the library returns); a read's is received
	// at its return.
	h.boot_ns = c.dir == DIR_SEND && c.start_ns ? c.start_ns : bpf_ktime_get_boot_ns();
	if (c.bound) {
		h.flags |= TLS_F_SYSCALL;
		h.conn = c.conn;
	} else {
		struct tls_obj_key k = {.obj = c.obj, .tgid = id >> 32};
		struct tls_conn *known = bpf_map_lookup_elem(&tls_objs, &k);
		if (known) {
			h.conn = *known;
		} else {
			// Memory BIO (or a socket this cannot read): bound at the
			// thread's next send or receive; user space decides then.
			h.flags |= TLS_F_UNBOUND;
			bpf_map_update_elem(&tls_armed, &id, &k, BPF_ANY);
		}
	}
	// DoT at either end; DoH only as the client (to a DoH port), since a
	// server on 443 serves far more than DNS.
	if (!(h.flags & TLS_F_UNBOUND) && !is_dot_port(h.conn.lport) && !is_dot_port(h.conn.rport) &&
	    !is_doh_port(h.conn.rport))
		return;
	struct tls_obj_key sk = {.obj = c.obj, .tgid = id >> 32};
	if (bpf_map_lookup_elem(&tls_skip, &sk))
		return;

	__u64 cap = n;
	if (n > TLS_MAX_DATA) {
		cap = TLS_MAX_DATA;
		h.flags |= TLS_F_CUT;
	}
	h.cap = cap;
	__u64 buf = c.buf;
	TLS_RESERVE_CLASS(512)
	TLS_RESERVE_CLASS(2048)
	TLS_RESERVE_CLASS(TLS_MAX_DATA)
}

// OpenSSL: int SSL_write(SSL *s, const void *buf, int num), SSL_read(SSL *s,
// void *buf, int num); int SSL_write_ex(SSL *s, const void *buf, size_t num,
// size_t *written), SSL_read_ex(..., size_t *readbytes).
SEC("uprobe")
int BPF_KPROBE(tls_ssl_write, void *s, const void *buf)
{
	tls_enter((__u64)s, (__u64)buf, 0, DIR_SEND, TLS_LIB_OPENSSL);
	return 0;
}
SEC("uprobe")
int BPF_KPROBE(tls_ssl_read, void *s, void *buf)
{
	tls_enter((__u64)s, (__u64)buf, 0, DIR_RECV, TLS_LIB_OPENSSL);
	return 0;
}
SEC("uprobe")
int BPF_KPROBE(tls_ssl_write_ex, void *s, const void *buf, __u64 num, __u64 *written)
{
	tls_enter((__u64)s, (__u64)buf, (__u64)written, DIR_SEND, TLS_LIB_OPENSSL);
	return 0;
}
SEC("uprobe")
int BPF_KPROBE(tls_ssl_read_ex, void *s, void *buf, __u64 num, __u64 *readbytes)
{
	tls_enter((__u64)s, (__u64)buf, (__u64)readbytes, DIR_RECV, TLS_LIB_OPENSSL);
	return 0;
}
// GnuTLS: ssize_t gnutls_record_send(gnutls_session_t, const void *, size_t),
// gnutls_record_recv(gnutls_session_t, void *, size_t).
SEC("uprobe")
int BPF_KPROBE(tls_gnutls_send, void *s, const void *buf)
{
	tls_enter((__u64)s, (__u64)buf, 0, DIR_SEND, TLS_LIB_GNUTLS);
	return 0;
}
SEC("uprobe")
int BPF_KPROBE(tls_gnutls_recv, void *s, void *buf)
{
	tls_enter((__u64)s, (__u64)buf, 0, DIR_RECV, TLS_LIB_GNUTLS);
	return 0;
}

// One return program per return type serves every function: the entry noted
// what to do. OpenSSL's calls return int in a 64-bit register: sign-extend
// it, so that -1 is not taken for a 4 GiB success.
SEC("uretprobe")
int BPF_KRETPROBE(tls_ret_int, long ret)
{
	tls_leave((int)ret);
	return 0;
}
SEC("uretprobe")
int BPF_KRETPROBE(tls_ret_long, long ret)
{
	tls_leave(ret);
	return 0;
}

// SSL_free / gnutls_deinit: forget the object, its address will be reused.
SEC("uprobe")
int BPF_KPROBE(tls_free, void *s)
{
	struct tls_obj_key k = {.obj = (__u64)s, .tgid = bpf_get_current_pid_tgid() >> 32};
	bpf_map_delete_elem(&tls_objs, &k);
	bpf_map_delete_elem(&tls_skip, &k);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(tls_gnutls_uncork)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u8 one = 1;
	bpf_map_update_elem(&tls_uncork, &id, &one, BPF_ANY);
	return 0;
}
SEC("uretprobe")
int BPF_KRETPROBE(tls_gnutls_uncork_ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	bpf_map_delete_elem(&tls_uncork, &id);
	return 0;
}

// Go programs: crypto/tls is compiled into the executable, and bpf/gotls.go
// attaches these to (*Conn).Write, (*Conn).Read and (*Conn).Close found in
// its own symbol table. Go's register ABI (1.17 and later) passes the
// receiver and the slice b in the first three integer registers, and keeps
// the goroutine (g) in a register of its own.
//
// A return probe would push a return address the Go runtime does not know
// of, and Go copies goroutine stacks: a uretprobe crashes the program. So
// Read's return is probed at each of its RET instructions instead, and its
// entry and return are matched by goroutine, not thread: a goroutine that
// blocks in Read may resume on another thread.
//
// The *tls.Conn is the object. Its first Write arms the thread, whose next
// send system call (the handshake's or the record's, made by the same
// goroutine before it can block) binds it to the socket (tls_on_sys);
// Reads on the same Conn then find the binding in tls_objs.
#if defined(__TARGET_ARCH_x86)
#define GO_PARM1(x) (__PT_REGS_CAST(x)->ax)
#define GO_PARM2(x) (__PT_REGS_CAST(x)->bx)
#define GO_PARM3(x) (__PT_REGS_CAST(x)->cx)
#define GO_G(x) (__PT_REGS_CAST(x)->r14)
#else
#define GO_PARM1(x) (__PT_REGS_CAST(x)->regs[0])
#define GO_PARM2(x) (__PT_REGS_CAST(x)->regs[1])
#define GO_PARM3(x) (__PT_REGS_CAST(x)->regs[2])
#define GO_G(x) (__PT_REGS_CAST(x)->regs[28])
#endif

struct go_read_key {
	__u64 g;
	__u32 tgid;
	__u32 _pad;
};

struct go_read {
	__u64 conn;
	__u64 buf;
};

// Reads in progress, by goroutine.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_read_key);
	__type(value, struct go_read);
} go_reads SEC(".maps");

// func (c *Conn) Write(b []byte) (int, error): the plaintext is all there
// at the entry; a failed Write still counts as what the program meant.
SEC("uprobe")
int go_tls_write(struct pt_regs *ctx)
{
	__s64 n = GO_PARM3(ctx);
	if (n <= 0)
		return 0;
	struct tls_call c = {.obj = GO_PARM1(ctx), .buf = GO_PARM2(ctx), .dir = DIR_SEND, .lib = TLS_LIB_GO};
	tls_data(bpf_get_current_pid_tgid(), &c, n);
	return 0;
}

// func (c *Conn) Read(b []byte) (int, error), at its entry.
SEC("uprobe")
int go_tls_read(struct pt_regs *ctx)
{
	struct go_read_key k = {.g = GO_G(ctx), .tgid = bpf_get_current_pid_tgid() >> 32};
	struct go_read r = {.conn = GO_PARM1(ctx), .buf = GO_PARM2(ctx)};
	bpf_map_update_elem(&go_reads, &k, &r, BPF_ANY);
	return 0;
}

// At each RET of (*Conn).Read: n is the first result.
SEC("uprobe")
int go_tls_read_ret(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct go_read_key k = {.g = GO_G(ctx), .tgid = id >> 32};
	struct go_read *r = bpf_map_lookup_elem(&go_reads, &k);
	if (!r)
		return 0;
	struct tls_call c = {.obj = r->conn, .buf = r->buf, .dir = DIR_RECV, .lib = TLS_LIB_GO};
	bpf_map_delete_elem(&go_reads, &k);
	__s64 n = GO_PARM1(ctx);
	if (n <= 0)
		return 0;
	tls_data(id, &c, n);
	return 0;
}

// func (c *Conn) Close() error: forget the Conn, its address will be reused.
SEC("uprobe")
int go_tls_close(struct pt_regs *ctx)
{
	struct tls_obj_key k = {.obj = GO_PARM1(ctx), .tgid = bpf_get_current_pid_tgid() >> 32};
	bpf_map_delete_elem(&tls_objs, &k);
	return 0;
}

const struct tls_event *unused_tls_event __attribute__((unused));
const struct tls_head *unused_tls_head __attribute__((unused));
const struct enc_event *unused_enc_event __attribute__((unused));
