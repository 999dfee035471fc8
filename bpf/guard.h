// SPDX-License-Identifier: GPL-2.0
// The recorder's guard: who signals it. Included by every tier after
// common.h. A stop by signal is then on record with its sender, which the
// signal itself does not tell a Go program (os/signal gives the number
// only), and /proc no longer can once the sender has exited.
//
// tp_btf, like the process-table programs, so it needs no tracefs and runs
// wherever the tier does; the task argument gives the target's thread
// group, so a signal aimed at any of the recorder's threads is seen.
#pragma once

// The recorder's own pid (thread-group id), set from Go before load.
volatile const __u32 guard_tgid = 0;

struct signal_event {
	__u8 kind; // EV_SIGNAL
	__u8 _pad[3];
	__s32 sig;
	__s32 code;   // si_code: SI_USER (0) for kill(2), SI_TKILL (-6) for tgkill(2), > 0 from the kernel
	__s32 result; // the kernel's TRACE_SIGNAL_* result: 0 delivered, 1 ignored, 2 already pending, ...
	__u32 group;  // sent to the whole thread group
	__u32 pid;    // sender's tgid
	__u32 tid;    // sender's thread
	__u32 uid;    // sender's real uid
	__u32 target_tid; // the recorder's thread it was aimed at
	__u32 _pad2;
	__u64 boot_ns;
	__u64 start_ns; // sender's thread-group leader's start_boottime: names the process, not just its pid
	char comm[16];  // sender's thread comm
};

SEC("tp_btf/signal_generate")
int BPF_PROG(guard_signal, int sig, struct kernel_siginfo *info, struct task_struct *task, int group, int result)
{
	if (guard_tgid == 0 || task->tgid != guard_tgid)
		return 0;
	__u64 pt = bpf_get_current_pid_tgid();
	if ((__u32)(pt >> 32) == guard_tgid)
		return 0; // its own: the Go runtime preempts its threads with SIGURG
	struct signal_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop();
		return 0;
	}
	e->kind = EV_SIGNAL;
	e->_pad[0] = e->_pad[1] = e->_pad[2] = 0;
	e->sig = sig;
	// info is SEND_SIG_NOINFO (0) or SEND_SIG_PRIV (1) when the kernel
	// made up none: a user sender (0) or the kernel (0x80).
	if ((unsigned long)info > 1)
		e->code = BPF_CORE_READ(info, si_code);
	else
		e->code = (unsigned long)info == 0 ? 0 : 0x80;
	e->result = result;
	e->group = group;
	e->pid = pt >> 32;
	e->tid = (__u32)pt;
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->target_tid = task->pid;
	e->_pad2 = 0;
	e->boot_ns = bpf_ktime_get_boot_ns();
	struct task_struct *cur = (struct task_struct *)bpf_get_current_task(); // not the _btf form: Linux 5.10 lacks it
	e->start_ns = BPF_CORE_READ(cur, group_leader, start_boottime);
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

// Keep the struct in BTF for bpf2go's Go twin.
const struct signal_event *unused_signal_event __attribute__((unused));
