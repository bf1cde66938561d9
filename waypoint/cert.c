/* SPDX-License-Identifier: Apache-2.0 */
/* The waypoint's certificate (contract in waypoint/cert.h). */
#include "waypoint/cert.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "conf/log.h"
#include "tunnel/ca.h"
#include "tunnel/ca_client.h"
#include "tunnel/identity.h"
#include "tunnel/loop.h"
#include "waypoint/proxy.h"

struct wp_cert {
	struct wp *w;
	struct mesh_ca *ca;
	struct caclient *cc;
	struct identity_mgr *mgr;
	struct identity *id;
	struct loop_timer *timer;
};

static void wpc_publish(struct wp_cert *c)
{
	bool ready = identity_ready(c->id);

	c->w->server_ctx = ready ? identity_ctx0(c->id, TLS_SERVER) : NULL;
	c->w->client_ctx = ready ? identity_ctx0(c->id, TLS_CLIENT) : NULL;
	c->w->id = identity_id(c->id);
}

static void wpc_timer_cb(struct loop *l, void *ctx);

static void wpc_arm(struct wp_cert *c)
{
	int64_t ms = identity_next_renewal_ms(c->mgr);

	c->timer = loop_timer_add(c->w->loop, ms < 0 ? 1000 : (uint64_t)ms + 10, wpc_timer_cb, c);
	if (!c->timer)
		log_error("out of memory arming the certificate renewal");
}

static void wpc_timer_cb(struct loop *l, void *ctx)
{
	struct wp_cert *c = ctx;
	bool was = identity_ready(c->id);

	(void)l;
	c->timer = NULL;
	/* local CA: issued here; warren-ca: queued, answered in wpc_issued_cb */
	identity_renew_due(c->mgr, time(NULL)); /* failures logged by the manager */
	wpc_publish(c);
	if (!was && identity_ready(c->id))
		log_info("certificate for %s issued: serving", identity_id(c->id));
	wpc_arm(c);
}

/* warren-ca's answer, on w->loop (the manager watches the client's eventfd). */
static void wpc_issued_cb(void *ctx, const struct identity *id, int ret, const char *old_serial)
{
	struct wp_cert *c = ctx;
	bool was = c->w->server_ctx != NULL;

	(void)id, (void)old_serial;
	wpc_publish(c);
	if (!ret && !was && identity_ready(c->id))
		log_info("certificate for %s issued: serving", identity_id(c->id));
	else if (ret && !identity_ready(c->id))
		log_warn("no certificate for %s yet (%s): refusing every connection until warren-ca signs one",
			 identity_id(c->id), identity_error(c->id));
	if (c->timer)
		loop_timer_cancel(c->w->loop, c->timer);
	wpc_arm(c);
}

int wp_cert_start(struct wp *w, const struct wp_cert_conf *conf, struct wp_cert **out)
{
	struct wp_cert *c = calloc(1, sizeof(*c));
	char err[512] = "";
	int ret;

	*out = c;
	if (!c)
		return -ENOMEM;
	c->w = w;
	if (conf->ca_address) {
		struct caclient_conf cc = { .url = conf->ca_address, .token_file = conf->token_file,
					    .bundle_file = conf->bundle_file, .td = conf->td };

		ret = caclient_new(&cc, &c->cc);
		if (!ret)
			ret = identity_mgr_new_remote(c->cc, conf->td, &c->mgr);
	} else {
		log_warn("--ca-dir: this waypoint holds the mesh's signing key and can mint any identity (development only)");
		ret = ca_load_dir(conf->ca_dir, &c->ca, err, sizeof(err));
		if (!ret)
			ret = identity_mgr_new(c->ca, conf->td, 0, &c->mgr);
	}
	if (!ret) {
		identity_mgr_set_loop(c->mgr, w->loop);
		identity_mgr_set_issued_cb(c->mgr, wpc_issued_cb, c);
		ret = identity_acquire(c->mgr, conf->ns, conf->sa, &c->id, err, sizeof(err));
	}
	if (ret) {
		log_error("no identity for spiffe://%s/ns/%s/sa/%s: %s", conf->td, conf->ns, conf->sa,
			  err[0] ? err : "bad configuration");
		return ret;
	}
	wpc_publish(c);
	if (!identity_ready(c->id))
		log_warn("no certificate for %s yet (%s): refusing every connection until warren-ca signs one",
			 identity_id(c->id), identity_error(c->id));
	wpc_arm(c);
	return 0;
}

void wp_cert_free(struct wp_cert *c)
{
	if (!c)
		return;
	if (c->timer)
		loop_timer_cancel(c->w->loop, c->timer);
	c->w->server_ctx = c->w->client_ctx = NULL;
	identity_mgr_free(c->mgr);
	caclient_free(c->cc);
	ca_free(c->ca);
	free(c);
}

bool wp_cert_ready(const struct wp_cert *c, const char **why)
{
	if (c && c->id && identity_ready(c->id))
		return true;
	if (why)
		*why = c && c->id ? identity_error(c->id) : "no identity";
	return false;
}
