/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The post-start-up drop: CAP_SYS_PTRACE and a seccomp allow-list
 * (contract in harden.h). The filter is plain classic BPF: check the
 * architecture, refuse x32 numbers, allow the listed syscalls, allow
 * clone only with CLONE_THREAD, answer clone3 with ENOSYS, refuse the
 * rest with EPERM.
 */
#include "tunnel/harden.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cap-ng.h>

#include "conf/errbuf.h"
#include "conf/log.h"
#include "conf/warren.h"
#include "tunnel/tunnel.h"

#if defined(__x86_64__)
#define HARDEN_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define HARDEN_ARCH AUDIT_ARCH_AARCH64
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HARDEN_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HARDEN_SANITIZER 1
#endif
#endif

/* What the tunnel calls once started (strace -f -c of the netns suites),
 * the calls its libraries make on error paths, and glibc's variants. The
 * data path's calls come first: the kernel caches constant allows, but an
 * uncached lookup walks the list in order. */
static const int harden_allowed[] = {
	/* data path */
	__NR_epoll_wait, __NR_epoll_pwait, __NR_epoll_ctl, __NR_read, __NR_write, __NR_readv,
	__NR_writev, __NR_recvfrom, __NR_sendto, __NR_recvmsg, __NR_sendmsg, __NR_splice,
	__NR_close, __NR_accept4, __NR_connect, __NR_socket, __NR_setsockopt, __NR_getsockopt,
	__NR_getsockname, __NR_getpeername, __NR_shutdown, __NR_bind, __NR_listen, __NR_pipe2,
	__NR_fcntl, __NR_ioctl, __NR_futex, __NR_clock_gettime, __NR_gettimeofday, __NR_setns,
	__NR_recvmmsg, __NR_sendmmsg, __NR_socketpair, __NR_dup, __NR_dup3,
	/* timers, events, signals */
	__NR_timerfd_create, __NR_timerfd_settime, __NR_timerfd_gettime, __NR_eventfd2,
	__NR_signalfd4, __NR_epoll_create1, __NR_clock_nanosleep, __NR_nanosleep,
	__NR_rt_sigprocmask, __NR_rt_sigreturn, __NR_rt_sigaction, __NR_sigaltstack,
	__NR_restart_syscall, __NR_ppoll, __NR_pselect6, __NR_sched_yield,
	/* memory */
	__NR_mmap, __NR_munmap, __NR_mremap, __NR_madvise, __NR_mprotect, __NR_brk,
	__NR_getrandom,
	/* files: state records, the mesh model, certificates, the log, /proc */
	__NR_openat, __NR_newfstatat, __NR_fstat, __NR_statx, __NR_lseek, __NR_pread64,
	__NR_pwrite64, __NR_getdents64, __NR_unlinkat, __NR_renameat, __NR_mkdirat, __NR_fsync,
	__NR_fdatasync, __NR_ftruncate, __NR_fchmod, __NR_fchmodat, __NR_fchown, __NR_umask,
	__NR_readlinkat, __NR_faccessat, __NR_inotify_init1, __NR_inotify_add_watch,
	__NR_inotify_rm_watch, __NR_flock, __NR_close_range, __NR_statfs, __NR_fstatfs,
	__NR_getcwd,
	/* threads and process */
	__NR_exit, __NR_exit_group, __NR_gettid, __NR_getpid, __NR_getppid, __NR_tgkill,
	__NR_set_robust_list, __NR_sched_getaffinity, __NR_getuid, __NR_geteuid, __NR_getgid,
	__NR_getegid, __NR_uname, __NR_capget, __NR_prlimit64, __NR_getrlimit, __NR_getrusage,
	__NR_sysinfo, __NR_membarrier, __NR_prctl,
#ifdef __NR_epoll_pwait2
	__NR_epoll_pwait2,
#endif
#ifdef __NR_faccessat2
	__NR_faccessat2,
#endif
#ifdef __NR_renameat2
	__NR_renameat2,
#endif
#ifdef __NR_rseq
	__NR_rseq,
#endif
#ifdef __NR_futex_waitv
	__NR_futex_waitv,
#endif
#if defined(__x86_64__)
	/* the old calls glibc still uses on x86_64 */
	__NR_open, __NR_stat, __NR_lstat, __NR_poll, __NR_select, __NR_pipe, __NR_dup2,
	__NR_access, __NR_unlink, __NR_rename, __NR_mkdir, __NR_readlink, __NR_arch_prctl,
	__NR_time,
#endif
#ifdef HARDEN_SANITIZER
	/* LeakSanitizer's exit check stops the world from a traced clone */
	__NR_ptrace, __NR_wait4, __NR_kill, __NR_tkill, __NR_sched_getparam,
	__NR_sched_setaffinity,
#if defined(__x86_64__)
	__NR_getdents, /* its /proc/PID/task walk */
#endif
#endif
};

/* bpf(2) only to use the eBPF capture's pinned objects (fill and check the
 * listener map, read the link's state), never to load or attach. */
static const unsigned harden_allowed_bpf_cmds[] = {
	BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM, BPF_OBJ_GET,
	BPF_PROG_GET_FD_BY_ID, BPF_MAP_GET_FD_BY_ID, BPF_OBJ_GET_INFO_BY_FD, BPF_LINK_GET_FD_BY_ID,
};

#define STMT(code, k)         ((struct sock_filter)BPF_STMT((code), (k)))
#define JUMP(code, k, jt, jf) ((struct sock_filter)BPF_JUMP((code), (k), (jt), (jf)))
#define ARG0_LO               (offsetof(struct seccomp_data, args[0]))

/* libcap-ng's state is per thread and it reads the calling thread's sets
 * (capget on its tid), so each thread drops the bit from its own. */
int harden_drop_thread_cap(unsigned cap)
{
	if (capng_get_caps_process() < 0)
		return errno ? -errno : -EIO;
	if (capng_update(CAPNG_DROP, CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_INHERITABLE, cap) < 0 ||
	    capng_apply(CAPNG_SELECT_CAPS) < 0)
		return -EPERM;
	return 0;
}

int harden_seccomp_install_list(const int *allowed, size_t N, const unsigned *bpf_cmds, size_t C, int all_threads,
				char *err, size_t errlen)
{
#ifndef HARDEN_ARCH
	(void)allowed, (void)N, (void)bpf_cmds, (void)C, (void)all_threads;
	errbuf_set(err, errlen, "no seccomp filter for this architecture");
	return -ENOTSUP;
#else
	enum { MAX = 250 };
	const size_t B = C + 4;
	struct sock_filter f[MAX + 16];
	struct sock_fprog prog = { .filter = f };
	size_t n = 0;
	long ret;

	/* a BPF jump offset is 8 bits */
	if (N + B + 5 > MAX) {
		errbuf_set(err, errlen, "seccomp allow-list too long (%zu syscalls, %zu bpf commands)", N, C);
		return -E2BIG;
	}
	f[n++] = STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	f[n++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, HARDEN_ARCH, 1, 0);
	f[n++] = STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS); /* another ABI: never ours */
	f[n++] = STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#if defined(__x86_64__)
	f[n++] = JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000 /* __X32_SYSCALL_BIT */, (uint8_t)(N + B + 5), 0);
#endif
	/* bpf(2): allowed by its command (argument 0), then the list below */
	f[n++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_bpf, 0, (uint8_t)(B - 1));
	f[n++] = STMT(BPF_LD | BPF_W | BPF_ABS, ARG0_LO);
	for (size_t j = 0; j < C; j++)
		f[n++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, bpf_cmds[j], (uint8_t)(C - j), 0);
	f[n++] = STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
	f[n++] = STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	/* each allowed number jumps to the allow at the end: over the rest of
	 * the list and the six instructions after it */
	for (size_t i = 0; i < N; i++)
		f[n++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)allowed[i], (uint8_t)(N - i + 5), 0);
	f[n++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1);
	f[n++] = STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
	f[n++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 2);
	f[n++] = STMT(BPF_LD | BPF_W | BPF_ABS, ARG0_LO); /* the low half of the flags */
#ifdef HARDEN_SANITIZER
	f[n++] = STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
#else
	f[n++] = JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 1, 0);
#endif
	f[n++] = STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
	f[n++] = STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	prog.len = (unsigned short)n;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "cannot set no_new_privs: %s", strerror(errno));
		return (int)ret;
	}
	ret = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
		      all_threads ? SECCOMP_FILTER_FLAG_TSYNC : 0, &prog);
	if (ret < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "cannot install the seccomp filter: %s", strerror(errno));
		return (int)ret;
	}
	if (ret > 0) { /* TSYNC: the id of a thread that could not be synced */
		errbuf_set(err, errlen, "thread %ld could not take the seccomp filter", ret);
		return -EBUSY;
	}
	return 0;
#endif
}

int harden_seccomp_install(int all_threads, char *err, size_t errlen)
{
	return harden_seccomp_install_list(harden_allowed, ARRAY_SIZE(harden_allowed), harden_allowed_bpf_cmds,
					   ARRAY_SIZE(harden_allowed_bpf_cmds), all_threads, err, errlen);
}

void harden_after_startup(struct tunnel *t)
{
	char err[256];
	int ret;

	if (!t->conf->keep_capabilities)
		return;
	/* Kubernetes mode enrolls running pods as labels change, and opens a
	 * pod's /proc/PID/ns/net when its recorded netns path is not ours to
	 * open: the main thread keeps cap_sys_ptrace for that (the workers
	 * dropped it at start). */
	if (t->conf->kube) {
		log_info("adoption done: cap_sys_ptrace kept on the main thread (Kubernetes mode finds running pods' netns in /proc)");
	} else {
		ret = harden_drop_thread_cap(CAP_SYS_PTRACE);
		if (ret < 0)
			log_error("cannot drop cap_sys_ptrace after adoption: %s", strerror(-ret));
		else
			log_info("adoption done: cap_sys_ptrace dropped");
	}
	ret = harden_seccomp_install(1, err, sizeof(err));
	if (ret < 0)
		log_error("%s; running without a syscall filter", err);
	else
		log_info("seccomp: allow-list of %zu syscalls on every thread; others fail with EPERM",
			 ARRAY_SIZE(harden_allowed));
}
