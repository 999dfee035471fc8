// SPDX-License-Identifier: GPL-2.0
// DNS over TLS in clear: the plaintext of TLS connections with a DoT port
// (853, --dot-port) at either end, read at the TLS libraries' write and read
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

// A TLS call in progress on a thread.
struct tls_call {
	__u64 obj;
	__u64 buf;
	__u64 outlen; // size_t* of the _ex forms, else 0
	__u8 dir;
	__u8 lib;
	__u8 bound; // conn holds the socket of a system call made inside the call
	__u8 _pad[5];
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

static __always_inline int is_dot_port(__u16 port)
{
#pragma unroll
	for (int i = 0; i < MAX_PORTS; i++) {
		if (dot_ports[i] != 0 && dot_ports[i] == port)
			return 1;
	}
	return 0;
}

// tls_fd_conn reads the TCP socket behind the current task's fd; 0 if fd is
// not an AF_INET/AF_INET6 TCP socket.
static __always_inline int tls_fd_conn(__u32 fd, struct tls_conn *c)
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
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	__u16 fam = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (fam != TLS_AF_INET && fam != TLS_AF_INET6)
		return 0;
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
// sendto, recvfrom, sendmsg, recvmsg.
#if defined(__TARGET_ARCH_x86)
#define TLS_RW_SYSCALL(n) ((n) == 0 || (n) == 1 || (n) == 19 || (n) == 20 || ((n) >= 44 && (n) <= 47))
#else // arm64 (asm-generic numbers)
#define TLS_RW_SYSCALL(n) (((n) >= 63 && (n) <= 66) || (n) == 206 || (n) == 207 || (n) == 211 || (n) == 212)
#endif

// tp_btf rather than the syscalls/ perf tracepoints: those need a mounted
// tracefs to be attached, and this is one program for all eight calls. It
// runs on every system call of every process, so the number comes first.
SEC("tp_btf/sys_enter")
int BPF_PROG(tls_sys_enter, struct pt_regs *regs, long nr)
{
	if (!TLS_RW_SYSCALL(nr))
		return 0;
	tls_on_sys(PT_REGS_PARM1_CORE_SYSCALL(regs));
	return 0;
}

static __always_inline void tls_enter(__u64 obj, __u64 buf, __u64 outlen, __u8 dir, __u8 lib)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call c = {.obj = obj, .buf = buf, .outlen = outlen, .dir = dir, .lib = lib};
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
	h.boot_ns = bpf_ktime_get_boot_ns();
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
	if (!(h.flags & TLS_F_UNBOUND) && !is_dot_port(h.conn.lport) && !is_dot_port(h.conn.rport))
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
