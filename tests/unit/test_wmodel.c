/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of waypoint/wmodel.c: which Services a refused object leaves
 * failing closed (an HTTPRoute's Service parents, its namespace when they
 * cannot be read, nothing for an ingress parent; a policy's namespace, all
 * in the root namespace), and the lookup by Service.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "waypoint/wmodel.h"
#include "tests/unit/t.h"

static json_t *obj(const char *text)
{
	json_t *o = json_loads(text, 0, NULL);

	if (!o)
		fprintf(stderr, "# bad JSON in the test: %s\n", text);
	return o;
}

static const char *refused_for(const char *kind, const char *text, const char *ns, const char *name)
{
	static char out[800];
	json_t *refused = json_object(), *o = obj(text);
	struct wmodel wm = { .refused = refused };
	const char *why;

	wmodel_refuse(refused, kind, "k", o, "bad field", "istio-system");
	why = wmodel_refused(&wm, ns, name);
	snprintf(out, sizeof(out), "%s", why ? why : "");
	json_decref(o);
	json_decref(refused);
	return out;
}

static void test_route_parents(void)
{
	const char *two = "{\"metadata\": {\"namespace\": \"shop\"}, \"spec\": {\"parentRefs\": ["
			  "{\"group\": \"\", \"kind\": \"Service\", \"name\": \"cart\"},"
			  "{\"kind\": \"Service\", \"name\": \"pay\", \"namespace\": \"bank\"},"
			  "{\"name\": \"ingress\"}]}}";

	T_ASSERT_STR(refused_for("HTTPRoute", two, "shop", "cart"), "HTTPRoute k refused: bad field");
	T_ASSERT(refused_for("HTTPRoute", two, "bank", "pay")[0]);
	/* not named: the other Services of shop, and the ingress parent */
	T_ASSERT_STR(refused_for("HTTPRoute", two, "shop", "other"), "");
	T_ASSERT_STR(refused_for("HTTPRoute", two, "shop", "ingress"), "");
	T_ASSERT_STR(refused_for("HTTPRoute", two, "bank", "cart"), "");
}

static void test_route_unreadable(void)
{
	/* parents that cannot be read: every Service of the route's namespace */
	const char *cases[] = {
		"{\"metadata\": {\"namespace\": \"shop\"}, \"spec\": {}}",
		"{\"metadata\": {\"namespace\": \"shop\"}, \"spec\": {\"parentRefs\": \"cart\"}}",
		"{\"metadata\": {\"namespace\": \"shop\"}, \"spec\": {\"parentRefs\": [7]}}",
		"{\"metadata\": {\"namespace\": \"shop\"}, \"spec\": {\"parentRefs\": [{\"kind\": \"Service\"}]}}",
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		T_ASSERT(refused_for("HTTPRoute", cases[i], "shop", "anything")[0]);
		T_ASSERT_STR(refused_for("HTTPRoute", cases[i], "bank", "anything"), "");
	}
}

static void test_policies_and_others(void)
{
	const char *pol = "{\"metadata\": {\"namespace\": \"shop\"}}";
	const char *root = "{\"metadata\": {\"namespace\": \"istio-system\"}}";

	T_ASSERT(refused_for("AuthorizationPolicy", pol, "shop", "cart")[0]);
	T_ASSERT_STR(refused_for("AuthorizationPolicy", pol, "bank", "cart"), "");
	T_ASSERT(refused_for("AuthorizationPolicy", root, "bank", "cart")[0]);
	/* a refused Service or Gateway is absent from the model: nothing more */
	T_ASSERT_STR(refused_for("Service", pol, "shop", "cart"), "");
	T_ASSERT_STR(refused_for("Gateway", pol, "shop", "cart"), "");
	T_ASSERT_STR(refused_for("HTTPRoute", "{\"spec\": {}}", "shop", "cart"), "");
}

static void test_refs(void)
{
	struct wmodel *wm = wmodel_new(NULL, NULL, json_object(), 3);

	T_ASSERT(wm && wm->gen == 3 && wm->refs == 1);
	T_ASSERT(!wmodel_refused(wm, "shop", "cart"));
	T_ASSERT(wmodel_ref(wm) == wm && wm->refs == 2);
	wmodel_unref(wm);
	T_ASSERT_INT(wm->refs, 1);
	wmodel_unref(wm); /* freed: ASan and the leak checker see it */
	wmodel_unref(NULL);
}

T_MAIN(T_CASE(test_route_parents), T_CASE(test_route_unreadable), T_CASE(test_policies_and_others),
       T_CASE(test_refs))
