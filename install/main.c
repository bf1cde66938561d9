/* SPDX-License-Identifier: Apache-2.0 */
/*
 * warren-install: runs beside warren-tunnel in the DaemonSet's pod. It
 * copies warren-cni into the node's CNI bin directory, appends it to the
 * primary network configuration (install/chain.h), and then watches both
 * directories (inotify): when another agent rewrites the configuration
 * without warren-cni, or removes the binary, it puts them back at once.
 *
 * On SIGTERM it decides between an upgrade or restart and an uninstall
 * (--on-exit auto): only when the API server says its DaemonSet is gone or
 * being deleted (404, a deletionTimestamp, or its ServiceAccount or role
 * removed: 401/403 where the check had worked at start) does it take
 * warren-cni out, restoring the configuration byte for byte, and delete
 * the binary. Otherwise the chain stays: new pods in the mesh wait (ADD
 * fails and is retried) until the next tunnel is ready, never start
 * uncaptured. Two installers on one node (a rollout's surge pod) take
 * turns through a lock in the state directory.
 *
 * Exit status: 0 after a signal, 1 on an error that waiting cannot fix
 * (a read-only directory, a bad option), with the reason logged.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/errbuf.h"
#include "conf/kube.h"
#include "conf/log.h"
#include "install/chain.h"
#include "install/cnifs.h"

#define INST_RECHECK_MS 30000
#define INST_LOCK_POLL_MS 250
#define INST_MAX_EXCLUDE 64

enum inst_on_exit { ON_EXIT_AUTO, ON_EXIT_UNINSTALL, ON_EXIT_KEEP };

struct inst {
	const char *bin_dir, *conf_dir, *conf_name, *plugin, *state_dir, *daemonset, *sa_dir;
	enum inst_on_exit on_exit;
	struct chain_settings cs;
	const char *exclude[INST_MAX_EXCLUDE];
	json_t *entry;
	char last_err[1024];   /* the last problem logged, to log each once */
	bool api_checked;      /* --on-exit auto: the DaemonSet could be read at start */
};

static void inst_report(struct inst *in, enum wlog_level level, const char *msg)
{
	if (!strcmp(in->last_err, msg))
		return;
	snprintf(in->last_err, sizeof(in->last_err), "%s", msg);
	wlog(level, "%s", msg);
}

static bool inst_fatal(int ret)
{
	return ret == -EROFS || ret == -EACCES || ret == -EPERM || ret == -ENOSPC || ret == -EDQUOT;
}

/* Is warren-cni in place? Puts it there when not. 0, -ENOENT (no
 * configuration yet), -EINVAL (unparsable: untouched), or a write error. */
static int inst_reconcile(struct inst *in)
{
	char name[NAME_MAX + 1], list[NAME_MAX + 1], err[768], msg[1024];
	struct cnifs_record rec = { 0 }, old;
	char *buf = NULL, *out = NULL;
	size_t len, outlen;
	enum chain_kind kind;
	struct stat st;
	bool had;
	int ret;

	if (!cnifs_same(in->plugin, in->bin_dir, CHAIN_PLUGIN_TYPE)) {
		ret = cnifs_copy(in->plugin, in->bin_dir, CHAIN_PLUGIN_TYPE, err, sizeof(err));
		if (ret) {
			errbuf_set(msg, sizeof(msg), "warren-cni not installed: %s", err);
			inst_report(in, WLOG_ERROR, msg);
			return ret;
		}
		log_info("installed %s/%s", in->bin_dir, CHAIN_PLUGIN_TYPE);
	}
	ret = cnifs_pick(in->conf_dir, in->conf_name, name, sizeof(name), err, sizeof(err));
	if (ret) {
		errbuf_set(msg, sizeof(msg), "%s%s", err,
			 ret == -ENOENT ? "; waiting for the network's configuration" : "");
		inst_report(in, ret == -ENOENT ? WLOG_WARN : WLOG_ERROR, msg);
		return ret;
	}
	ret = cnifs_read(in->conf_dir, name, &buf, &len, &st, err, sizeof(err));
	if (ret)
		goto report;
	chain_kind_of(name, &kind);
	ret = chain_insert(buf, len, kind, in->entry, &out, &outlen, &had, err, sizeof(err));
	if (ret == CHAIN_SAME) {
		in->last_err[0] = '\0';
		goto out;
	}
	if (ret) {
		errbuf_set(msg, sizeof(msg), "%s/%s: %s; left untouched until it changes", in->conf_dir,
			 name, err);
		inst_report(in, WLOG_ERROR, msg);
		goto out;
	}
	snprintf(list, sizeof(list), "%s", name);
	if (kind == CHAIN_CONF && chain_list_name(name, list, sizeof(list))) {
		ret = -ENAMETOOLONG;
		errbuf_set(err, sizeof(err), "%s: name too long", name);
		goto report;
	}
	if (!had) {
		/* the file as the network made it: what uninstall restores */
		snprintf(rec.orig_name, sizeof(rec.orig_name), "%s", name);
		rec.orig_mode = st.st_mode;
		rec.orig = buf;
		rec.orig_len = len;
	} else if (cnifs_record_load(in->state_dir, &old, err, sizeof(err)) == 0) {
		/* our entry with other settings (an upgrade): same original */
		rec = old;
		free(rec.ours);
	} else {
		log_warn("%s/%s holds warren-cni but %s has no record of the original (%s); uninstall will remove the entry as JSON",
			 in->conf_dir, name, in->state_dir, err);
		snprintf(rec.orig_name, sizeof(rec.orig_name), "%s", name);
		rec.orig_mode = st.st_mode;
	}
	snprintf(rec.name, sizeof(rec.name), "%s", list);
	rec.ours = out;
	rec.ours_len = outlen;
	if (rec.orig) {
		ret = cnifs_record_save(in->state_dir, &rec, err, sizeof(err));
		if (ret)
			goto report;
	}
	ret = cnifs_write(in->conf_dir, list, out, outlen, st.st_mode, st.st_uid, st.st_gid, err,
			  sizeof(err));
	if (ret)
		goto report;
	if (strcmp(list, name)) {
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/%s", in->conf_dir, name);
		if (unlink(path) && errno != ENOENT) {
			ret = -errno;
			errbuf_set(err, sizeof(err), "cannot remove %s after wrapping it into %s: %s", path,
				 list, strerror(-ret));
			goto report;
		}
	}
	log_info("%s/%s: warren-cni %s the chain%s", in->conf_dir, list, had ? "updated in" : "added to",
		 strcmp(list, name) ? " (the .conf wrapped into a .conflist)" : "");
	in->last_err[0] = '\0';
	ret = 0;
	goto out;
report:
	errbuf_set(msg, sizeof(msg), "warren-cni not chained: %s", err);
	inst_report(in, WLOG_ERROR, msg);
out:
	if (rec.orig != buf)
		free(rec.orig);
	free(buf);
	free(out);
	return ret;
}

/* Takes warren-cni out of every configuration in the directory (as JSON,
 * keeping each file's mode). */
static int inst_remove_entries(struct inst *in)
{
	char name[NAME_MAX + 1], err[768], *buf, *out;
	size_t len, outlen;
	struct stat st;
	int ret, rc = 0;

	/* the primary first; then any file we may have chained earlier */
	for (int pass = 0; pass < 2; pass++) {
		ret = cnifs_pick(in->conf_dir, pass ? NULL : in->conf_name, name, sizeof(name), err,
				 sizeof(err));
		if (ret)
			continue;
		if (cnifs_read(in->conf_dir, name, &buf, &len, &st, err, sizeof(err))) {
			log_error("uninstall: %s", err);
			rc = -EIO;
			continue;
		}
		ret = chain_remove(buf, len, &out, &outlen, err, sizeof(err));
		if (ret == 0) {
			ret = cnifs_write(in->conf_dir, name, out, outlen, st.st_mode, st.st_uid, st.st_gid,
					  err, sizeof(err));
			if (ret) {
				log_error("uninstall: %s", err);
				rc = ret;
			} else {
				log_info("uninstall: %s/%s changed after install: warren-cni's entry removed (the rest re-serialized)",
					 in->conf_dir, name);
			}
		}
		free(buf);
		free(out);
	}
	return rc;
}

static int inst_uninstall(struct inst *in)
{
	struct cnifs_record rec;
	char err[768], path[PATH_MAX], *cur = NULL;
	size_t len;
	struct stat st;
	int ret, rc = 0;

	ret = cnifs_record_load(in->state_dir, &rec, err, sizeof(err));
	if (ret == 0 && cnifs_read(in->conf_dir, rec.name, &cur, &len, &st, err, sizeof(err)) == 0 &&
	    len == rec.ours_len && !memcmp(cur, rec.ours, len)) {
		ret = cnifs_write(in->conf_dir, rec.orig_name, rec.orig, rec.orig_len, rec.orig_mode,
				  st.st_uid, st.st_gid, err, sizeof(err));
		if (!ret && strcmp(rec.orig_name, rec.name)) {
			snprintf(path, sizeof(path), "%s/%s", in->conf_dir, rec.name);
			if (unlink(path) && errno != ENOENT)
				ret = -errno;
		}
		if (ret) {
			log_error("uninstall: restoring %s/%s: %s", in->conf_dir, rec.orig_name,
				  ret == -errno ? strerror(errno) : err);
			rc = ret;
		} else {
			log_info("uninstall: %s/%s restored byte for byte", in->conf_dir, rec.orig_name);
		}
	} else if (ret == 0) {
		log_info("uninstall: %s/%s is not what warren-install wrote; removing the entry only",
			 in->conf_dir, rec.name);
	}
	if (ret == 0)
		cnifs_record_free(&rec);
	free(cur);
	if (!rc)
		rc = inst_remove_entries(in);
	snprintf(path, sizeof(path), "%s/%s", in->bin_dir, CHAIN_PLUGIN_TYPE);
	if (unlink(path) && errno != ENOENT) {
		log_error("uninstall: cannot remove %s: %s", path, strerror(errno));
		rc = rc ? rc : -errno;
	} else {
		log_info("uninstall: %s removed", path);
	}
	if (!rc && cnifs_record_drop(in->state_dir, err, sizeof(err))) {
		log_error("uninstall: %s", err);
		rc = -EIO;
	}
	return rc;
}

struct inst_body {
	char *p;
	size_t n;
};

/* A DaemonSet or a Status: small; more than 1 MiB aborts the transfer. */
static size_t inst_curl_body(char *p, size_t sz, size_t n, void *ctx)
{
	struct inst_body *b = ctx;
	size_t len = sz * n;
	char *np;

	if (b->n + len > (1u << 20) || !(np = realloc(b->p, b->n + len + 1)))
		return 0;
	memcpy(np + b->n, p, len);
	b->n += len;
	np[b->n] = '\0';
	b->p = np;
	return len;
}

/* GET our DaemonSet. The HTTP status (0 when the API could not be reached)
 * and whether it carries a deletionTimestamp. */
static long inst_daemonset(struct inst *in, bool *deleting, char *err, size_t errlen)
{
	struct kube_creds kc;
	struct curl_slist *hdr = NULL;
	char url[1024], auth[8192], *tok = NULL;
	struct inst_body body = { 0 };
	json_t *ds;
	long code = 0;
	CURL *c;

	*deleting = false;
	if (kube_config_incluster(in->sa_dir, &kc, err, errlen))
		return 0;
	if (!kc.namespace || kube_token_read(kc.token_file, &tok, err, errlen)) {
		if (!kc.namespace)
			errbuf_set(err, errlen, "no namespace in %s", in->sa_dir ? in->sa_dir : KUBE_SA_DIR);
		kube_creds_free(&kc);
		return 0;
	}
	snprintf(url, sizeof(url), "%s/apis/apps/v1/namespaces/%s/daemonsets/%s", kc.server,
		 kc.namespace, in->daemonset);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
	c = curl_easy_init();
	hdr = curl_slist_append(NULL, auth);
	if (c && hdr) {
		CURLcode cr;

		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(c, CURLOPT_CAINFO, kc.ca_file);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, inst_curl_body);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
		cr = curl_easy_perform(c);
		if (cr == CURLE_OK)
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		else
			errbuf_set(err, errlen, "GET %s: %s", url, curl_easy_strerror(cr));
	}
	if (code == 200 && body.p) {
		ds = json_loadb(body.p, body.n, 0, NULL);
		*deleting = json_object_get(json_object_get(ds, "metadata"), "deletionTimestamp") != NULL;
		json_decref(ds);
	} else if (code) {
		errbuf_set(err, errlen, "GET %s: HTTP %ld", url, code);
	}
	free(body.p);
	curl_slist_free_all(hdr);
	if (c)
		curl_easy_cleanup(c);
	free(tok);
	kube_creds_free(&kc);
	return code;
}

static bool inst_should_uninstall(struct inst *in)
{
	char err[1024] = "";
	bool deleting;
	long code;

	if (in->on_exit != ON_EXIT_AUTO)
		return in->on_exit == ON_EXIT_UNINSTALL;
	code = inst_daemonset(in, &deleting, err, sizeof(err));
	if (code == 404 || (code == 200 && deleting) ||
	    ((code == 401 || code == 403) && in->api_checked)) {
		log_info("DaemonSet %s %s: uninstalling", in->daemonset,
			 code == 404 ? "is gone" : code == 200 ? "is being deleted" :
			 "can no longer be read (its ServiceAccount or role was removed)");
		return true;
	}
	if (code == 200)
		log_info("DaemonSet %s stays: an upgrade or a restart; warren-cni stays in the chain", in->daemonset);
	else
		log_warn("cannot tell an uninstall from a restart (%s): warren-cni stays in the chain", err);
	return false;
}

static int inst_split(struct inst *in, char *list)
{
	size_t n = 0;

	for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (n == INST_MAX_EXCLUDE)
			return -E2BIG;
		in->exclude[n++] = t;
	}
	in->cs.exclude_ns = in->exclude;
	in->cs.n_exclude = n;
	return 0;
}

static void inst_usage(FILE *f)
{
	fprintf(f,
		"usage: warren-install [OPTIONS]     install, then watch until SIGTERM\n"
		"       warren-install --uninstall [OPTIONS]\n"
		"  --cni-bin-dir DIR        the node's CNI bin directory [/host/opt/cni/bin]\n"
		"  --cni-conf-dir DIR       the node's CNI configuration directory [/host/etc/cni/net.d]\n"
		"  --cni-conf-name NAME     the configuration to chain into [the lexically first]\n"
		"  --plugin PATH            the warren-cni binary to copy [/usr/local/bin/warren-cni]\n"
		"  --state-dir DIR          what uninstall restores [/var/lib/warren/cni]\n"
		"  --tunnel-socket PATH     the tunnel's plugin socket [/var/run/warren/tunnel.sock]\n"
		"  --exclude-namespaces L   comma-separated [kube-system]\n"
		"  --cni-log-file PATH      warren-cni's logFile [none]\n"
		"  --cni-log-level LEVEL    warren-cni's logLevel [none: info]\n"
		"  --on-exit auto|uninstall|keep   on SIGTERM [auto: uninstall when the DaemonSet is deleted]\n"
		"  --daemonset NAME         the DaemonSet auto looks up, in the pod's namespace [warren]\n"
		"  --log-level LEVEL        error|warn|info|debug [info]\n");
}

static int inst_options(struct inst *in, int argc, char **argv, bool *uninstall)
{
	static const struct option opts[] = {
		{ "cni-bin-dir", required_argument, NULL, 'b' },
		{ "cni-conf-dir", required_argument, NULL, 'c' },
		{ "cni-conf-name", required_argument, NULL, 'n' },
		{ "plugin", required_argument, NULL, 'p' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "tunnel-socket", required_argument, NULL, 't' },
		{ "exclude-namespaces", required_argument, NULL, 'x' },
		{ "cni-log-file", required_argument, NULL, 'f' },
		{ "cni-log-level", required_argument, NULL, 'L' },
		{ "on-exit", required_argument, NULL, 'e' },
		{ "daemonset", required_argument, NULL, 'd' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "uninstall", no_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static char exclude_default[] = "kube-system";
	enum wlog_level lvl;
	int o;

	in->bin_dir = "/host/opt/cni/bin";
	in->conf_dir = "/host/etc/cni/net.d";
	in->plugin = "/usr/local/bin/warren-cni";
	in->state_dir = "/var/lib/warren/cni";
	in->daemonset = "warren";
	in->sa_dir = getenv("WARREN_INSTALL_SA_DIR"); /* tests; NULL: the pod's */
	in->cs.tunnel_socket = "/var/run/warren/tunnel.sock";
	inst_split(in, exclude_default);
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'b': in->bin_dir = optarg; break;
		case 'c': in->conf_dir = optarg; break;
		case 'n': in->conf_name = optarg; break;
		case 'p': in->plugin = optarg; break;
		case 's': in->state_dir = optarg; break;
		case 't': in->cs.tunnel_socket = optarg; break;
		case 'x':
			if (inst_split(in, optarg)) {
				fprintf(stderr, "warren-install: --exclude-namespaces: more than %d names\n",
					INST_MAX_EXCLUDE);
				return -EINVAL;
			}
			break;
		case 'f': in->cs.log_file = optarg; break;
		case 'L':
			if (wlog_parse_level(optarg, &lvl)) {
				fprintf(stderr, "warren-install: --cni-log-level: \"%s\" is not error, warn, info or debug\n",
					optarg);
				return -EINVAL;
			}
			in->cs.log_level = optarg;
			break;
		case 'e':
			if (!strcmp(optarg, "auto"))
				in->on_exit = ON_EXIT_AUTO;
			else if (!strcmp(optarg, "uninstall"))
				in->on_exit = ON_EXIT_UNINSTALL;
			else if (!strcmp(optarg, "keep"))
				in->on_exit = ON_EXIT_KEEP;
			else {
				fprintf(stderr, "warren-install: --on-exit: \"%s\" is not auto, uninstall or keep\n",
					optarg);
				return -EINVAL;
			}
			break;
		case 'd': in->daemonset = optarg; break;
		case 'l':
			if (wlog_parse_level(optarg, &lvl)) {
				fprintf(stderr, "warren-install: --log-level: \"%s\" is not error, warn, info or debug\n",
					optarg);
				return -EINVAL;
			}
			wlog_set_level(lvl);
			break;
		case 'u': *uninstall = true; break;
		case 'h': inst_usage(stdout); exit(0);
		default: inst_usage(stderr); return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "warren-install: unexpected argument \"%s\"\n", argv[optind]);
		return -EINVAL;
	}
	if (in->conf_name && chain_kind_of(in->conf_name, &(enum chain_kind){ 0 })) {
		fprintf(stderr, "warren-install: --cni-conf-name: \"%s\" is not a .conf, .conflist or .json\n",
			in->conf_name);
		return -EINVAL;
	}
	return 0;
}

/* Takes the state directory's lock, waiting while another installer holds
 * it; false when a signal came first. */
static bool inst_lock(struct inst *in, int sfd)
{
	char path[PATH_MAX];
	bool said = false;
	int fd;

	if (mkdir(in->state_dir, 0700) && errno != EEXIST) {
		log_error("cannot create the state directory %s: %s", in->state_dir, strerror(errno));
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/lock", in->state_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_error("cannot open %s: %s", path, strerror(errno));
		exit(1);
	}
	/* held until exit: the fd is never closed */
	while (flock(fd, LOCK_EX | LOCK_NB)) {
		struct pollfd p = { .fd = sfd, .events = POLLIN };

		if (!said)
			log_info("another warren-install holds %s (the pod this one replaces); waiting", path);
		said = true;
		if (poll(&p, 1, INST_LOCK_POLL_MS) > 0)
			return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	struct inst in = { 0 };
	bool uninstall = false, deleting;
	char err[1024] = "";
	sigset_t set;
	int sfd, ifd, ret, rc = 1;

	wlog_init("warren-install", NULL, WLOG_INFO);
	if (inst_options(&in, argc, argv, &uninstall))
		return 1;
	in.entry = chain_entry(&in.cs);
	if (!in.entry || curl_global_init(CURL_GLOBAL_DEFAULT)) {
		log_error("out of memory");
		json_decref(in.entry);
		return 1;
	}
	if (uninstall) {
		rc = inst_uninstall(&in) ? 1 : 0;
		goto out;
	}

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (sfd < 0 || ifd < 0) {
		log_error("signalfd/inotify: %s", strerror(errno));
		goto out;
	}
	if (inotify_add_watch(ifd, in.conf_dir, IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO |
						IN_MOVED_FROM | IN_DELETE | IN_ATTRIB) < 0 ||
	    inotify_add_watch(ifd, in.bin_dir, IN_MOVED_FROM | IN_DELETE | IN_CLOSE_WRITE |
					       IN_MOVED_TO) < 0) {
		log_error("cannot watch %s and %s: %s", in.conf_dir, in.bin_dir, strerror(errno));
		goto out;
	}
	if (!inst_lock(&in, sfd)) {
		rc = 0;
		goto out;
	}
	if (in.on_exit == ON_EXIT_AUTO) {
		long code = inst_daemonset(&in, &deleting, err, sizeof(err));

		in.api_checked = code == 200;
		if (!in.api_checked)
			log_warn("--on-exit auto: cannot read DaemonSet %s (%s); on exit warren-cni stays unless the API says the DaemonSet is gone",
				 in.daemonset, err);
	}
	log_info("chaining warren-cni (tunnel socket %s) into %s%s%s", in.cs.tunnel_socket, in.conf_dir,
		 in.conf_name ? "/" : "", in.conf_name ? in.conf_name : "");
	for (;;) {
		struct pollfd p[2] = { { .fd = sfd, .events = POLLIN }, { .fd = ifd, .events = POLLIN } };
		char evbuf[4096];

		ret = inst_reconcile(&in);
		if (inst_fatal(ret)) {
			log_error("giving up: the node's CNI directories must be writable");
			goto out;
		}
		if (poll(p, 2, INST_RECHECK_MS) < 0 && errno != EINTR) {
			log_error("poll: %s", strerror(errno));
			goto out;
		}
		if (p[0].revents)
			break;
		while (read(ifd, evbuf, sizeof(evbuf)) > 0)
			;
	}
	rc = inst_should_uninstall(&in) && inst_uninstall(&in) ? 1 : 0;
out:
	json_decref(in.entry);
	curl_global_cleanup();
	return rc;
}
