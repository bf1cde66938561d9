/* SPDX-License-Identifier: Apache-2.0 */
/* The conflist edit (contract in install/chain.h). */
#include "install/chain.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conf/errbuf.h"

json_t *chain_entry(const struct chain_settings *s)
{
	json_t *e = json_object(), *ex = json_array();
	bool ok = e && ex;

	ok = ok && !json_object_set_new(e, "type", json_string(CHAIN_PLUGIN_TYPE));
	ok = ok && !json_object_set_new(e, "tunnelSocket", json_string(s->tunnel_socket));
	for (size_t i = 0; ok && i < s->n_exclude; i++)
		ok = !json_array_append_new(ex, json_string(s->exclude_ns[i]));
	ok = ok && !json_object_set(e, "excludeNamespaces", ex);
	if (ok && s->log_file)
		ok = !json_object_set_new(e, "logFile", json_string(s->log_file));
	if (ok && s->log_level)
		ok = !json_object_set_new(e, "logLevel", json_string(s->log_level));
	json_decref(ex);
	if (!ok) {
		json_decref(e);
		return NULL;
	}
	return e;
}

static bool chain_ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n > m && !strcmp(s + n - m, suffix);
}

int chain_kind_of(const char *name, enum chain_kind *kind)
{
	if (chain_ends_with(name, ".conflist"))
		*kind = CHAIN_CONFLIST;
	else if (chain_ends_with(name, ".conf") || chain_ends_with(name, ".json"))
		*kind = CHAIN_CONF;
	else
		return -EINVAL;
	return 0;
}

int chain_list_name(const char *name, char *out, size_t outlen)
{
	const char *dot = strrchr(name, '.');
	size_t base = dot ? (size_t)(dot - name) : strlen(name);

	if (base + sizeof(".conflist") > outlen)
		return -ENAMETOOLONG;
	memcpy(out, name, base);
	memcpy(out + base, ".conflist", sizeof(".conflist"));
	return 0;
}

static bool chain_is_ours(const json_t *plugin)
{
	const char *type = json_string_value(json_object_get(plugin, "type"));

	return type && !strcmp(type, CHAIN_PLUGIN_TYPE);
}

/* Parses in as a JSON object; a .conflist must have a "plugins" list of
 * objects, a .conf a "type". */
static json_t *chain_parse(const char *in, size_t len, enum chain_kind kind, char *err,
			   size_t errlen)
{
	json_error_t je;
	json_t *root = json_loadb(in, len, JSON_REJECT_DUPLICATES, &je), *plugins;
	size_t i;
	json_t *p;

	if (!root) {
		errbuf_set(err, errlen, "not valid JSON: line %d column %d: %s", je.line, je.column,
			   je.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		errbuf_set(err, errlen, "expected a JSON object, got %s", errbuf_json_type(root));
		goto bad;
	}
	if (kind == CHAIN_CONF) {
		if (!json_is_string(json_object_get(root, "type"))) {
			errbuf_set(err, errlen, "a .conf needs a string \"type\"");
			goto bad;
		}
		return root;
	}
	plugins = json_object_get(root, "plugins");
	if (!json_is_array(plugins)) {
		errbuf_set(err, errlen, "a .conflist needs a \"plugins\" list");
		goto bad;
	}
	json_array_foreach(plugins, i, p) {
		if (!json_is_object(p) || !json_is_string(json_object_get(p, "type"))) {
			errbuf_set(err, errlen, "plugins[%zu]: expected a mapping with a string \"type\"",
				   i);
			goto bad;
		}
	}
	return root;
bad:
	json_decref(root);
	return NULL;
}

/* {"cniVersion", "name", "plugins": [conf without them]} */
static json_t *chain_wrap(json_t *conf)
{
	json_t *list = json_object(), *plugin = json_deep_copy(conf), *plugins = json_array();
	const char *keys[] = { "cniVersion", "name" };
	bool ok = list && plugin && plugins;

	for (size_t i = 0; ok && i < 2; i++) {
		json_t *v = json_object_get(conf, keys[i]);

		if (v)
			ok = !json_object_set(list, keys[i], v);
		json_object_del(plugin, keys[i]);
	}
	ok = ok && !json_array_append(plugins, plugin) && !json_object_set(list, "plugins", plugins);
	json_decref(plugin);
	json_decref(plugins);
	if (!ok) {
		json_decref(list);
		return NULL;
	}
	return list;
}

static int chain_dump(const json_t *root, char **out, size_t *outlen, char *err, size_t errlen)
{
	char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	size_t n;

	if (!s) {
		errbuf_set(err, errlen, "out of memory");
		return -ENOMEM;
	}
	n = strlen(s);
	*out = realloc(s, n + 2);
	if (!*out) {
		free(s);
		errbuf_set(err, errlen, "out of memory");
		return -ENOMEM;
	}
	(*out)[n] = '\n';
	(*out)[n + 1] = '\0';
	*outlen = n + 1;
	return CHAIN_CHANGED;
}

/* Removes every warren-cni entry of root's plugins; how many it removed. */
static size_t chain_drop(json_t *root)
{
	json_t *plugins = json_object_get(root, "plugins");
	size_t n = 0;

	for (size_t i = 0; i < json_array_size(plugins);) {
		if (chain_is_ours(json_array_get(plugins, i))) {
			json_array_remove(plugins, i);
			n++;
		} else {
			i++;
		}
	}
	return n;
}

int chain_insert(const char *in, size_t len, enum chain_kind kind, const json_t *entry,
		 char **out, size_t *outlen, bool *had, char *err, size_t errlen)
{
	json_t *root, *plugins, *last;
	size_t n;
	int ret;

	*out = NULL;
	*outlen = 0;
	if (had)
		*had = false;
	root = chain_parse(in, len, kind, err, errlen);
	if (!root)
		return -EINVAL;
	if (kind == CHAIN_CONF) {
		bool ours = chain_is_ours(root);
		json_t *list = ours ? NULL : chain_wrap(root);

		json_decref(root);
		if (!list) {
			errbuf_set(err, errlen, ours ? "the file is warren-cni's own entry, not a network" :
				   "out of memory");
			return ours ? -EINVAL : -ENOMEM;
		}
		root = list;
	}
	plugins = json_object_get(root, "plugins");
	n = json_array_size(plugins);
	last = n ? json_array_get(plugins, n - 1) : NULL;
	if (kind == CHAIN_CONFLIST && last && json_equal(last, entry)) {
		/* the last entry is ours, as wanted; others of ours earlier? */
		size_t ours = 0;

		for (size_t i = 0; i < n; i++)
			ours += chain_is_ours(json_array_get(plugins, i));
		if (ours == 1) {
			if (had)
				*had = true;
			json_decref(root);
			return CHAIN_SAME;
		}
	}
	if (!n) {
		json_decref(root);
		errbuf_set(err, errlen, "\"plugins\" is empty: no network to chain after");
		return -EINVAL;
	}
	if (chain_drop(root) && had)
		*had = true;
	if (!json_array_size(plugins)) {
		json_decref(root);
		errbuf_set(err, errlen, "\"plugins\" holds only warren-cni: no network to chain after");
		return -EINVAL;
	}
	if (json_array_append(plugins, (json_t *)entry)) {
		json_decref(root);
		errbuf_set(err, errlen, "out of memory");
		return -ENOMEM;
	}
	ret = chain_dump(root, out, outlen, err, errlen);
	json_decref(root);
	return ret;
}

int chain_remove(const char *in, size_t len, char **out, size_t *outlen, char *err,
		 size_t errlen)
{
	json_t *root = chain_parse(in, len, CHAIN_CONFLIST, err, errlen);
	int ret;

	*out = NULL;
	*outlen = 0;
	if (!root)
		return -EINVAL;
	if (!chain_drop(root)) {
		json_decref(root);
		return CHAIN_SAME;
	}
	ret = chain_dump(root, out, outlen, err, errlen);
	json_decref(root);
	return ret;
}

bool chain_has(const char *in, size_t len)
{
	json_t *root = chain_parse(in, len, CHAIN_CONFLIST, NULL, 0), *p;
	bool found = false;
	size_t i;

	if (!root)
		return false;
	json_array_foreach(json_object_get(root, "plugins"), i, p)
		found = found || chain_is_ours(p);
	json_decref(root);
	return found;
}
