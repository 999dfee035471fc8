// SPDX-License-Identifier: GPL-2.0
// Shared by every hook tier: the event layout that user space decodes, the
// maps, process identity collection and the process-table programs
// (sched_process_exec / sched_process_exit), which use tp_btf and therefore
// run on every kernel dnsrec supports.
//
// Rules for the kernel side (see ../README.md, "Architecture"):
//   - filter by port, copy the DNS bytes and the identity, count drops;
//   - never parse DNS here: Go does that;
//   - never block traffic: every cgroup program returns 1 (allow).
#pragma once

// One vmlinux.h per architecture (bpf2go defines __TARGET_ARCH_*, see gen.go):
// x86 from an amd64 kernel's BTF, arm64 from Debian's 6.12 cloud-arm64 kernel's
// (Makefile, vmlinux-arm64). Field offsets are relocated at load time (CO-RE)
// either way; the header must only be of the right architecture.
#if defined(__TARGET_ARCH_arm64)
#include "headers/arm64/vmlinux.h"
#elif defined(__TARGET_ARCH_x86)
#include "headers/x86/vmlinux.h"
#else
#error "no vmlinux.h for this target: build with bpf2go -target amd64 or arm64"
#endif
#include "headers/bpf_helpers.h"
#include "headers/bpf_core_read.h"
#include "headers/bpf_endian.h"
#include "headers/bpf_tracing.h"

char __license[] SEC("license") = "GPL";

#define MAX_ANCESTORS 16   // parent chain depth kept per message
#define MAX_PORTS 8        // DNS ports to capture (--port)
#define MAX_SNAP 65536     // upper bound for --snaplen, and its default: the largest size class
#define NAME_SLOT 128      // one exe path component, NUL included
#define PATH_DEPTH 32      // components (and mount crossings) walked per exe path
#define ARGS_MAX 2048      // argv bytes kept per exec

// Event kinds: the first byte of every ring buffer record.
enum event_kind {
	EV_DNS = 1,   // struct dns_event + DNS payload
	EV_EXEC = 2,  // struct exec_event + path components + argv
	EV_EXIT = 3,  // struct exec_event, no data
	EV_OWNER = 4, // struct dns_event, no payload: a socket's owner became known
	EV_RESOLVE = 5, // struct resolve_event: a libc resolver call returned (uprobes)
	EV_TLS_DATA = 6, // struct tls_event + plaintext of a TLS call (tls.h)
	EV_TLS_BIND = 7, // struct tls_event, no data: a TLS object's socket became known
	EV_SIGNAL = 8, // struct signal_event: another process signalled the recorder (guard.h)
	EV_ENC_CONN = 12,  // struct enc_event, no data: a connection to an encrypted-DNS server (tls.h)
	EV_ENC_HELLO = 13, // struct enc_event + the first bytes sent on such a connection
};

#define RES_NAME 256 // name bytes kept per libc resolution, NUL included
#define RES_ADDRS 16 // distinct addresses kept per libc resolution

// resolve_event.func: the libc entry point that returned.
enum resolve_func {
	RES_GETADDRINFO = 1,
	RES_GETHOSTBYNAME_R = 2,  // also gethostbyname(), which glibc implements with it
	RES_GETHOSTBYNAME2_R = 3, // also gethostbyname2()
};

// resolve_event.flags
enum resolve_flags {
	RES_NAME_CUT = 1,  // the name was longer than RES_NAME - 1 bytes
	RES_ADDRS_CUT = 2, // the result held more than RES_ADDRS addresses
	RES_NESTED = 4,    // made while the same thread was inside another probed call
	                   // (glibc's getaddrinfo calls gethostbyname2_r for AF_INET)
};

// dns_event.flags
enum dns_flags {
	F_IDENT = 1,         // id holds the owning process
	F_IDENT_CURRENT = 2, // id was read from current (process context), not from the socket map
};

enum direction {
	DIR_SEND = 0,
	DIR_RECV = 1,
};

struct ancestor {
	__u64 start_ns; // start_boottime of the thread group leader
	__u32 pid;      // tgid
	char comm[16];  // comm of the thread group leader
	__u32 _pad;
};

// Who a message belongs to. Read in the owner's own context, so it stays
// true even if the process exits before user space sees the event.
struct ident {
	__u64 start_ns;  // start_boottime of the thread group leader
	__u64 cgroup_id; // cgroup v2 id
	__u32 pid;       // tgid
	__u32 tid;
	__u32 uid;
	__u32 gid;
	__u32 mntns;
	__u32 netns;
	__u32 pidns;
	__u32 nspid; // pid inside the process's own pid namespace
	char comm[16]; // thread comm
	__u32 depth;   // valid entries in anc
	__u32 _pad;
	struct ancestor anc[MAX_ANCESTORS];
};

struct dns_event {
	__u8 kind;
	__u8 dir;
	__u8 proto;  // IPPROTO_UDP or IPPROTO_TCP
	__u8 family; // 4 or 6
	__u8 flags;
	__u8 _pad1;
	__u16 sport; // host byte order
	__u16 dport;
	__u16 _pad2;
	__u32 orig_len; // transport payload length
	__u32 cap_len;  // payload bytes that follow this header
	__u32 tcp_seq;  // TCP sequence number of the first payload byte
	__u64 boot_ns;
	__u64 cookie;   // socket cookie
	__u8 saddr[16]; // IPv4 in the first 4 bytes
	__u8 daddr[16];
	__u32 ifindex;
	__u32 _pad3;
	struct ident id;
};

struct res_addr {
	__u8 family; // 4 or 6
	__u8 _pad[3];
	__u8 addr[16]; // IPv4 in the first 4 bytes
};

// A libc resolver call, emitted when it returns, in the caller's context.
struct resolve_event {
	__u8 kind; // EV_RESOLVE
	__u8 func; // enum resolve_func
	__u8 flags; // enum resolve_flags
	__u8 naddrs; // valid entries in addrs, duplicates removed
	__s32 rc;    // 0: the call returned a result; else getaddrinfo's EAI_* code, or
	             // gethostbyname*_r's error (its return value, or -1 when it
	             // returned 0 with no result: the name was not found)
	__u64 boot_ns;  // when the call returned
	__u64 call_ns;  // when it was entered
	struct res_addr addrs[RES_ADDRS];
	char name[RES_NAME]; // NUL-terminated
	struct ident id;
};

struct exec_event {
	__u8 kind;
	__u8 flags; // 1: path truncated, 2: argv truncated
	__u16 path_len; // exe path slots used
	__u16 args_len;
	__u16 _pad;
	__u32 pid;
	__u32 ppid;
	__u64 boot_ns;
	__u64 start_ns;
	__u64 pstart_ns;
	__u64 cgroup_id;
	__u32 uid;
	__u32 gid;
	char comm[16];
};

// An exec record: header, argv (args_len bytes at data[0]), then the exe
// path's components (path_len slots of NAME_SLOT bytes at data[ARGS_MAX]).
struct exec_record {
	struct exec_event ev;
	__u8 data[ARGS_MAX + PATH_DEPTH * NAME_SLOT];
};

// Records are reserved in the ring buffer and filled in place. A per-CPU
// scratch map would be smaller to write but is not safe: a preemptible
// process-context program and a softirq ingress program can share a CPU.

// Set from Go through CollectionSpec.Variables before load.
volatile const __u16 dns_ports[MAX_PORTS] = {53};
volatile const __u32 snaplen = MAX_SNAP;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20); // resized from Go (--ringbuf-size)
} events SEC(".maps");

// Ring buffer records that could not be written, of every kind, per CPU.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} ringbuf_drops SEC(".maps");

// Of ringbuf_drops, the DNS message records (EV_DNS), per CPU: lost process,
// owner or resolver records must not hide whether messages were lost.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} msg_drops SEC(".maps");

// Socket cookie -> the process that last used the socket for DNS in its own
// context. This is how a received message finds its receiver: in cgroup_skb
// ingress, current is whoever happened to be running.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct ident);
} sock_owner SEC(".maps");

static __always_inline void count_in(void *counter)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(counter, &zero);
	if (n)
		*n += 1; // per-CPU slot: no atomics needed
}

// count_drop counts a record of any kind that found no room in the ring.
static __always_inline void count_drop(void)
{
	count_in(&ringbuf_drops);
}

// count_msg_drop counts a DNS message record that found no room, in both
// counters.
static __always_inline void count_msg_drop(void)
{
	count_in(&ringbuf_drops);
	count_in(&msg_drops);
}

// EMIT_SIZE_CLASSES reserves a DNS record in the ring buffer for cap payload
// bytes and has FILL(ev, data, max) write it in place, then submits it.
// bpf_ringbuf_reserve takes only a constant size, so there are size classes:
// the small ones hold almost every DNS message in a record not much bigger
// than itself, and MAX_SNAP holds any whole message (65535 bytes at most;
// a TCP segment on loopback, whose MTU is 65536, at most 65483), reserved
// only for a message that needs it. A record's ring space is its class, so
// 16384 keeps the more common large answers (4 to 16 KB) from taking 64 KiB
// each. Used inside a void function with `cap` in scope; it returns from
// that function.
#define RESERVE_CLASS(N, FILL)                                                       \
	if (cap <= N) {                                                              \
		struct dns_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev) + N, 0); \
		if (!ev) {                                                           \
			count_msg_drop();                                            \
			return;                                                      \
		}                                                                    \
		FILL(ev, (__u8 *)(ev + 1), N);                                       \
		bpf_ringbuf_submit(ev, 0);                                           \
		return;                                                              \
	}
#define EMIT_SIZE_CLASSES(FILL)        \
	RESERVE_CLASS(512, FILL)       \
	RESERVE_CLASS(2048, FILL)      \
	RESERVE_CLASS(8192, FILL)      \
	RESERVE_CLASS(16384, FILL)     \
	RESERVE_CLASS(MAX_SNAP, FILL)

// snap_cap is how many of len payload bytes a record keeps: at most snaplen.
static __always_inline __u64 snap_cap(__u64 len)
{
	if (len > snaplen)
		len = snaplen;
	if (len > MAX_SNAP)
		len = MAX_SNAP;
	return len;
}

static __always_inline int is_dns_port(__u16 port)
{
#pragma unroll
	for (int i = 0; i < MAX_PORTS; i++) {
		if (dns_ports[i] != 0 && dns_ports[i] == port)
			return 1;
	}
	return 0;
}

// is_dns_flow is every tier's port filter: a message, or a socket, is DNS
// when either of its ports is one of dns_ports.
static __always_inline int is_dns_flow(__u16 sport, __u16 dport)
{
	return is_dns_port(sport) || is_dns_port(dport);
}

// dns_header writes the header of an EV_DNS record in place, all but its
// identity and cap_len, the same way for every tier. Addresses are 16
// bytes, IPv4 in the first 4. A tier without a socket cookie or an
// interface passes its own socket id, or 0.
static __always_inline void dns_header(struct dns_event *ev, __u8 dir, __u8 proto, __u8 family, __u8 flags,
				       __u16 sport, __u16 dport, const __u8 *saddr, const __u8 *daddr,
				       __u32 orig, __u32 seq, __u64 cookie, __u32 ifindex)
{
	ev->kind = EV_DNS;
	ev->dir = dir;
	ev->proto = proto;
	ev->family = family;
	ev->flags = flags;
	ev->_pad1 = 0;
	ev->sport = sport;
	ev->dport = dport;
	ev->_pad2 = 0;
	ev->orig_len = orig;
	ev->tcp_seq = seq;
	ev->boot_ns = bpf_ktime_get_boot_ns();
	ev->cookie = cookie;
	__builtin_memcpy(ev->saddr, saddr, 16);
	__builtin_memcpy(ev->daddr, daddr, 16);
	ev->ifindex = ifindex;
	ev->_pad3 = 0;
}

// cap_mask restates the payload bytes a record copies, cap in [1, max] with
// max (its size class) a power of two, as a mask: a form every verifier
// follows. clang reuses unclamped registers for plain comparisons, and the
// 6.1 verifier then sees a copy of 0 or too many bytes. A cap of 0 copies
// nothing: callers check for it first, and must never copy max bytes
// instead.
static __always_inline __u64 cap_mask(__u64 cap, __u64 max)
{
	barrier_var(cap);
	return ((cap - 1) & (max - 1)) + 1;
}

static __always_inline __u64 leader_start(struct task_struct *t)
{
	return BPF_CORE_READ(t, group_leader, start_boottime);
}

// An identity costs many kernel reads, on every message: five per ancestor
// for the parent chain, and about fifteen for the rest; the chain is most
// of the cost. So a
// process's identity is cached per (tgid, start time) on its first message:
// the chain (user space only uses the chain of a process's first message,
// processes rows being written once, so stored rows are the same with or
// without the cache) and the ids, namespaces and cgroup, revalidated on
// every message by the pointers they were read through.
struct anc_key {
	__u64 start_ns;
	__u32 pid;
	__u32 _pad;
};

struct anc_val {
	__u32 ready; // set once everything below is filled in
	__u32 depth;
	// The identity as read through these three pointers. A task's cred,
	// nsproxy and css_set are replaced, never edited in place, when its
	// ids, namespaces or cgroup change: equal pointers, equal values.
	__u64 cred, nsproxy, cgroups;
	__u64 cgroup_id;
	__u32 uid, gid, mntns, netns, pidns, nspid;
	struct ancestor anc[MAX_ANCESTORS];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct anc_key);
	__type(value, struct anc_val);
} anc_cache SEC(".maps");

// The initial value of a cache entry: the stack is too small for one, and
// ring buffer memory is not a map value on 5.10.
const struct anc_val anc_empty = {};

static __always_inline __u32 walk_ancestors(struct task_struct *leader, struct ancestor *anc)
{
	struct task_struct *cur = leader;
	__u32 depth = 0;
	for (int i = 0; i < MAX_ANCESTORS; i++) {
		struct task_struct *parent = BPF_CORE_READ(cur, real_parent);
		if (!parent)
			break;
		struct task_struct *pl = BPF_CORE_READ(parent, group_leader);
		__u32 ppid = BPF_CORE_READ(pl, tgid);
		if (ppid == 0 || pl == cur)
			break;
		anc[i].pid = ppid;
		anc[i].start_ns = BPF_CORE_READ(pl, start_boottime);
		BPF_CORE_READ_STR_INTO(&anc[i].comm, pl, comm);
		depth = i + 1;
		if (ppid == 1)
			break;
		cur = pl;
	}
	return depth;
}

// read_ids reads what the cache revalidates by pointer.
static __always_inline void read_ids(struct ident *id, struct task_struct *leader,
				     const struct cred *cred, struct nsproxy *ns, struct css_set *cg)
{
	id->uid = BPF_CORE_READ(cred, uid.val);
	id->gid = BPF_CORE_READ(cred, gid.val);
	id->cgroup_id = BPF_CORE_READ(cg, dfl_cgrp, kn, id);
	id->mntns = BPF_CORE_READ(ns, mnt_ns, ns.inum);
	id->netns = BPF_CORE_READ(ns, net_ns, ns.inum);

	// The pid namespace the process lives in is the last level of its
	// struct pid; numbers[level].nr is its pid as seen from inside. It
	// never changes for a process.
	struct pid *p = BPF_CORE_READ(leader, thread_pid);
	unsigned int level = BPF_CORE_READ(p, level);
	struct upid up = {};
	bpf_probe_read_kernel(&up, sizeof(up), &p->numbers[level & 31]);
	id->nspid = up.nr;
	id->pidns = BPF_CORE_READ(up.ns, ns.inum);
}

static __always_inline void from_cache(struct ident *id, struct anc_val *c)
{
	id->uid = c->uid;
	id->gid = c->gid;
	id->cgroup_id = c->cgroup_id;
	id->mntns = c->mntns;
	id->netns = c->netns;
	id->pidns = c->pidns;
	id->nspid = c->nspid;
	id->depth = c->depth;
	__builtin_memcpy(id->anc, c->anc, sizeof(id->anc));
}

// fill_cached fills in everything but pid, tid, start time and comm, from
// the cache when its pointers still match.
static __always_inline void fill_cached(struct ident *id, struct task_struct *t, struct task_struct *leader)
{
	const struct cred *cred = BPF_CORE_READ(t, cred);
	struct nsproxy *ns = BPF_CORE_READ(t, nsproxy);
	struct css_set *cg = BPF_CORE_READ(t, cgroups);
	struct anc_key k = {.start_ns = id->start_ns, .pid = id->pid};
	struct anc_val *c = bpf_map_lookup_elem(&anc_cache, &k);
	if (c && c->ready) {
		if (c->cred == (__u64)cred && c->nsproxy == (__u64)ns && c->cgroups == (__u64)cg) {
			from_cache(id, c);
			return;
		}
		// The ids, namespaces or cgroup changed: read them afresh, and
		// drop the entry so that the next message caches the new ones.
		read_ids(id, leader, cred, ns, cg);
		id->depth = c->depth;
		__builtin_memcpy(id->anc, c->anc, sizeof(id->anc));
		bpf_map_delete_elem(&anc_cache, &k);
		return;
	}
	read_ids(id, leader, cred, ns, cg);
	if (!c) {
		bpf_map_update_elem(&anc_cache, &k, &anc_empty, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&anc_cache, &k);
		if (c && !c->ready) {
			c->cred = (__u64)cred;
			c->nsproxy = (__u64)ns;
			c->cgroups = (__u64)cg;
			c->uid = id->uid;
			c->gid = id->gid;
			c->cgroup_id = id->cgroup_id;
			c->mntns = id->mntns;
			c->netns = id->netns;
			c->pidns = id->pidns;
			c->nspid = id->nspid;
			c->depth = walk_ancestors(leader, c->anc);
			barrier();
			c->ready = 1;
			id->depth = c->depth;
			__builtin_memcpy(id->anc, c->anc, sizeof(id->anc));
			return;
		}
	}
	// Another thread of the process is filling the entry right now, or
	// the map refused it: walk without the cache.
	id->depth = walk_ancestors(leader, id->anc);
}

// forget_ancestors drops a process's cached chain when it exits.
static __always_inline void forget_ancestors(__u32 pid, __u64 start_ns)
{
	struct anc_key k = {.start_ns = start_ns, .pid = pid};
	bpf_map_delete_elem(&anc_cache, &k);
}

// fill_ident describes the current task. Only call it where current is the
// process that owns the traffic (process-context hooks).
//
// Everything is read from the task with CO-RE, not from the get_current_*
// helpers: in cgroup_skb programs Linux 5.10 and 6.1 refuse
// bpf_get_current_pid_tgid and bpf_get_current_cgroup_id (and 6.12 still
// refuses _uid_gid and _comm), while get_current_task + probe_read_kernel
// verify everywhere (vmtest/README.md).
static __always_inline void fill_ident(struct ident *id)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct task_struct *leader = BPF_CORE_READ(t, group_leader);

	id->pid = BPF_CORE_READ(t, tgid);
	id->tid = BPF_CORE_READ(t, pid);
	id->start_ns = BPF_CORE_READ(leader, start_boottime);
	BPF_CORE_READ_STR_INTO(&id->comm, t, comm);
	fill_cached(id, t, leader);
}

// exe_path writes the components of f's path leaf first into fixed slots of
// NAME_SLOT bytes (NUL-terminated; an empty slot marks a mount crossing) and
// returns how many slots it used; user space reverses them. Fixed slots keep
// every offset constant, which lets the verifier prune the loop: a running
// offset made it explore past its 1M-instruction budget. bpf_d_path would
// be simpler but is only allowed in a few fentry/LSM attach points.
static __always_inline __u32 exe_path(struct file *f, __u8 *buf, __u8 *flags)
{
	struct dentry *d = BPF_CORE_READ(f, f_path.dentry);
	struct vfsmount *vm = BPF_CORE_READ(f, f_path.mnt);
	struct mount *mnt = (struct mount *)((void *)vm - bpf_core_field_offset(struct mount, mnt));

	for (int i = 0; i < PATH_DEPTH; i++) {
		__u8 *slot = &buf[i * NAME_SLOT];
		slot[0] = 0;
		struct dentry *parent = BPF_CORE_READ(d, d_parent);
		struct dentry *root = BPF_CORE_READ(vm, mnt_root);
		if (d == root || d == parent) {
			struct mount *pm = BPF_CORE_READ(mnt, mnt_parent);
			if (d != root || pm == mnt)
				return i; // reached the real root
			d = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = pm;
			vm = (struct vfsmount *)((void *)pm + bpf_core_field_offset(struct mount, mnt));
			continue;
		}
		const unsigned char *name = BPF_CORE_READ(d, d_name.name);
		if (bpf_probe_read_kernel_str(slot, NAME_SLOT, name) == NAME_SLOT)
			*flags |= 1; // component longer than a slot: cut
		d = parent;
	}
	*flags |= 1;
	return PATH_DEPTH;
}

static __always_inline void exec_header(struct exec_event *ev, struct task_struct *t, __u8 kind)
{
	struct task_struct *leader = BPF_CORE_READ(t, group_leader);
	struct task_struct *parent = BPF_CORE_READ(leader, real_parent, group_leader);
	ev->kind = kind;
	ev->flags = 0;
	ev->path_len = 0;
	ev->args_len = 0;
	ev->_pad = 0;
	ev->pid = BPF_CORE_READ(leader, tgid);
	ev->ppid = BPF_CORE_READ(parent, tgid);
	ev->boot_ns = bpf_ktime_get_boot_ns();
	ev->start_ns = BPF_CORE_READ(leader, start_boottime);
	ev->pstart_ns = BPF_CORE_READ(parent, start_boottime);
	ev->cgroup_id = BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
	ev->uid = BPF_CORE_READ(t, cred, uid.val);
	ev->gid = BPF_CORE_READ(t, cred, gid.val);
	BPF_CORE_READ_STR_INTO(&ev->comm, leader, comm);
}

// Every exec, so that a process that resolves a name and exits at once still
// has its exe path and argv: they are captured here, in the kernel, before
// the process can disappear.
SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct exec_record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count_drop();
		return 0;
	}
	exec_header(&r->ev, p, EV_EXEC);

	// argv first, at a fixed offset, so that both copies have constant
	// bounds the verifier can follow: data = argv[ARGS_MAX] path[...].
	struct mm_struct *mm = BPF_CORE_READ(p, mm);
	unsigned long start = BPF_CORE_READ(mm, arg_start);
	unsigned long end = BPF_CORE_READ(mm, arg_end);
	__u32 alen = 0;
	if (end > start) {
		unsigned long n = end - start;
		if (n > ARGS_MAX) {
			n = ARGS_MAX;
			r->ev.flags |= 2;
		}
		alen = n;
		// The new image's argument pages were just written by exec, so
		// they are resident and a non-faulting read succeeds.
		if (bpf_probe_read_user(r->data, alen, (void *)start) != 0)
			alen = 0;
	}
	r->ev.path_len = exe_path(BPF_CORE_READ(bprm, file), &r->data[ARGS_MAX], &r->ev.flags);
	r->ev.args_len = alen;
	bpf_ringbuf_submit(r, 0);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *p)
{
	// One event per process, when its thread group leader exits.
	if (BPF_CORE_READ(p, pid) != BPF_CORE_READ(p, tgid))
		return 0;
	forget_ancestors(BPF_CORE_READ(p, tgid), leader_start(p));
	struct exec_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		count_drop();
		return 0;
	}
	exec_header(ev, p, EV_EXIT);
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

// ---- libc resolver calls (uprobes; attached per libc by bpf/libc.go) ----
//
// getaddrinfo, gethostbyname_r and gethostbyname2_r: the name a process asked
// its libc for and the addresses it got back, in the caller's context. The
// entry probe keeps the arguments the return probe needs; the return probe
// emits one EV_RESOLVE record. The user structures are read at the fixed
// offsets of the LP64 ABI (x86_64 and arm64, glibc and musl alike).

#define RES_AF_INET 2
#define RES_AF_INET6 10
#define RES_ERANGE 34     // gethostbyname*_r: buffer too small; the caller retries
#define RES_MAX_NODES 48  // addrinfo nodes walked: one per address and socktype

// The sixth argument of a call, which bpf_tracing.h of this libbpf lacks.
#if defined(__TARGET_ARCH_x86)
#define RES_PARM6(ctx) ((ctx)->r9)
#elif defined(__TARGET_ARCH_arm64)
#define RES_PARM6(ctx) (((const struct user_pt_regs *)(ctx))->regs[5])
#endif

struct res_key {
	__u64 pid_tgid;
	__u32 func; // enum resolve_func: a thread may be inside more than one
	__u32 _pad;
};

struct res_call {
	__u64 name;    // const char *
	__u64 result;  // struct addrinfo ** or struct hostent **
	__u64 call_ns;
};

// Calls in progress, by thread. A call that never returns (the thread was
// killed, or longjmp'ed out) leaves its entry to the LRU.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10240);
	__type(key, struct res_key);
	__type(value, struct res_call);
} res_calls SEC(".maps");

static __always_inline void res_enter(__u8 func, const void *name, const void *result)
{
	struct res_key k = {.pid_tgid = bpf_get_current_pid_tgid(), .func = func};
	struct res_call c = {
		.name = (__u64)name,
		.result = (__u64)result,
		.call_ns = bpf_ktime_get_boot_ns(),
	};
	bpf_map_update_elem(&res_calls, &k, &c, BPF_ANY);
}

// res_take removes the thread's call of func, copying it to c; 0 if none.
static __always_inline int res_take(__u8 func, struct res_call *c)
{
	struct res_key k = {.pid_tgid = bpf_get_current_pid_tgid(), .func = func};
	struct res_call *v = bpf_map_lookup_elem(&res_calls, &k);
	if (!v)
		return 0;
	*c = *v;
	bpf_map_delete_elem(&res_calls, &k);
	return 1;
}

// res_nested: the thread is inside another probed call (of another
// function) entered before this one, so this call is part of that one's
// work, not a separate question of the program. The outer call is still in
// res_calls: it is removed only when it returns, after this one.
static __always_inline int res_nested(__u8 func, __u64 call_ns)
{
	struct res_key k = {.pid_tgid = bpf_get_current_pid_tgid()};
	for (__u32 f = RES_GETADDRINFO; f <= RES_GETHOSTBYNAME2_R; f++) {
		if (f == func)
			continue;
		k.func = f;
		struct res_call *v = bpf_map_lookup_elem(&res_calls, &k);
		if (v && v->call_ns <= call_ns)
			return 1;
	}
	return 0;
}

// res_begin reserves and fills in everything of a record but its addresses
// (naddrs 0, addrs zeroed) and the flags those set.
static __always_inline struct resolve_event *res_begin(__u8 func, int rc, struct res_call *c)
{
	struct resolve_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		count_drop();
		return 0;
	}
	ev->kind = EV_RESOLVE;
	ev->func = func;
	ev->flags = res_nested(func, c->call_ns) ? RES_NESTED : 0;
	ev->naddrs = 0;
	ev->rc = rc;
	ev->boot_ns = bpf_ktime_get_boot_ns();
	ev->call_ns = c->call_ns;
	__builtin_memset(ev->addrs, 0, sizeof(ev->addrs));
	ev->name[0] = 0;
	if (c->name) {
		long n = bpf_probe_read_user_str(ev->name, RES_NAME, (const void *)c->name);
		if (n < 0) {
			ev->name[0] = 0;
		} else if (n == RES_NAME) {
			// RES_NAME - 1 bytes were kept: cut, unless that was all.
			char more = 0;
			bpf_probe_read_user(&more, 1, (const char *)c->name + RES_NAME - 1);
			if (more)
				ev->flags |= RES_NAME_CUT;
		}
	}
	fill_ident(&ev->id);
	return ev;
}

// An address as the walks read it, 4 or 16 bytes, zero-padded.
union res_ip {
	__u8 b[16];
	__u64 q[2];
};

// The last address added, to drop the repeats: glibc lists each address of
// getaddrinfo's result once per socket type, one after the other.
struct res_last {
	__u64 q[2];
	__u32 family; // 0: none yet
	__u32 _pad;
};

// res_add appends one address unless it equals the last one added, and
// returns 0 once the record is full (RES_ADDRS_CUT set). The count lives in
// the record, whose memory the verifier does not track, so that the walking
// loops' states differ by their counter only and prune.
static __always_inline int res_add(struct resolve_event *ev, struct res_last *last, __u8 family, const union res_ip *a)
{
	if (last->family == family && last->q[0] == a->q[0] && last->q[1] == a->q[1])
		return 1;
	__u32 n = *(volatile __u8 *)&ev->naddrs;
	if (n >= RES_ADDRS) {
		ev->flags |= RES_ADDRS_CUT;
		return 0;
	}
	struct res_addr *slot = &ev->addrs[n & (RES_ADDRS - 1)];
	slot->family = family;
	__builtin_memcpy(slot->addr, a->b, 16);
	*(volatile __u8 *)&ev->naddrs = n + 1;
	last->family = family;
	last->q[0] = a->q[0];
	last->q[1] = a->q[1];
	return 1;
}

// struct addrinfo, LP64.
struct res_addrinfo {
	__s32 ai_flags;
	__s32 ai_family;
	__s32 ai_socktype;
	__s32 ai_protocol;
	__u32 ai_addrlen;
	__u32 _pad;
	__u64 ai_addr;
	__u64 ai_canonname;
	__u64 ai_next;
};

static __always_inline void res_walk_addrinfo(struct resolve_event *ev, __u64 resp)
{
	__u64 ai = 0;
	bpf_probe_read_user(&ai, sizeof(ai), (const void *)resp);
	struct res_last last = {};
	for (int i = 0; i < RES_MAX_NODES; i++) {
		if (!ai)
			return;
		struct res_addrinfo node;
		if (bpf_probe_read_user(&node, sizeof(node), (const void *)ai))
			return;
		ai = node.ai_next;
		union res_ip a = {};
		__u8 family;
		if (node.ai_family == RES_AF_INET) {
			// sockaddr_in: family, port, then the address
			if (bpf_probe_read_user(a.b, 4, (const void *)(node.ai_addr + 4)))
				continue;
			family = 4;
		} else if (node.ai_family == RES_AF_INET6) {
			// sockaddr_in6: family, port, flowinfo, then the address
			if (bpf_probe_read_user(a.b, 16, (const void *)(node.ai_addr + 8)))
				continue;
			family = 6;
		} else {
			continue;
		}
		if (!res_add(ev, &last, family, &a))
			return;
	}
	if (ai)
		ev->flags |= RES_ADDRS_CUT; // more nodes than walked
}

// struct hostent, LP64.
struct res_hostent {
	__u64 h_name;
	__u64 h_aliases;
	__s32 h_addrtype;
	__s32 h_length;
	__u64 h_addr_list;
};

static __always_inline void res_walk_hostent(struct resolve_event *ev, __u64 h)
{
	struct res_hostent he;
	if (bpf_probe_read_user(&he, sizeof(he), (const void *)h))
		return;
	__u8 family;
	__u32 len;
	if (he.h_addrtype == RES_AF_INET && he.h_length == 4) {
		family = 4;
		len = 4;
	} else if (he.h_addrtype == RES_AF_INET6 && he.h_length == 16) {
		family = 6;
		len = 16;
	} else {
		return;
	}
	struct res_last last = {};
	for (int i = 0; i < RES_ADDRS + 1; i++) {
		__u64 p = 0;
		if (bpf_probe_read_user(&p, sizeof(p), (const void *)(he.h_addr_list + 8 * i)) || !p)
			return;
		union res_ip a = {};
		if (bpf_probe_read_user(a.b, len & 31, (const void *)p))
			return;
		if (!res_add(ev, &last, family, &a))
			return;
	}
}

SEC("uprobe")
int BPF_KPROBE(up_getaddrinfo, const char *node, const char *service, const void *hints, void *res)
{
	res_enter(RES_GETADDRINFO, node, res);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(ur_getaddrinfo, long ret)
{
	struct res_call c;
	if (!res_take(RES_GETADDRINFO, &c))
		return 0;
	int rc = (int)ret;
	struct resolve_event *ev = res_begin(RES_GETADDRINFO, rc, &c);
	if (!ev)
		return 0;
	if (rc == 0)
		res_walk_addrinfo(ev, c.result);
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

// gethostbyname_r and gethostbyname2_r return 0 or an errno value, and give
// the result through *result: NULL when the name was not found (rc -1 in
// the record).
static __always_inline void res_hostent_ret(__u8 func, long ret)
{
	struct res_call c;
	if (!res_take(func, &c))
		return;
	int rc = (int)ret;
	if (rc == RES_ERANGE)
		return; // the caller's buffer was too small: its retry is recorded
	__u64 h = 0;
	if (rc == 0) {
		bpf_probe_read_user(&h, sizeof(h), (const void *)c.result);
		if (!h)
			rc = -1;
	}
	struct resolve_event *ev = res_begin(func, rc, &c);
	if (!ev)
		return;
	if (h)
		res_walk_hostent(ev, h);
	bpf_ringbuf_submit(ev, 0);
}

// gethostbyname_r(name, ret, buf, buflen, result, h_errnop)
SEC("uprobe")
int BPF_KPROBE(up_gethostbyname_r, const char *name)
{
	res_enter(RES_GETHOSTBYNAME_R, name, (const void *)PT_REGS_PARM5(ctx));
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(ur_gethostbyname_r, long ret)
{
	res_hostent_ret(RES_GETHOSTBYNAME_R, ret);
	return 0;
}

// gethostbyname2_r(name, af, ret, buf, buflen, result, h_errnop)
SEC("uprobe")
int BPF_KPROBE(up_gethostbyname2_r, const char *name)
{
	res_enter(RES_GETHOSTBYNAME2_R, name, (const void *)RES_PARM6(ctx));
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(ur_gethostbyname2_r, long ret)
{
	res_hostent_ret(RES_GETHOSTBYNAME2_R, ret);
	return 0;
}

// Referenced so that the types reach BTF and bpf2go can emit Go twins.
const struct dns_event *unused_dns_event __attribute__((unused));
const struct exec_event *unused_exec_event __attribute__((unused));
const struct resolve_event *unused_resolve_event __attribute__((unused));
