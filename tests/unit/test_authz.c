/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of model/authz.c. The table below is the specification of the
 * L4 policy engine: each case is YAML policy text (loaded with
 * kobj_load_text), a destination workload, a connection, and the expected
 * decision, deciding policy and, optionally, a reason and a policy message
 * substring. Each case prints one TAP line.
 *
 * With AUTHZ_CASES_JSON=<file> in the environment the table is also written
 * there as JSON (policies already parsed), for the real-connection tests;
 * tests/authz_cases.json is that output.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "model/authz.h"
#include "conf/kobj.h"
#include "tests/unit/t.h"

#define AP(ns, name)                                                                   \
	"---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n" \
	"  name: " name "\n  namespace: " ns "\n"
#define APB(ns, name)                                                                       \
	"---\napiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\nmetadata:\n" \
	"  name: " name "\n  namespace: " ns "\n"
#define PA(ns, name)                                                                  \
	"---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n" \
	"  name: " name "\n  namespace: " ns "\n"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define PLAIN "-" /* no peer identity */
#define ID_SLEEP "spiffe://cluster.local/ns/client/sa/sleep"
#define ID(ns, sa) "spiffe://cluster.local/ns/" ns "/sa/" sa

/* Defaults: workload app/web {app=web,version=v1}; conn 10.0.0.1 ->
 * 10.0.1.5:8080 from ID_SLEEP. */
struct acase {
	const char *name;
	const char *yaml;
	const char *ns, *wname, *labels; /* labels "k=v,k=v"; "" none */
	const char *src, *dst;
	int port;
	const char *id; /* PLAIN for plaintext */
	int allow;
	const char *policy;
	const char *reason; /* substring, optional */
	const char *msg;    /* substring of some policy message, optional */
};

static const struct acase cases[] = {
	/* ---- basics and edge rules ---- */
	{ .name = "no policies: allow", .yaml = "", .allow = 1, .policy = AUTHZ_NO_POLICIES },
	{ .name = "ALLOW with spec {} (no rules) allows nothing",
	  .yaml = AP("app", "allow-nothing") "spec: {}\n",
	  .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED, .reason = "none matched" },
	{ .name = "ALLOW without spec allows nothing",
	  .yaml = AP("app", "allow-nothing"),
	  .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED },
	{ .name = "ALLOW with rules [{}] allows everything",
	  .yaml = AP("app", "allow-all") "spec:\n  rules:\n  - {}\n",
	  .allow = 1, .policy = "app/allow-all", .reason = "allowed by ALLOW policy app/allow-all" },
	{ .name = "ALLOW rules [{}] also allows plaintext",
	  .yaml = AP("app", "allow-all") "spec:\n  rules:\n  - {}\n", .id = PLAIN,
	  .allow = 1, .policy = "app/allow-all" },
	{ .name = "DENY with rules [{}] denies everything",
	  .yaml = AP("app", "deny-all") "spec:\n  action: DENY\n  rules:\n  - {}\n",
	  .allow = 0, .policy = "app/deny-all", .reason = "denied by DENY policy app/deny-all" },
	{ .name = "DENY without rules never matches (warning)",
	  .yaml = AP("app", "deny-none") "spec:\n  action: DENY\n",
	  .allow = 1, .policy = AUTHZ_NO_ALLOW_POLICY, .msg = "never matches" },
	{ .name = "v1beta1 apiVersion is accepted",
	  .yaml = APB("app", "allow-all") "spec:\n  rules:\n  - {}\n",
	  .allow = 1, .policy = "app/allow-all" },
	{ .name = "DENY wins over a matching ALLOW",
	  .yaml = AP("app", "a-allow") "spec:\n  rules:\n  - {}\n"
		  AP("app", "z-deny") "spec:\n  action: DENY\n  rules:\n  - to:\n    - operation:\n        ports: [\"8080\"]\n",
	  .allow = 0, .policy = "app/z-deny" },
	{ .name = "second ALLOW policy matches",
	  .yaml = AP("app", "a") "spec:\n  rules:\n  - to:\n    - operation:\n        ports: [\"1\"]\n"
		  AP("app", "b") "spec:\n  rules:\n  - to:\n    - operation:\n        ports: [\"8080\"]\n",
	  .allow = 1, .policy = "app/b" },
	{ .name = "rules are OR-ed",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - to:\n    - operation:\n        ports: [\"1\"]\n"
		  "  - from:\n    - source:\n        namespaces: [client]\n",
	  .allow = 1, .policy = "app/p" },
	{ .name = "from and to of one rule are AND-ed",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        namespaces: [client]\n"
		  "    to:\n    - operation:\n        ports: [\"9090\"]\n",
	  .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED },
	{ .name = "from entries are OR-ed",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        namespaces: [nope]\n"
		  "    - source:\n        principals: [cluster.local/ns/client/sa/sleep]\n",
	  .allow = 1, .policy = "app/p" },
	{ .name = "fields inside one source are AND-ed",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        namespaces: [client]\n"
		  "        ipBlocks: [192.168.0.0/16]\n",
	  .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED },

	/* ---- principals ---- */
	{ .name = "principals exact match",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        principals: [cluster.local/ns/client/sa/sleep]\n",
	  .allow = 1, .policy = "app/p" },
	{ .name = "principals exact mismatch",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        principals: [cluster.local/ns/client/sa/other]\n",
	  .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED },
	{ .name = "principals prefix*",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        principals: [\"cluster.local/ns/client/*\"]\n",
	  .allow = 1, .policy = "app/p" },
	{ .name = "principals *suffix",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        principals: [\"*/sa/sleep\"]\n",
	  .allow = 1, .policy = "app/p" },
	{ .name = "principals * (presence) with identity",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        principals: [\"*\"]\n",
	  .allow = 1, .policy = "app/p" },
	{ .name = "principals * never matches plaintext",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        principals: [\"*\"]\n",
	  .id = PLAIN, .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED },
	{ .name = "principals value with spiffe:// never matches",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        principals: [\"spiffe://cluster.local/ns/client/sa/sleep\"]\n",
	  .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED },
	{ .name = "principals include the trust domain",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        principals: [cluster.local/ns/client/sa/sleep]\n",
	  .id = "spiffe://other.td/ns/client/sa/sleep", .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED },
	{ .name = "notPrincipals excludes the peer",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        notPrincipals: [cluster.local/ns/client/sa/sleep]\n",
	  .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED },
	{ .name = "notPrincipals * admits plaintext only",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        notPrincipals: [\"*\"]\n",
	  .id = PLAIN, .allow = 1, .policy = "app/p" },
	{ .name = "when source.principal prefix",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - when:\n    - key: source.principal\n      values: [\"cluster.local/ns/client/*\"]\n",
	  .allow = 1, .policy = "app/p" },
	{ .name = "when source.principal notValues",
	  .yaml = AP("app", "p") "spec:\n  action: DENY\n  rules:\n  - when:\n    - key: source.principal\n      notValues: [\"cluster.local/ns/admin/*\"]\n",
	  .allow = 0, .policy = "app/p" },

	/* ---- namespaces ---- */
	{ .name = "namespaces exact (peer identity's namespace)",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        namespaces: [client]\n",
	  .allow = 1, .policy = "app/p" },
	{ .name = "namespaces come from the identity, not the source pod",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        namespaces: [client]\n",
	  .id = ID("elsewhere", "sleep"), .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED },
	{ .name = "namespaces prefix* and *suffix",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        namespaces: [\"cli*\"]\n"
		  "  - from:\n    - source:\n        namespaces: [\"*zzz\"]\n",
	  .allow = 1, .policy = "app/p" },
	{ .name = "namespaces * never matches plaintext",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        namespaces: [\"*\"]\n",
	  .id = PLAIN, .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED },
	{ .name = "DENY notNamespaces denies other namespaces",
	  .yaml = AP("app", "p") "spec:\n  action: DENY\n  rules:\n  - from:\n    - source:\n        notNamespaces: [app]\n",
	  .allow = 0, .policy = "app/p" },
	{ .name = "DENY notNamespaces lets the listed namespace in",
	  .yaml = AP("app", "p") "spec:\n  action: DENY\n  rules:\n  - from:\n    - source:\n        notNamespaces: [app]\n",
	  .id = ID("app", "x"), .allow = 1, .policy = AUTHZ_NO_ALLOW_POLICY },
	{ .name = "when source.namespace",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - when:\n    - key: source.namespace\n      values: [client]\n",
	  .allow = 1, .policy = "app/p" },

	/* ---- serviceAccounts ---- */
	{ .name = "serviceAccounts ns/sa",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        serviceAccounts: [client/sleep]\n",
	  .allow = 1, .policy = "app/p" },
	{ .name = "serviceAccounts bare sa means the policy namespace (mismatch)",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        serviceAccounts: [sleep]\n",
	  .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED },
	{ .name = "serviceAccounts bare sa means the policy namespace (match)",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        serviceAccounts: [sleep]\n",
	  .id = ID("app", "sleep"), .allow = 1, .policy = "app/p" },
	{ .name = "serviceAccounts never match plaintext",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        serviceAccounts: [client/sleep]\n",
	  .id = PLAIN, .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED },
	{ .name = "DENY notServiceAccounts",
	  .yaml = AP("app", "p") "spec:\n  action: DENY\n  rules:\n  - from:\n    - source:\n        notServiceAccounts: [client/sleep]\n",
	  .id = ID("client", "other"), .allow = 0, .policy = "app/p" },
	{ .name = "DENY notServiceAccounts spares the listed account",
	  .yaml = AP("app", "p") "spec:\n  action: DENY\n  rules:\n  - from:\n    - source:\n        notServiceAccounts: [client/sleep]\n",
	  .allow = 1, .policy = AUTHZ_NO_ALLOW_POLICY },

	/* ---- ipBlocks / source.ip / destination.ip ---- */
	{ .name = "ipBlocks v4 CIDR match",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        ipBlocks: [10.0.0.0/24]\n",
	  .allow = 1, .policy = "app/p" },
	{ .name = "ipBlocks v4 CIDR mismatch",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        ipBlocks: [10.0.2.0/24]\n",
	  .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED },
	{ .name = "ipBlocks bare IPv4 is /32",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        ipBlocks: [10.0.0.1]\n",
	  .allow = 1, .policy = "app/p" },
	{ .name = "ipBlocks bare IPv4 /32 mismatch",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        ipBlocks: [10.0.0.2]\n",
	  .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED },
	{ .name = "ipBlocks odd prefix length /23",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        ipBlocks: [10.0.2.0/23]\n",
	  .src = "10.0.3.200", .allow = 1, .policy = "app/p" },
	{ .name = "ipBlocks v6 CIDR",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        ipBlocks: [\"fd00:10::/64\"]\n",
	  .src = "fd00:10::7", .dst = "fd00:20::5", .allow = 1, .policy = "app/p" },
	{ .name = "ipBlocks bare IPv6 is /128",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        ipBlocks: [\"fd00:10::7\"]\n",
	  .src = "fd00:10::8", .dst = "fd00:20::5", .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED },
	{ .name = "ipBlocks v6 never matches a v4 source",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        ipBlocks: [\"::/0\"]\n",
	  .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED },
	{ .name = "v4-mapped IPv6 source matches a v4 block",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        ipBlocks: [10.0.0.0/8]\n",
	  .src = "::ffff:10.0.0.1", .allow = 1, .policy = "app/p" },
	{ .name = "DENY notIpBlocks",
	  .yaml = AP("app", "p") "spec:\n  action: DENY\n  rules:\n  - from:\n    - source:\n        notIpBlocks: [10.9.0.0/16]\n",
	  .allow = 0, .policy = "app/p" },
	{ .name = "when source.ip values",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - when:\n    - key: source.ip\n      values: [10.0.0.0/30]\n",
	  .allow = 1, .policy = "app/p" },
	{ .name = "when source.ip notValues",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - when:\n    - key: source.ip\n      notValues: [10.0.0.1]\n",
	  .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED },
	{ .name = "when destination.ip values",
	  .yaml = AP("app", "p") "spec:\n  action: DENY\n  rules:\n  - when:\n    - key: destination.ip\n      values: [10.0.1.0/24]\n",
	  .allow = 0, .policy = "app/p" },
	{ .name = "when destination.ip notValues",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - when:\n    - key: destination.ip\n      notValues: [\"fd00::/8\"]\n",
	  .allow = 1, .policy = "app/p" },

	/* ---- ports ---- */
	{ .name = "ports match",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - to:\n    - operation:\n        ports: [\"80\", \"8080\"]\n",
	  .allow = 1, .policy = "app/p" },
	{ .name = "ports mismatch",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - to:\n    - operation:\n        ports: [\"80\"]\n",
	  .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED },
	{ .name = "DENY notPorts",
	  .yaml = AP("app", "p") "spec:\n  action: DENY\n  rules:\n  - to:\n    - operation:\n        notPorts: [\"9090\"]\n",
	  .allow = 0, .policy = "app/p" },
	{ .name = "DENY notPorts spares the listed port",
	  .yaml = AP("app", "p") "spec:\n  action: DENY\n  rules:\n  - to:\n    - operation:\n        notPorts: [\"9090\"]\n",
	  .port = 9090, .allow = 1, .policy = AUTHZ_NO_ALLOW_POLICY },
	{ .name = "when destination.port values",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - when:\n    - key: destination.port\n      values: [\"8080\"]\n",
	  .allow = 1, .policy = "app/p" },
	{ .name = "when destination.port notValues",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - when:\n    - key: destination.port\n      notValues: [\"8080\"]\n",
	  .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED },
	{ .name = "when conditions are AND-ed",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - when:\n    - key: destination.port\n      values: [\"8080\"]\n"
		  "    - key: source.namespace\n      values: [nope]\n",
	  .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED },

	/* ---- HTTP (L7) fields ---- */
	{ .name = "ALLOW rule with methods is dropped (deny, warning)",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - to:\n    - operation:\n        methods: [GET]\n        ports: [\"8080\"]\n",
	  .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED, .msg = "found: methods" },
	{ .name = "ALLOW: L4 rule next to an L7 rule still allows",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - to:\n    - operation:\n        paths: [/admin]\n"
		  "  - from:\n    - source:\n        namespaces: [client]\n",
	  .allow = 1, .policy = "app/p", .msg = "more restrictive" },
	{ .name = "ALLOW rule with requestPrincipals is dropped",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        requestPrincipals: [\"*\"]\n        namespaces: [client]\n",
	  .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED, .msg = "requestPrincipals" },
	{ .name = "ALLOW rule with an L7 when key is dropped",
	  .yaml = AP("app", "p") "spec:\n  rules:\n  - when:\n    - key: request.headers[x-user]\n      values: [bob]\n",
	  .allow = 0, .policy = AUTHZ_NO_ALLOW_MATCHED, .msg = "request.headers[x-user]" },
	{ .name = "DENY with ports and methods keeps the ports",
	  .yaml = AP("app", "p") "spec:\n  action: DENY\n  rules:\n  - to:\n    - operation:\n        methods: [POST]\n        ports: [\"8080\"]\n",
	  .allow = 0, .policy = "app/p", .msg = "enforced without its HTTP attributes" },
	{ .name = "DENY with only methods has no effect",
	  .yaml = AP("app", "p") "spec:\n  action: DENY\n  rules:\n  - to:\n    - operation:\n        methods: [POST]\n",
	  .allow = 1, .policy = AUTHZ_NO_ALLOW_POLICY, .msg = "has no effect" },
	{ .name = "DENY: an L7-only to[] entry voids its rule (Istio per-match)",
	  .yaml = AP("app", "p") "spec:\n  action: DENY\n  rules:\n  - from:\n    - source:\n        namespaces: [client]\n"
		  "    to:\n    - operation:\n        hosts: [example.com]\n",
	  .allow = 1, .policy = AUTHZ_NO_ALLOW_POLICY, .msg = "has no effect" },
	{ .name = "DENY with remoteIpBlocks keeps principals",
	  .yaml = AP("app", "p") "spec:\n  action: DENY\n  rules:\n  - from:\n    - source:\n        remoteIpBlocks: [1.2.3.4]\n        principals: [\"cluster.local/ns/client/*\"]\n",
	  .allow = 0, .policy = "app/p", .msg = "remoteIpBlocks" },
	{ .name = "DENY with an L7 when condition never matches",
	  .yaml = AP("app", "p") "spec:\n  action: DENY\n  rules:\n  - from:\n    - source:\n        namespaces: [client]\n"
		  "    when:\n    - key: request.auth.claims[iss]\n      values: [x]\n",
	  .allow = 1, .policy = AUTHZ_NO_ALLOW_POLICY, .msg = "has no effect" },

	/* ---- scopes ---- */
	{ .name = "namespace policy of another namespace does not apply",
	  .yaml = AP("other", "deny-all") "spec:\n  action: DENY\n  rules:\n  - {}\n",
	  .allow = 1, .policy = AUTHZ_NO_POLICIES },
	{ .name = "root namespace policy without selector is global",
	  .yaml = AP("istio-system", "deny-all") "spec:\n  action: DENY\n  rules:\n  - {}\n",
	  .allow = 0, .policy = "istio-system/deny-all" },
	{ .name = "root namespace policy with selector applies in every namespace",
	  .yaml = AP("istio-system", "deny-web") "spec:\n  selector:\n    matchLabels:\n      app: web\n  action: DENY\n  rules:\n  - {}\n",
	  .allow = 0, .policy = "istio-system/deny-web" },
	{ .name = "root namespace selector policy needs the labels",
	  .yaml = AP("istio-system", "deny-db") "spec:\n  selector:\n    matchLabels:\n      app: db\n  action: DENY\n  rules:\n  - {}\n",
	  .allow = 1, .policy = AUTHZ_NO_POLICIES },
	{ .name = "workload selector matching (all pairs)",
	  .yaml = AP("app", "p") "spec:\n  selector:\n    matchLabels:\n      app: web\n      version: v1\n  action: DENY\n  rules:\n  - {}\n",
	  .allow = 0, .policy = "app/p" },
	{ .name = "workload selector not matching",
	  .yaml = AP("app", "p") "spec:\n  selector:\n    matchLabels:\n      app: web\n      version: v2\n  rules: []\n",
	  .allow = 1, .policy = AUTHZ_NO_POLICIES },
	{ .name = "workload selector of another namespace does not apply",
	  .yaml = AP("other", "p") "spec:\n  selector:\n    matchLabels:\n      app: web\n  action: DENY\n  rules:\n  - {}\n",
	  .allow = 1, .policy = AUTHZ_NO_POLICIES },
	{ .name = "selector without matchLabels selects nothing (warning)",
	  .yaml = AP("app", "p") "spec:\n  selector: {}\n  action: DENY\n  rules:\n  - {}\n",
	  .allow = 1, .policy = AUTHZ_NO_POLICIES, .msg = "selects no workload" },
	{ .name = "custom root namespace name (mesh-root) is not global by default",
	  .yaml = AP("mesh-root", "deny-all") "spec:\n  action: DENY\n  rules:\n  - {}\n",
	  .allow = 1, .policy = AUTHZ_NO_POLICIES },

	/* ---- ignored policies ---- */
	{ .name = "AUDIT is ignored",
	  .yaml = AP("app", "p") "spec:\n  action: AUDIT\n  rules:\n  - {}\n",
	  .allow = 1, .policy = AUTHZ_NO_POLICIES, .msg = "does not support the AUDIT action" },
	{ .name = "CUSTOM is ignored",
	  .yaml = AP("app", "p") "spec:\n  action: CUSTOM\n  provider:\n    name: ext\n  rules:\n  - {}\n",
	  .allow = 1, .policy = AUTHZ_NO_POLICIES, .msg = "CUSTOM" },
	{ .name = "targetRefs policy is ignored",
	  .yaml = AP("app", "p") "spec:\n  targetRefs:\n  - kind: Service\n    group: \"\"\n    name: web\n  action: DENY\n  rules:\n  - {}\n",
	  .allow = 1, .policy = AUTHZ_NO_POLICIES, .msg = "targetRef" },
	{ .name = "targetRef policy is ignored",
	  .yaml = AP("app", "p") "spec:\n  targetRef:\n    kind: Gateway\n    group: gateway.networking.k8s.io\n    name: wp\n  rules: []\n",
	  .allow = 1, .policy = AUTHZ_NO_POLICIES, .msg = "targetRef" },
	{ .name = "dry-run policy is ignored",
	  .yaml = "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  namespace: app\n"
		  "  annotations:\n    istio.io/dry-run: \"true\"\nspec:\n  action: DENY\n  rules:\n  - {}\n",
	  .allow = 1, .policy = AUTHZ_NO_POLICIES, .msg = "dry-run" },

	/* ---- PeerAuthentication ---- */
	{ .name = "mesh STRICT denies plaintext",
	  .yaml = PA("istio-system", "default") "spec:\n  mtls:\n    mode: STRICT\n", .id = PLAIN,
	  .allow = 0, .policy = "istio-system/default", .reason = "no peer identity" },
	{ .name = "mesh STRICT admits mTLS",
	  .yaml = PA("istio-system", "default") "spec:\n  mtls:\n    mode: STRICT\n",
	  .allow = 1, .policy = AUTHZ_NO_ALLOW_POLICY },
	{ .name = "mesh PERMISSIVE admits plaintext",
	  .yaml = PA("istio-system", "default") "spec:\n  mtls:\n    mode: PERMISSIVE\n", .id = PLAIN,
	  .allow = 1, .policy = AUTHZ_NO_POLICIES },
	{ .name = "namespace STRICT denies plaintext",
	  .yaml = PA("app", "strict") "spec:\n  mtls:\n    mode: STRICT\n", .id = PLAIN,
	  .allow = 0, .policy = "app/strict" },
	{ .name = "namespace STRICT of another namespace does not apply",
	  .yaml = PA("other", "strict") "spec:\n  mtls:\n    mode: STRICT\n", .id = PLAIN,
	  .allow = 1, .policy = AUTHZ_NO_POLICIES },
	{ .name = "namespace PERMISSIVE overrides mesh STRICT",
	  .yaml = PA("istio-system", "default") "spec:\n  mtls:\n    mode: STRICT\n"
		  PA("app", "perm") "spec:\n  mtls:\n    mode: PERMISSIVE\n", .id = PLAIN,
	  .allow = 1, .policy = AUTHZ_NO_POLICIES },
	{ .name = "namespace UNSET inherits mesh STRICT",
	  .yaml = PA("istio-system", "default") "spec:\n  mtls:\n    mode: STRICT\n"
		  PA("app", "unset") "spec: {}\n", .id = PLAIN,
	  .allow = 0, .policy = "istio-system/default" },
	{ .name = "workload PERMISSIVE overrides namespace STRICT",
	  .yaml = PA("app", "strict") "spec:\n  mtls:\n    mode: STRICT\n"
		  PA("app", "web-perm") "spec:\n  selector:\n    matchLabels:\n      app: web\n  mtls:\n    mode: PERMISSIVE\n",
	  .id = PLAIN, .allow = 1, .policy = AUTHZ_NO_POLICIES },
	{ .name = "workload STRICT over mesh PERMISSIVE",
	  .yaml = PA("istio-system", "default") "spec:\n  mtls:\n    mode: PERMISSIVE\n"
		  PA("app", "web-strict") "spec:\n  selector:\n    matchLabels:\n      app: web\n  mtls:\n    mode: STRICT\n",
	  .id = PLAIN, .allow = 0, .policy = "app/web-strict" },
	{ .name = "workload STRICT does not select other workloads",
	  .yaml = PA("app", "web-strict") "spec:\n  selector:\n    matchLabels:\n      app: web\n  mtls:\n    mode: STRICT\n",
	  .labels = "app=db", .id = PLAIN, .allow = 1, .policy = AUTHZ_NO_POLICIES },
	{ .name = "workload UNSET inherits namespace STRICT",
	  .yaml = PA("app", "strict") "spec:\n  mtls:\n    mode: STRICT\n"
		  PA("app", "web") "spec:\n  selector:\n    matchLabels:\n      app: web\n",
	  .id = PLAIN, .allow = 0, .policy = "app/strict" },
	{ .name = "port-level PERMISSIVE exempts its port",
	  .yaml = PA("app", "strict") "spec:\n  mtls:\n    mode: STRICT\n"
		  PA("app", "web") "spec:\n  selector:\n    matchLabels:\n      app: web\n  portLevelMtls:\n    \"8080\":\n      mode: PERMISSIVE\n",
	  .id = PLAIN, .allow = 1, .policy = AUTHZ_NO_POLICIES },
	{ .name = "port-level PERMISSIVE leaves other ports STRICT",
	  .yaml = PA("app", "strict") "spec:\n  mtls:\n    mode: STRICT\n"
		  PA("app", "web") "spec:\n  selector:\n    matchLabels:\n      app: web\n  portLevelMtls:\n    \"8080\":\n      mode: PERMISSIVE\n",
	  .port = 9090, .id = PLAIN, .allow = 0, .policy = "app/strict" },
	{ .name = "port-level STRICT under workload PERMISSIVE",
	  .yaml = PA("app", "web") "spec:\n  selector:\n    matchLabels:\n      app: web\n  mtls:\n    mode: PERMISSIVE\n  portLevelMtls:\n    \"8080\":\n      mode: STRICT\n",
	  .id = PLAIN, .allow = 0, .policy = "app/web" },
	{ .name = "oldest namespace PeerAuthentication wins",
	  .yaml = "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: a-new\n  namespace: app\n"
		  "  creationTimestamp: \"2024-05-01T00:00:00Z\"\nspec:\n  mtls:\n    mode: PERMISSIVE\n"
		  "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: b-old\n  namespace: app\n"
		  "  creationTimestamp: \"2023-01-01T00:00:00Z\"\nspec:\n  mtls:\n    mode: STRICT\n",
	  .id = PLAIN, .allow = 0, .policy = "app/b-old" },
	{ .name = "DISABLE acts as PERMISSIVE (warning)",
	  .yaml = PA("istio-system", "default") "spec:\n  mtls:\n    mode: STRICT\n"
		  PA("app", "off") "spec:\n  mtls:\n    mode: DISABLE\n",
	  .id = PLAIN, .allow = 1, .policy = AUTHZ_NO_POLICIES, .msg = "acts as PERMISSIVE" },
	{ .name = "STRICT applies before ALLOW policies",
	  .yaml = PA("app", "strict") "spec:\n  mtls:\n    mode: STRICT\n"
		  AP("app", "allow-all") "spec:\n  rules:\n  - {}\n",
	  .id = PLAIN, .allow = 0, .policy = "app/strict" },

	/* ---- invalid policies fail closed ---- */
	{ .name = "bad CIDR fails closed",
	  .yaml = AP("app", "bad") "spec:\n  rules:\n  - from:\n    - source:\n        ipBlocks: [10.0.0.300/8]\n",
	  .allow = 0, .policy = "app/bad",
	  .reason = "policy app/bad is invalid: spec.rules[0].from[0].source.ipBlocks[0]" },
	{ .name = "bad CIDR prefix length fails closed",
	  .yaml = AP("app", "bad") "spec:\n  rules:\n  - from:\n    - source:\n        ipBlocks: [\"fd00::/129\"]\n",
	  .allow = 0, .policy = "app/bad", .reason = "is not an IP address or CIDR" },
	{ .name = "bad port fails closed",
	  .yaml = AP("app", "bad") "spec:\n  rules:\n  - to:\n    - operation:\n        ports: [http]\n",
	  .allow = 0, .policy = "app/bad", .reason = "spec.rules[0].to[0].operation.ports[0]: \"http\" is not a port" },
	{ .name = "port 70000 fails closed",
	  .yaml = AP("app", "bad") "spec:\n  action: DENY\n  rules:\n  - to:\n    - operation:\n        notPorts: [\"70000\"]\n",
	  .allow = 0, .policy = "app/bad", .reason = "is not a port" },
	{ .name = "unquoted port (number) fails closed",
	  .yaml = AP("app", "bad") "spec:\n  rules:\n  - to:\n    - operation:\n        ports: [8080]\n",
	  .allow = 0, .policy = "app/bad", .reason = "must be a string, found a number" },
	{ .name = "bad when destination.port fails closed",
	  .yaml = AP("app", "bad") "spec:\n  rules:\n  - when:\n    - key: destination.port\n      values: [\"0\"]\n",
	  .allow = 0, .policy = "app/bad", .reason = "when[0].values[0]" },
	{ .name = "unknown action fails closed",
	  .yaml = AP("app", "bad") "spec:\n  action: DENNY\n  rules:\n  - {}\n",
	  .allow = 0, .policy = "app/bad", .reason = "unknown action \"DENNY\"" },
	{ .name = "principals as a string (not a list) fails closed",
	  .yaml = AP("app", "bad") "spec:\n  rules:\n  - from:\n    - source:\n        principals: cluster.local/ns/client/sa/sleep\n",
	  .allow = 0, .policy = "app/bad", .reason = "principals: must be a list of strings" },
	{ .name = "unknown source field fails closed",
	  .yaml = AP("app", "bad") "spec:\n  action: DENY\n  rules:\n  - from:\n    - source:\n        principal: [x]\n",
	  .allow = 0, .policy = "app/bad", .reason = "unknown field \"principal\"" },
	{ .name = "empty source fails closed",
	  .yaml = AP("app", "bad") "spec:\n  rules:\n  - from:\n    - source: {}\n",
	  .allow = 0, .policy = "app/bad", .reason = "must not be empty" },
	{ .name = "serviceAccounts with principals fails closed",
	  .yaml = AP("app", "bad") "spec:\n  rules:\n  - from:\n    - source:\n        serviceAccounts: [a/b]\n        principals: [x]\n",
	  .allow = 0, .policy = "app/bad", .reason = "cannot set serviceAccounts" },
	{ .name = "when without values fails closed",
	  .yaml = AP("app", "bad") "spec:\n  rules:\n  - when:\n    - key: source.ip\n",
	  .allow = 0, .policy = "app/bad", .reason = "at least one of values or notValues" },
	{ .name = "invalid policy fails closed only for its selector",
	  .yaml = AP("app", "bad") "spec:\n  selector:\n    matchLabels:\n      app: db\n  rules:\n  - from:\n    - source:\n        ipBlocks: [nope]\n",
	  .allow = 1, .policy = AUTHZ_NO_POLICIES },
	{ .name = "invalid policy of another namespace does not matter",
	  .yaml = AP("other", "bad") "spec:\n  action: NOPE\n",
	  .allow = 1, .policy = AUTHZ_NO_POLICIES },
	{ .name = "invalid global policy fails closed everywhere",
	  .yaml = AP("istio-system", "bad") "spec:\n  rules:\n  - to:\n    - operation:\n        ports: [\"-1\"]\n",
	  .allow = 0, .policy = "istio-system/bad" },
	{ .name = "unreadable selector fails closed for the namespace",
	  .yaml = AP("app", "bad") "spec:\n  selector:\n    matchLabels: [app]\n  rules:\n  - {}\n",
	  .labels = "", .allow = 0, .policy = "app/bad", .reason = "spec.selector.matchLabels" },
	{ .name = "invalid policy beats an allow-all",
	  .yaml = AP("app", "allow-all") "spec:\n  rules:\n  - {}\n"
		  AP("app", "bad") "spec:\n  rules:\n  - from:\n    - source:\n        namespaces: [\"\"]\n",
	  .allow = 0, .policy = "app/bad", .reason = "empty string" },
	{ .name = "invalid PeerAuthentication mode fails closed",
	  .yaml = PA("app", "bad") "spec:\n  mtls:\n    mode: STIRCT\n",
	  .allow = 0, .policy = "app/bad", .reason = "unknown mode \"STIRCT\"" },
	{ .name = "port-level mTLS without selector fails closed",
	  .yaml = PA("app", "bad") "spec:\n  portLevelMtls:\n    \"8080\":\n      mode: STRICT\n",
	  .allow = 0, .policy = "app/bad", .reason = "cannot have port level mTLS" },
	{ .name = "serviceAccounts with two slashes fails closed",
	  .yaml = AP("app", "bad") "spec:\n  rules:\n  - from:\n    - source:\n        serviceAccounts: [a/b/c]\n",
	  .allow = 0, .policy = "app/bad", .reason = "is not a service account" },
};

/* ---- harness ---- */

static int split_policies(const char *yaml, json_t **aps, json_t **pas)
{
	char err[512];
	json_t *all = NULL, *o;
	size_t i;
	int ret;

	*aps = json_array();
	*pas = json_array();
	if (!*aps || !*pas)
		return -ENOMEM;
	if (!*yaml)
		return 0;
	ret = kobj_load_text(yaml, strlen(yaml), "case.yaml", &all, err, sizeof(err));
	if (ret) {
		printf("# kobj: %s\n", err);
		return ret;
	}
	json_array_foreach(all, i, o) {
		const char *kind = json_string_value(json_object_get(o, "kind"));

		json_array_append(kind && !strcmp(kind, "PeerAuthentication") ? *pas : *aps, o);
	}
	json_decref(all);
	return 0;
}

static void set_ip(struct mesh_ip *ip, const char *s)
{
	memset(ip, 0, sizeof(*ip));
	if (inet_pton(AF_INET, s, &ip->addr.v4) == 1)
		ip->family = AF_INET;
	else if (inet_pton(AF_INET6, s, &ip->addr.v6) == 1)
		ip->family = AF_INET6;
}

struct labelbuf {
	char text[256];
	struct mesh_label items[8];
};

static void parse_labels(const char *s, struct labelbuf *b, struct mesh_labels *out)
{
	char *save = NULL, *tok;

	out->items = b->items;
	out->n = 0;
	snprintf(b->text, sizeof(b->text), "%s", s);
	for (tok = strtok_r(b->text, ",", &save); tok && out->n < 8;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');

		if (!eq)
			continue;
		*eq = '\0';
		b->items[out->n].key = tok;
		b->items[out->n].value = eq + 1;
		out->n++;
	}
}

struct msgfind {
	const char *needle;
	int found;
};

static void find_msg(const struct authz_policy_info *info, void *ctx)
{
	struct msgfind *f = ctx;

	for (size_t i = 0; i < info->n_msgs; i++)
		if (strstr(info->msgs[i].text, f->needle))
			f->found = 1;
}

static void print_msgs(const struct authz_policy_info *info, void *ctx)
{
	for (size_t i = 0; i < info->n_msgs; i++)
		printf("#   %s [%s] %s: %s\n", info->key, authz_state_name(info->state),
		       authz_msg_level_name(info->msgs[i].level), info->msgs[i].text);
}

#define C_NS(c)     ((c)->ns ? (c)->ns : "app")
#define C_NAME(c)   ((c)->wname ? (c)->wname : "web")
#define C_LABELS(c) ((c)->labels ? (c)->labels : "app=web,version=v1")
#define C_SRC(c)    ((c)->src ? (c)->src : "10.0.0.1")
#define C_DST(c)    ((c)->dst ? (c)->dst : "10.0.1.5")
#define C_PORT(c)   ((c)->port ? (c)->port : 8080)
#define C_ID(c)     ((c)->id ? (strcmp((c)->id, PLAIN) ? (c)->id : NULL) : ID_SLEEP)

static const struct acase *cur;

static void run_case(void)
{
	const struct acase *c = cur;
	json_t *aps = NULL, *pas = NULL;
	struct authz_set *set = NULL;
	struct authz_workload w = { .namespace = C_NS(c), .name = C_NAME(c) };
	struct authz_conn conn = { .src_port = 40000, .dst_port = (uint16_t)C_PORT(c),
				   .peer_identity = C_ID(c) };
	struct authz_decision d;
	struct labelbuf lb;
	int ret, ok = 0;

	parse_labels(C_LABELS(c), &lb, &w.labels);
	set_ip(&conn.src_ip, C_SRC(c));
	set_ip(&conn.dst_ip, C_DST(c));
	if (split_policies(c->yaml, &aps, &pas))
		goto out;
	if (authz_compile(aps, pas, NULL, &set))
		goto out;
	ret = authz_evaluate(set, &w, &conn, &d);
	if ((ret == 0) != d.allow || d.allow != !!c->allow || strcmp(d.policy, c->policy) ||
	    (c->reason && !strstr(d.reason, c->reason))) {
		printf("#   got %s by \"%s\" (%s)\n#   want %s by \"%s\"%s%s\n",
		       d.allow ? "allow" : "deny", d.policy, d.reason, c->allow ? "allow" : "deny",
		       c->policy, c->reason ? " with reason containing: " : "",
		       c->reason ? c->reason : "");
		authz_policies_foreach(set, print_msgs, NULL);
		goto out;
	}
	if (c->msg) {
		struct msgfind f = { .needle = c->msg };

		authz_policies_foreach(set, find_msg, &f);
		if (!f.found) {
			printf("#   no policy message contains \"%s\"\n", c->msg);
			authz_policies_foreach(set, print_msgs, NULL);
			goto out;
		}
	}
	ok = 1;
out:
	authz_set_free(set);
	json_decref(aps);
	json_decref(pas);
	T_ASSERT(ok);
}

/* ---- other tests ---- */

static void test_null_and_bad_args(void)
{
	struct authz_set *set = (struct authz_set *)1;
	struct authz_workload w = { .namespace = "a", .name = "b" };
	struct authz_conn conn = { 0 };
	struct authz_decision d;
	json_t *obj = json_object();

	T_ASSERT_INT(authz_compile(obj, NULL, NULL, &set), -EINVAL);
	T_ASSERT(set == NULL);
	json_decref(obj);
	T_ASSERT_INT(authz_evaluate(NULL, &w, &conn, &d), 0);
	T_ASSERT_STR(d.policy, AUTHZ_NO_POLICIES);
	T_ASSERT_INT(authz_compile(NULL, NULL, "root", &set), 0);
	T_ASSERT_INT(authz_set_count(set), 0);
	T_ASSERT_INT(authz_evaluate(set, &w, &conn, &d), 0);
	authz_set_free(set);
	authz_set_free(NULL);
	T_ASSERT_INT(authz_set_count(NULL), 0);
}

static void test_custom_root_namespace(void)
{
	json_t *aps, *pas;
	struct authz_set *set = NULL;
	struct authz_workload w = { .namespace = "app", .name = "web" };
	struct authz_conn conn = { .dst_port = 80, .peer_identity = ID_SLEEP };
	struct authz_decision d;

	set_ip(&conn.src_ip, "10.0.0.1");
	set_ip(&conn.dst_ip, "10.0.0.2");
	T_ASSERT_INT(split_policies(AP("mesh-root", "deny-all") "spec:\n  action: DENY\n  rules:\n  - {}\n",
				    &aps, &pas), 0);
	T_ASSERT_INT(authz_compile(aps, pas, "mesh-root", &set), 0);
	T_ASSERT_INT(authz_evaluate(set, &w, &conn, &d), -EACCES);
	T_ASSERT_STR(d.policy, "mesh-root/deny-all");
	authz_set_free(set);
	json_decref(aps);
	json_decref(pas);
}

struct collect {
	char keys[16][64];
	char states[16][16];
	char scopes[16][16];
	char actions[16][16];
	size_t n;
	size_t warnings, errors;
};

static void collect_cb(const struct authz_policy_info *info, void *ctx)
{
	struct collect *c = ctx;

	if (c->n < 16) {
		snprintf(c->keys[c->n], sizeof(c->keys[0]), "%s", info->key);
		snprintf(c->states[c->n], sizeof(c->states[0]), "%s", authz_state_name(info->state));
		snprintf(c->scopes[c->n], sizeof(c->scopes[0]), "%s", info->scope);
		snprintf(c->actions[c->n], sizeof(c->actions[0]), "%s", info->action ? info->action : "(null)");
		c->n++;
	}
	for (size_t i = 0; i < info->n_msgs; i++) {
		c->warnings += info->msgs[i].level == AUTHZ_MSG_WARNING;
		c->errors += info->msgs[i].level == AUTHZ_MSG_ERROR;
	}
}

static void test_listing(void)
{
	json_t *aps, *pas;
	struct authz_set *set = NULL;
	struct authz_workload w = { .namespace = "app", .name = "web" };
	struct mesh_label lab[] = { { "app", "web" } };
	struct collect all = { 0 }, sel = { 0 };

	w.labels.items = lab;
	w.labels.n = 1;
	T_ASSERT_INT(split_policies(
			     AP("app", "z-ns") "spec:\n  rules:\n  - {}\n"
			     AP("app", "a-wl") "spec:\n  selector:\n    matchLabels: {app: web}\n  action: DENY\n  rules:\n  - to:\n    - operation:\n        methods: [GET]\n"
			     AP("app", "b-other") "spec:\n  selector:\n    matchLabels: {app: db}\n  rules: [{}]\n"
			     AP("istio-system", "g") "spec:\n  rules: [{}]\n"
			     AP("app", "c-audit") "spec:\n  action: AUDIT\n"
			     AP("app", "d-bad") "spec:\n  action: 7\n"
			     PA("istio-system", "mesh") "spec:\n  mtls: {mode: STRICT}\n"
			     PA("app", "ns") "spec:\n  mtls: {mode: PERMISSIVE}\n"
			     PA("other", "ns") "spec:\n  mtls: {mode: STRICT}\n",
			     &aps, &pas), 0);
	T_ASSERT_INT(authz_compile(aps, pas, NULL, &set), 0);
	T_ASSERT_INT(authz_set_count(set), 9);
	T_ASSERT_INT(authz_set_invalid_count(set), 1);
	authz_policies_foreach(set, collect_cb, &all);
	T_ASSERT_INT(all.n, 9);
	/* namespace/name order, AuthorizationPolicies first */
	T_ASSERT_STR(all.keys[0], "app/a-wl");
	T_ASSERT_STR(all.actions[0], "DENY");
	/* no "action" key: ALLOW, as Istio defaults it */
	T_ASSERT_STR(all.keys[1], "app/b-other");
	T_ASSERT_STR(all.actions[1], "ALLOW");
	T_ASSERT_STR(all.keys[2], "app/c-audit");
	T_ASSERT_STR(all.states[2], "ignored");
	T_ASSERT_STR(all.keys[3], "app/d-bad");
	T_ASSERT_STR(all.states[3], "invalid");
	T_ASSERT_STR(all.keys[5], "istio-system/g");
	T_ASSERT_STR(all.scopes[5], "global");
	T_ASSERT_STR(all.keys[6], "app/ns");
	T_ASSERT(all.warnings >= 1);
	T_ASSERT(all.errors >= 1);

	authz_policies_selecting(set, &w, collect_cb, &sel);
	T_ASSERT_INT(sel.n, 6);
	T_ASSERT_STR(sel.keys[0], "app/a-wl");
	T_ASSERT_STR(sel.scopes[0], "workload");
	T_ASSERT_STR(sel.keys[1], "app/d-bad");
	T_ASSERT_STR(sel.keys[2], "app/z-ns");
	T_ASSERT_STR(sel.keys[3], "istio-system/g");
	T_ASSERT_STR(sel.keys[4], "istio-system/mesh");
	T_ASSERT_STR(sel.scopes[4], "mesh");
	T_ASSERT_STR(sel.keys[5], "app/ns");
	authz_set_free(set);
	json_decref(aps);
	json_decref(pas);
}

static void test_identity_forms(void)
{
	json_t *aps, *pas;
	struct authz_set *set = NULL;
	struct authz_workload w = { .namespace = "app", .name = "web" };
	struct authz_conn conn = { .dst_port = 80 };
	struct authz_decision d;

	set_ip(&conn.src_ip, "10.0.0.1");
	set_ip(&conn.dst_ip, "10.0.0.2");
	T_ASSERT_INT(split_policies(AP("app", "p") "spec:\n  rules:\n  - from:\n    - source:\n        principals: [\"*\"]\n"
				    AP("app", "q") "spec:\n  rules:\n  - from:\n    - source:\n        namespaces: [\"*\"]\n",
				    &aps, &pas), 0);
	T_ASSERT_INT(authz_compile(aps, pas, NULL, &set), 0);
	/* a non-SPIFFE identity never matches principals */
	conn.peer_identity = "cluster.local/ns/a/sa/b";
	T_ASSERT_INT(authz_evaluate(set, &w, &conn, &d), -EACCES);
	/* a SPIFFE ID of another shape matches principals but has no namespace */
	conn.peer_identity = "spiffe://td/workload/x";
	T_ASSERT_INT(authz_evaluate(set, &w, &conn, &d), 0);
	T_ASSERT_STR(d.policy, "app/p");
	/* an empty identity is plaintext */
	conn.peer_identity = "";
	T_ASSERT_INT(authz_evaluate(set, &w, &conn, &d), -EACCES);
	conn.peer_identity = "spiffe://td/ns/a/sa/b";
	T_ASSERT_INT(authz_evaluate(set, &w, &conn, &d), 0);
	authz_set_free(set);
	json_decref(aps);
	json_decref(pas);
}

/* AUTHZ_CASES_JSON: the table as data for the integration tests. */
static int dump_cases(const char *path)
{
	json_t *arr = json_array();
	int ret = 0;

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct acase *c = &cases[i];
		json_t *aps = NULL, *pas = NULL, *labels = json_object();
		struct labelbuf lb;
		struct mesh_labels ml;
		const char *id = C_ID(c);

		if (split_policies(c->yaml, &aps, &pas)) {
			ret = 1;
			json_decref(labels);
			json_decref(aps);
			json_decref(pas);
			continue;
		}
		parse_labels(C_LABELS(c), &lb, &ml);
		for (size_t k = 0; k < ml.n; k++)
			json_object_set_new(labels, ml.items[k].key, json_string(ml.items[k].value));
		json_array_append_new(
			arr,
			json_pack("{s:s, s:s, s:o, s:o, s:{s:s, s:s, s:o}, s:{s:s, s:i, s:s, s:i, s:o}, s:s, s:s, s:o}",
				  "name", c->name, "rootNamespace", AUTHZ_DEFAULT_ROOT_NAMESPACE,
				  "authorizationPolicies", aps,
				  "peerAuthentications", pas, "workload", "namespace", C_NS(c),
				  "name", C_NAME(c), "labels", labels, "connection", "src",
				  C_SRC(c), "srcPort", 40000, "dst", C_DST(c), "dstPort", C_PORT(c),
				  "identity", id ? json_string(id) : json_null(), "expect",
				  c->allow ? "allow" : "deny", "policy", c->policy, "reason",
				  c->reason ? json_string(c->reason) : json_null()));
	}
	if (json_dump_file(arr, path, JSON_INDENT(1) | JSON_PRESERVE_ORDER))
		ret = 1;
	json_decref(arr);
	return ret;
}

static const struct t_case extra[] = {
	T_CASE(test_null_and_bad_args),
	T_CASE(test_custom_root_namespace),
	T_CASE(test_listing),
	T_CASE(test_identity_forms),
};

int main(void)
{
	const char *dump = getenv("AUTHZ_CASES_JSON");
	size_t n = ARRAY_LEN(cases) + ARRAY_LEN(extra), k = 0;
	int failed = 0;

	if (dump && *dump)
		return dump_cases(dump);
	printf("1..%zu\n", n);
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		t_failed_current = 0;
		cur = &cases[i];
		run_case();
		printf("%s %zu - %s\n", t_failed_current ? "not ok" : "ok", ++k, cases[i].name);
		failed += t_failed_current;
	}
	for (size_t i = 0; i < ARRAY_LEN(extra); i++) {
		t_failed_current = 0;
		extra[i].fn();
		printf("%s %zu - %s\n", t_failed_current ? "not ok" : "ok", ++k, extra[i].name);
		failed += t_failed_current;
	}
	fflush(stdout);
	return failed ? 1 : 0;
}
