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

/* Publishes the model of mesh_json (snap.h) at generation gen. 0 or the
 * negative error of mesh_build (printed as a TAP comment). */
static inline int tfix_publish(struct tunnel *t, const char *mesh_json, uint64_t gen)
{
	json_t *objs = json_loads(mesh_json, 0, NULL);
	struct mesh *m = NULL;
	char err[256];
	int ret;

	ret = mesh_build(objs, "test", &m, err, sizeof(err));
	json_decref(objs);
	if (ret < 0) {
		printf("# mesh_build: %s\n", err);
		return ret;
	}
	m->generation = gen;
	return tunnel_snap_publish(t, m, NULL);
}

/* *t on conf with the model of mesh_json at generation 1; free with
 * tunnel_snap_stop(). */
static inline int tfix_tunnel(struct tunnel *t, const struct tunnel_conf *conf,
			      const char *mesh_json)
{
	*t = (struct tunnel){ .magic = TUNNEL_MAGIC, .conf = conf, .handoff_fd = -1,
			      .snap_mu = PTHREAD_MUTEX_INITIALIZER };
	return tfix_publish(t, mesh_json, 1);
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
