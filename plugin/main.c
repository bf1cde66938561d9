/* SPDX-License-Identifier: Apache-2.0 */
/*
 * warren-cni entry point: reads the configuration from stdin and the CNI_*
 * environment, dispatches on CNI_COMMAND through a table, and prints
 * exactly one thing on stdout: the result JSON on success (exit 0) or the
 * CNI error JSON on failure (exit 1). Logs go to stderr and logFile.
 */
#include "plugin/plugin.h"

#include "conf/log.h"
#include "conf/warren.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_STDIN (4u << 20)

enum { NEED_CONF = 1, NEED_CONTAINERID = 2, NEED_NETNS = 4, NEED_IFNAME = 8, NEED_ARGS = 16 };

static const struct command {
	const char *name;
	plugin_cmd_fn fn;
	unsigned needs;
} plugin_commands[] = {
	{ "ADD", cmd_add, NEED_CONF | NEED_CONTAINERID | NEED_NETNS | NEED_IFNAME | NEED_ARGS },
	{ "DEL", cmd_del, NEED_CONF | NEED_CONTAINERID | NEED_IFNAME },
	{ "CHECK", cmd_check, NEED_CONF | NEED_CONTAINERID | NEED_NETNS | NEED_IFNAME | NEED_ARGS },
	{ "VERSION", cmd_version, 0 },
	{ "STATUS", cmd_status, NEED_CONF },
	{ "GC", cmd_gc, NEED_CONF },
};

static void plugin_write_all(const char *s)
{
	size_t len = strlen(s), off = 0;

	while (off < len) {
		ssize_t n = write(STDOUT_FILENO, s + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_error("writing to stdout failed: %s", n < 0 ? strerror(errno) : "short write");
			return;
		}
		off += (size_t)n;
	}
}

static void plugin_print_json(const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);

	if (!s) {
		log_error("out of memory printing the result");
		return;
	}
	plugin_write_all(s);
	plugin_write_all("\n");
	free(s);
}

static void plugin_print_error(const char *version, const struct cni_error *err)
{
	char *s = cni_error_json(version, err);

	log_error("%s: %s", err->msg, err->details);
	if (s)
		plugin_write_all(s);
	else /* last resort, still valid JSON */
		plugin_write_all("{\"code\":999,\"msg\":\"out of memory\",\"details\":\"\"}\n");
	free(s);
}

/* Read all of stdin into a NUL-terminated buffer. */
static int plugin_read_stdin(char **out, size_t *len, struct cni_error *err)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap), *nb;

	*out = NULL;
	*len = 0;
	if (!buf)
		return cni_error_set(err, CNI_ERR_INTERNAL, "out of memory", "reading stdin");
	for (;;) {
		ssize_t r;

		if (n + 1 >= cap) {
			if (cap >= MAX_STDIN) {
				free(buf);
				return cni_error_set(err, CNI_ERR_IO, "configuration on stdin is too large",
						     "stdin is larger than %u bytes", MAX_STDIN);
			}
			cap *= 2;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				return cni_error_set(err, CNI_ERR_INTERNAL, "out of memory", "reading stdin");
			}
			buf = nb;
		}
		r = read(STDIN_FILENO, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;

			free(buf);
			return cni_error_set(err, CNI_ERR_IO, "failed to read the configuration from stdin",
					     "read(stdin): %s", strerror(e));
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

static const char *plugin_env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static int plugin_check_env(const struct command *cmd, struct plugin_ctx *ctx, struct cni_error *err)
{
	char missing[128] = "";

	if ((cmd->needs & NEED_CONTAINERID) && !ctx->container_id)
		strcat(missing, missing[0] ? ",CNI_CONTAINERID" : "CNI_CONTAINERID");
	if ((cmd->needs & NEED_NETNS) && !ctx->netns)
		strcat(missing, missing[0] ? ",CNI_NETNS" : "CNI_NETNS");
	if ((cmd->needs & NEED_IFNAME) && !ctx->ifname)
		strcat(missing, missing[0] ? ",CNI_IFNAME" : "CNI_IFNAME");
	if (missing[0]) {
		char msg[160];

		snprintf(msg, sizeof(msg), "required env variables [%s] missing", missing);
		return cni_error_set(err, CNI_ERR_INVALID_ENV, msg,
				     "CNI_COMMAND=%s needs %s in the environment; warren-cni must be run by a CNI runtime",
				     cmd->name, missing);
	}
	if ((cmd->needs & NEED_CONTAINERID) && cni_validate_container_id(ctx->container_id, err) < 0)
		return -1;
	if ((cmd->needs & NEED_IFNAME) && cni_validate_ifname(ctx->ifname, err) < 0)
		return -1;
	return 0;
}

int main(void)
{
	struct cni_error err = { 0 };
	struct plugin_ctx ctx = { 0 };
	const struct command *cmd = NULL;
	struct cni_conf *conf = NULL;
	const char *name, *errver;
	char *in = NULL, *peek = NULL;
	json_t *result = NULL;
	size_t len = 0;
	int ret = 1;

	signal(SIGPIPE, SIG_IGN);
	wlog_init("warren-cni", NULL, WLOG_INFO);
	name = getenv("CNI_COMMAND");
	for (size_t i = 0; name && i < ARRAY_SIZE(plugin_commands); i++)
		if (!strcmp(name, plugin_commands[i].name))
			cmd = &plugin_commands[i];
	if (!cmd) {
		if (!name || !*name)
			cni_error_set(&err, CNI_ERR_INVALID_ENV, "required env variables [CNI_COMMAND] missing",
				      "set CNI_COMMAND to one of ADD, DEL, CHECK, VERSION, STATUS, GC");
		else
			cni_error_set(&err, CNI_ERR_INVALID_ENV, "unknown CNI_COMMAND",
				      "unknown CNI_COMMAND: %.64s; expected one of ADD, DEL, CHECK, VERSION, STATUS, GC",
				      name);
		goto out;
	}
	if (plugin_read_stdin(&in, &len, &err) < 0)
		goto out;
	peek = cni_peek_version(in, len);
	ctx.stdin_version = peek;
	if (cmd->needs & NEED_CONF) {
		if (cni_conf_parse(in, len, &conf, &err) < 0)
			goto out;
		ctx.conf = conf;
		if (conf->log_file || conf->log_level) {
			enum wlog_level lvl = WLOG_INFO;
			int r;

			if (conf->log_level && *conf->log_level)
				wlog_parse_level(conf->log_level, &lvl);
			r = wlog_init("warren-cni", conf->log_file, lvl);
			if (r < 0)
				log_warn("cannot open logFile %s: %s; logging to stderr only", conf->log_file,
					 strerror(-r));
		}
	}
	ctx.container_id = plugin_env("CNI_CONTAINERID");
	ctx.netns = plugin_env("CNI_NETNS");
	ctx.ifname = plugin_env("CNI_IFNAME");
	ctx.cni_args = plugin_env("CNI_ARGS");
	if (plugin_check_env(cmd, &ctx, &err) < 0)
		goto out;
	if (cmd->needs & NEED_CONF) {
		struct cni_error aerr = { 0 };

		ctx.args_ok = cni_args_parse(ctx.cni_args, &ctx.args, &aerr) == 0;
		if (!ctx.args_ok && (cmd->needs & NEED_ARGS)) {
			err = aerr;
			goto out;
		}
		if (!ctx.args_ok)
			log_warn("%s: %s; continuing (%s is best effort)", aerr.msg, aerr.details, cmd->name);
	}
	log_debug("%s container=%s netns=%s ifname=%s pod=%s/%s", cmd->name, ctx.container_id ?: "-",
		  ctx.netns ?: "-", ctx.ifname ?: "-", ctx.args.pod_namespace ?: "-", ctx.args.pod_name ?: "-");
	if (cmd->fn(&ctx, &result, &err) < 0)
		goto out;
	if (result)
		plugin_print_json(result);
	ret = 0;
out:
	if (ret) {
		/* The error speaks the protocol version in use, when we know it. */
		errver = conf ? conf->cni_version : cni_version_supported(peek) ? peek : CNI_VERSION_LATEST;
		if (!err.code)
			cni_error_set(&err, CNI_ERR_INTERNAL, "internal error", "a command failed without a reason");
		plugin_print_error(errver, &err);
	}
	json_decref(result);
	cni_args_release(&ctx.args);
	cni_conf_free(conf);
	free(peek);
	free(in);
	wlog_close();
	return ret;
}
