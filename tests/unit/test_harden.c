/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tunnel/harden.c on the real kernel: the tunnel's seccomp filter,
 * installed in a child process, refuses execve (and, outside sanitizer
 * builds, ptrace and fork) with EPERM while sockets, files and threads
 * still work; dropping a capability leaves it out of the thread's sets;
 * another process's lists (the pool keeper's) allow only what they list.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conf/warren.h"
#include "tunnel/harden.h"
#include "tests/unit/t.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER 1
#else
#define SANITIZER 0
#endif

/* Bits of the child's exit status: what went wrong. */
enum {
	F_INSTALL = 1, F_EXECVE = 2, F_PTRACE = 4, F_FORK = 8, F_SOCKET = 16, F_THREAD = 32,
	F_FILE = 64, F_BPF = 128,
};

static void *thread_fn(void *arg)
{
	return arg;
}

static int child(void)
{
	static char prog[] = "/bin/true";
	char *const argv[] = { prog, NULL };
	char err[256];
	static int token;
	pthread_t th;
	void *res = NULL;
	int bad = 0, fd;
	pid_t pid;

	if (harden_seccomp_install(0, err, sizeof(err)) < 0) {
		fprintf(stderr, "# %s\n", err);
		return F_INSTALL;
	}
	errno = 0;
	if (execve(argv[0], argv, NULL) != -1 || errno != EPERM)
		bad |= F_EXECVE;
	if (!SANITIZER) {
		errno = 0;
		if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != -1 || errno != EPERM)
			bad |= F_PTRACE;
		pid = fork();
		if (pid == 0)
			_exit(0); /* the filter let a process be made */
		if (pid != -1 || errno != EPERM)
			bad |= F_FORK;
		if (pid > 0)
			waitpid(pid, NULL, 0);
	}
	/* what the tunnel does all day still works */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		bad |= F_SOCKET;
	else
		close(fd);
	if (pthread_create(&th, NULL, thread_fn, &token) != 0 || pthread_join(th, &res) != 0 ||
	    res != &token)
		bad |= F_THREAD;
	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		bad |= F_FILE;
	else
		close(fd);
	/* bpf(2): a pinned object may be opened (here: none there, ENOENT or
	 * EPERM from the kernel's bpffs checks, never the filter's EPERM for
	 * every command), nothing may be loaded or created */
	{
		union bpf_attr a;

		memset(&a, 0, sizeof(a));
		a.map_type = BPF_MAP_TYPE_ARRAY;
		a.key_size = 4;
		a.value_size = 4;
		a.max_entries = 1;
		errno = 0;
		if (syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof(a)) != -1 || errno != EPERM)
			bad |= F_BPF;
		memset(&a, 0, sizeof(a));
		a.pathname = (uintptr_t)"/nonexistent/warren-test-pin";
		errno = 0;
		if (syscall(SYS_bpf, BPF_OBJ_GET, &a, sizeof(a)) != -1 || errno != ENOENT)
			bad |= F_BPF;
	}
	return bad;
}

static int run_child(int (*fn)(void))
{
	int status = 0;
	pid_t pid = fork();

	if (pid == 0)
		_exit(fn());
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	if (WIFSIGNALED(status))
		printf("#   child killed by signal %d\n", WTERMSIG(status));
	return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

static void test_filter(void)
{
	int bad = run_child(child);

	if (bad)
		printf("#   child status %#x (1 install, 2 execve, 4 ptrace, 8 fork, 16 socket, 32 thread, 64 open, 128 bpf)\n",
		       bad);
	T_ASSERT_INT(bad, 0);
}

/* The status line of /proc/self/status as a number ("CapEff", "Seccomp"). */
static unsigned long long status_field(const char *key)
{
	char line[256];
	unsigned long long v = ~0ULL;
	size_t kl = strlen(key);
	FILE *f = fopen("/proc/thread-self/status", "re");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':')
			v = strtoull(line + kl + 1, NULL, strncmp(key, "Cap", 3) ? 10 : 16);
	if (f)
		fclose(f);
	return v;
}

static int drop_child(void)
{
	char err[256];

	if (harden_drop_thread_cap(CAP_SYS_PTRACE) < 0)
		return 1;
	if (status_field("CapEff") & (1ULL << CAP_SYS_PTRACE))
		return 2;
	if (status_field("CapPrm") & (1ULL << CAP_SYS_PTRACE))
		return 4;
	if (status_field("Seccomp") != 0 || harden_seccomp_install(0, err, sizeof(err)) < 0 ||
	    status_field("Seccomp") != 2)
		return 8;
	return 0;
}

static void test_drop_cap_and_mode(void)
{
	T_ASSERT_INT(run_child(drop_child), 0);
}

/* Another process's lists (the pool keeper's, tunnel/keeper.c): only the
 * listed syscalls and bpf(2) commands pass. */
static int list_child(void)
{
	/* and what a sanitizer's runtime may call on the way out */
	static const int allowed[] = { __NR_exit, __NR_exit_group, __NR_getpid, __NR_close, __NR_write,
				       __NR_mmap, __NR_munmap, __NR_mprotect, __NR_madvise, __NR_rt_sigprocmask,
				       __NR_rt_sigaction, __NR_sigaltstack, __NR_gettid, __NR_futex };
	static const unsigned cmds[] = { BPF_OBJ_GET };
	static int many[300];
	union bpf_attr a;
	char err[256];
	int bad = 0;

	if (harden_seccomp_install_list(many, 300, cmds, 1, 0, err, sizeof(err)) != -E2BIG)
		bad |= 1; /* too long for 8-bit jumps: refused, not installed */
	if (harden_seccomp_install_list(allowed, ARRAY_SIZE(allowed), cmds, 1, 0, err, sizeof(err)) < 0)
		return bad | 2;
	if (syscall(SYS_getpid) <= 0)
		bad |= 4;
	errno = 0;
	if (syscall(SYS_getppid) != -1 || errno != EPERM)
		bad |= 8;
	memset(&a, 0, sizeof(a));
	a.pathname = (uintptr_t)"/nonexistent/warren-test-pin";
	errno = 0;
	if (syscall(SYS_bpf, BPF_OBJ_GET, &a, sizeof(a)) != -1 || errno != ENOENT)
		bad |= 16;
	memset(&a, 0, sizeof(a));
	errno = 0;
	if (syscall(SYS_bpf, BPF_LINK_CREATE, &a, sizeof(a)) != -1 || errno != EPERM)
		bad |= 32;
	return bad;
}

static void test_install_list(void)
{
	T_ASSERT_INT(run_child(list_child), 0);
}

T_MAIN(T_CASE(test_filter), T_CASE(test_drop_cap_and_mode), T_CASE(test_install_list))
