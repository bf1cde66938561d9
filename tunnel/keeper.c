/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The keeper of the pool of spare eBPF capture programs (contract in
 * keeper.h): the fork, the keeper's privileges and loop, and the tunnel's
 * side of their socket.
 */
#include "tunnel/keeper.h"

#include <errno.h>
#include <linux/bpf.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cap-ng.h>

#include "conf/inpod_mode.h"
#include "conf/log.h"
#include "conf/warren.h"
#include "netlink/ebpf_pool.h"
#include "tunnel/harden.h"
#include "tunnel/tunnel.h"

#ifndef CAP_BPF
#define CAP_BPF 39
#endif

#define KEEPER_MAX_DIRS 8
#define KEEPER_MSG_MAX  128
#define KEEPER_STOP_MS  2000

/* What loading a program through libbpf and keeping bpffs directories
 * takes (strace -f of the keeper in test_ebpf.sh), the calls glibc and the
 * sanitizers make on the way, and nothing of the network: the keeper's
 * only input is the tunnel's socket. */
static const int keeper_allowed[] = {
	__NR_read, __NR_write, __NR_close, __NR_recvfrom, __NR_recvmsg, __NR_sendto, __NR_sendmsg,
	__NR_openat, __NR_newfstatat, __NR_fstat, __NR_statx, __NR_statfs, __NR_fstatfs, __NR_getdents64,
	__NR_mkdirat, __NR_unlinkat, __NR_renameat, __NR_flock, __NR_fcntl, __NR_lseek, __NR_pread64,
	__NR_readlinkat, __NR_faccessat, __NR_mmap, __NR_munmap, __NR_mprotect, __NR_madvise, __NR_brk,
	__NR_mremap, __NR_exit, __NR_exit_group, __NR_rt_sigreturn, __NR_rt_sigaction, __NR_rt_sigprocmask,
	__NR_sigaltstack, __NR_getpid, __NR_gettid, __NR_getuid, __NR_geteuid, __NR_getgid, __NR_getegid,
	__NR_uname, __NR_clock_gettime, __NR_gettimeofday, __NR_futex, __NR_getrandom, __NR_prlimit64,
	__NR_getrlimit, __NR_sysinfo, __NR_ppoll, __NR_nanosleep, __NR_clock_nanosleep, __NR_sched_yield,
	__NR_getcwd, __NR_capget, __NR_sched_getaffinity, __NR_membarrier, __NR_close_range,
#ifdef __NR_renameat2
	__NR_renameat2,
#endif
#ifdef __NR_faccessat2
	__NR_faccessat2,
#endif
#ifdef __NR_rseq
	__NR_rseq,
#endif
#if defined(__x86_64__)
	__NR_open, __NR_stat, __NR_lstat, __NR_access, __NR_mkdir, __NR_rmdir, __NR_unlink, __NR_rename,
	__NR_readlink, __NR_poll, __NR_arch_prctl, __NR_getdents,
#endif
	/* LeakSanitizer's exit check (sanitizer builds; harmless otherwise:
	 * clone without CLONE_THREAD stays refused below) */
	__NR_ptrace, __NR_wait4, __NR_kill, __NR_tkill, __NR_sched_getparam, __NR_sched_setaffinity,
};

/* Load and pin, read back; never attach (no BPF_LINK_CREATE, no
 * BPF_PROG_ATTACH): a spare captures nothing. */
static const unsigned keeper_bpf_cmds[] = {
	BPF_PROG_LOAD, BPF_MAP_CREATE, BPF_BTF_LOAD, BPF_OBJ_PIN, BPF_OBJ_GET, BPF_MAP_UPDATE_ELEM,
	BPF_MAP_LOOKUP_ELEM, BPF_MAP_DELETE_ELEM, BPF_MAP_FREEZE, BPF_OBJ_GET_INFO_BY_FD, BPF_PROG_BIND_MAP,
	BPF_PROG_GET_FD_BY_ID, BPF_MAP_GET_FD_BY_ID, BPF_BTF_GET_FD_BY_ID,
};

static volatile sig_atomic_t keeper_stopping;

static void keeper_on_term(int sig)
{
	(void)sig;
	keeper_stopping = 1;
}

/* CAP_BPF (load; CAP_SYS_ADMIN instead where we were not given it) and
 * CAP_NET_ADMIN (a SOCKMAP), nothing else, in every set; no_new_privs;
 * the allow-list. 0 or -errno (logged). */
static int keeper_drop(void)
{
	unsigned load = CAP_BPF;
	char err[256];
	int ret;

	if (capng_get_caps_process() < 0)
		return -EPERM;
	if (!capng_have_capability(CAPNG_PERMITTED, CAP_BPF)) {
		load = CAP_SYS_ADMIN;
		log_warn("ebpf pool keeper: no cap_bpf; keeping cap_sys_admin to load programs (grant CAP_BPF)");
	}
	if (!capng_have_capability(CAPNG_PERMITTED, load) || !capng_have_capability(CAPNG_PERMITTED, CAP_NET_ADMIN)) {
		log_warn("ebpf pool keeper: no cap_bpf, cap_sys_admin or cap_net_admin: no pool (ADDs load their programs)");
		return -EPERM;
	}
	capng_clear(CAPNG_SELECT_ALL);
	capng_update(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_BOUNDING_SET, load);
	capng_update(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_BOUNDING_SET, CAP_NET_ADMIN);
	ret = capng_apply(CAPNG_SELECT_ALL);
	if (ret)
		ret = capng_apply(CAPNG_SELECT_CAPS | CAPNG_SELECT_AMBIENT); /* no CAP_SETPCAP */
	if (ret) {
		log_error("ebpf pool keeper: cannot drop capabilities (libcap-ng error %d)", ret);
		return -EPERM;
	}
	ret = harden_seccomp_install_list(keeper_allowed, ARRAY_SIZE(keeper_allowed), keeper_bpf_cmds,
					  ARRAY_SIZE(keeper_bpf_cmds), 0, err, sizeof(err));
	if (ret < 0) {
		log_error("ebpf pool keeper: %s", err);
		return ret;
	}
	return 0;
}

static __attribute__((noreturn)) void keeper_run(int fd, bool keep_caps)
{
	struct {
		char dir[KEEPER_MSG_MAX];
		int hold;
	} dirs[KEEPER_MAX_DIRS];
	struct sigaction sa = { .sa_handler = keeper_on_term }; /* no SA_RESTART: recv returns */
	char buf[KEEPER_MSG_MAX], err[512];
	size_t nd = 0;
	ssize_t n;
	int ret;

	prctl(PR_SET_NAME, "warren-keeper", 0, 0, 0);
	signal(SIGINT, SIG_IGN); /* a terminal's ^C: the tunnel's EOF says when */
	sigaction(SIGTERM, &sa, NULL);
	if (setpriority(PRIO_PROCESS, 0, 10) < 0)
		log_debug("ebpf pool keeper: cannot lower its priority: %s", strerror(errno));
	if (keep_caps && keeper_drop() < 0)
		_exit(1);
	while (!keeper_stopping) {
		n = recv(fd, buf, sizeof(buf) - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		buf[n] = '\0';
		/* the tunnel's word, checked as the handoff checked it */
		if (buf[0] != '/' || strstr(buf, "..") || (size_t)n != strlen(buf) || (size_t)n >= INPOD_BPF_DIR_MAX) {
			log_warn("ebpf pool keeper: ignoring bpfDir \"%.64s\"", buf);
			continue;
		}
		size_t i;

		for (i = 0; i < nd && strcmp(dirs[i].dir, buf); i++)
			;
		if (i == nd) {
			if (nd == KEEPER_MAX_DIRS) {
				log_warn("ebpf pool keeper: more than %d bpfDirs; no pool in %s", KEEPER_MAX_DIRS, buf);
				continue;
			}
			dirs[i].hold = ebpf_pool_hold(buf, err, sizeof(err));
			if (dirs[i].hold < 0) {
				log_warn("ebpf pool keeper: %s", err);
				continue;
			}
			snprintf(dirs[i].dir, sizeof(dirs[i].dir), "%s", buf);
			nd++;
		}
		ret = ebpf_pool_fill(buf, err, sizeof(err));
		if (ret < 0)
			log_warn("ebpf pool keeper: topping up the pool in %s: %s", buf, err);
		else if (ret > 0)
			log_debug("ebpf pool keeper: %d spare programs of object %s made in %s", ret, ebpf_pool_hash(),
				  buf);
	}
	for (size_t i = 0; i < nd; i++) {
		ret = ebpf_pool_release(dirs[i].dir, dirs[i].hold, err, sizeof(err));
		if (ret < 0)
			log_warn("ebpf pool keeper: removing the pool in %s: %s", dirs[i].dir, err);
		else
			log_info("ebpf pool keeper: pool in %s %s", dirs[i].dir,
				 ret ? "removed" : "left to another keeper");
	}
	close(fd);
	_exit(0);
}

int keeper_start(struct tunnel *t, bool keep_caps)
{
	int sv[2], ret;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		ret = -errno;
		log_error("ebpf pool: cannot create the keeper's socket: %s; ADDs load their programs", strerror(errno));
		return ret;
	}
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		keeper_run(sv[1], keep_caps);
	}
	close(sv[1]);
	if (pid < 0) {
		ret = -errno;
		close(sv[0]);
		log_error("ebpf pool: cannot fork the keeper: %s; ADDs load their programs", strerror(-ret));
		return ret;
	}
	t->keeper_fd = sv[0];
	t->keeper = true;
	log_info("ebpf pool: keeper process %d started (pool of %d spare programs per bpfDir, object %s)", (int)pid,
		 EBPF_POOL_SIZE, ebpf_pool_hash());
	return 0;
}

void keeper_nudge(struct tunnel *t, const char *bpf_dir)
{
	size_t len = strlen(bpf_dir);

	if (!t->keeper || !len || len >= KEEPER_MSG_MAX)
		return;
	if (send(t->keeper_fd, bpf_dir, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN &&
	    !t->keeper_gone) {
		t->keeper_gone = true;
		log_error("ebpf pool: the keeper is gone (%s); ADDs load their programs", strerror(errno));
	}
}

void keeper_nudge_after_reply(struct tunnel *t, const char *bpf_dir)
{
	if (t->keeper && strlen(bpf_dir) < sizeof(t->keeper_due))
		snprintf(t->keeper_due, sizeof(t->keeper_due), "%s", bpf_dir);
}

void keeper_flush(struct tunnel *t)
{
	if (!t->keeper_due[0])
		return;
	keeper_nudge(t, t->keeper_due);
	t->keeper_due[0] = '\0';
}

void keeper_stop(struct tunnel *t)
{
	struct pollfd p = { .events = POLLIN };
	char buf[16];
	int left = KEEPER_STOP_MS;

	if (!t->keeper)
		return;
	p.fd = t->keeper_fd;
	shutdown(t->keeper_fd, SHUT_WR);
	/* its end closes once the pools are removed */
	while (left > 0) {
		int r = poll(&p, 1, 100);
		ssize_t n;

		if (r < 0 && errno != EINTR)
			break;
		left -= 100;
		if (r <= 0)
			continue;
		n = recv(t->keeper_fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			break;
	}
	close(t->keeper_fd);
	t->keeper = false;
}
