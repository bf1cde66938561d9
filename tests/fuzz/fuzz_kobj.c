/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: arbitrary bytes through kobj_load_text (JSON or YAML),
 * then mesh_build and every lookup on what it built. Must never crash,
 * leak or trip a sanitizer; errors are expected and ignored.
 */
#include <stddef.h>
#include <stdint.h>

#include "conf/kobj.h"
#include "conf/mesh.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	json_t *objs = NULL;
	struct mesh *m = NULL;
	const char *why;
	char buf[64];

	if (kobj_load_text((const char *)data, size, "fuzz", &objs, err, sizeof(err)))
		return 0;
	if (mesh_build(objs, "fuzz", &m, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < m->n_pods; i++) {
			const struct mesh_pod *p = &m->pods[i];

			mesh_find_pod(m, p->namespace, p->name);
			mesh_find_pod_by_uid(m, p->uid);
			mesh_pod_enrolled(m, p->namespace, p->name, &why);
			for (size_t j = 0; j < p->n_ips; j++) {
				mesh_find_pod_by_ip(m, &p->ips[j]);
				mesh_ip_str(&p->ips[j], buf, sizeof(buf));
			}
		}
		for (size_t i = 0; i < m->n_services; i++) {
			const struct mesh_service *s = &m->services[i];

			for (size_t j = 0; j < s->n_vips; j++)
				mesh_find_service_by_vip(m, &s->vips[j]);
			for (size_t j = 0; j < m->n_pods; j++)
				mesh_selector_matches(&s->selector, &m->pods[j].labels);
		}
		for (size_t i = 0; i < m->n_namespaces; i++)
			mesh_pod_enrolled(m, m->namespaces[i].name, "absent", &why);
		mesh_free(m);
	}
	json_decref(objs);
	return 0;
}
