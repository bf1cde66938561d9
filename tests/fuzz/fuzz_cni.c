/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the plugin's untrusted input (conf/cni.c): the
 * input is "CNI_ARGS\nstdin-config". Runs CNI_ARGS parsing, config
 * parsing, result conversion to every supported version, the IP list, GC
 * attachments and error JSON. Leaks are failures (LeakSanitizer).
 */
#include "conf/cni.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t alen = nl ? (size_t)(nl - data) : 0;
	const char *conf_buf = (const char *)(nl ? nl + 1 : data);
	size_t conf_len = nl ? size - alen - 1 : size;
	struct cni_error err = { 0 };
	struct cni_conf *conf = NULL;
	struct cni_args args;
	char *a, *v, *ej;

	a = strndup((const char *)data, alen);
	if (!a)
		return 0;
	if (cni_args_parse(a, &args, &err) == 0)
		cni_args_release(&args);
	cni_validate_container_id(a, &err);
	cni_validate_ifname(a, &err);
	cni_version_cmp(a, "1.0.0");
	free(a);

	v = cni_peek_version(conf_buf, conf_len);
	free(v);
	if (cni_conf_parse(conf_buf, conf_len, &conf, &err) == 0) {
		json_t *ips, *gc = NULL;

		for (size_t i = 0; i < cni_n_supported_versions; i++) {
			json_t *out = cni_result_convert(conf->prev_result, cni_supported_versions[i], &err);
			char *s = out ? json_dumps(out, JSON_COMPACT) : NULL;

			free(s);
			json_decref(out);
		}
		ips = cni_result_ips(conf->prev_result);
		json_decref(ips);
		if (cni_conf_gc_valid(conf, &gc, &err) == 0)
			json_decref(gc);
		cni_conf_excluded(conf, "default");
		ej = cni_error_json(conf->cni_version, &err);
		free(ej);
		cni_conf_free(conf);
	} else {
		ej = cni_error_json(NULL, &err);
		free(ej);
	}
	return 0;
}
