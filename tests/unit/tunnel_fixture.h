/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared by the unit tests that drive tunnel/ code without a loop or
 * sockets: a struct tunnel whose mesh model is built from JSON, and IPv4
 * socket addresses. Header-only (each test is one program).
 */
#ifndef WARREN_TESTS_TUNNEL_FIXTURE_H
#define WARREN_TESTS_TUNNEL_FIXTURE_H

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "tunnel/tunnel.h"

/* *t on conf with the model of mesh_json at generation 1. 0 or the
 * negative error of mesh_build (printed as a TAP comment). */
static inline int tfix_tunnel(struct tunnel *t, const struct tunnel_conf *conf,
			      const char *mesh_json)
{
	json_t *objs = json_loads(mesh_json, 0, NULL);
	char err[256];
	int ret;

	*t = (struct tunnel){ .magic = TUNNEL_MAGIC, .conf = conf, .handoff_fd = -1 };
	ret = mesh_build(objs, "test", &t->mesh, err, sizeof(err));
	json_decref(objs);
	if (ret < 0) {
		printf("# mesh_build: %s\n", err);
		return ret;
	}
	t->mesh_generation = 1;
	return 0;
}

static inline void tfix_addr(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	s4->sin_family = AF_INET;
	s4->sin_port = htons(port);
	inet_pton(AF_INET, ip, &s4->sin_addr);
}

#endif
