/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the pod state record parser (tunnel/state_record.c): records
 * as the tunnel writes them (pod_to_json, dumped as state_write does) and
 * damaged ones, as bytes in memory. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conf/inpod_mode.h"
#include "tunnel/pods.h"
#include "tunnel/state.h"
#include "tunnel/state_record.h"

#include "tests/unit/t.h"

/* The bytes state_write() would put in the file for p. */
static char *record_of(const struct pod *p)
{
	json_t *o = pod_to_json(p);
	char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;

	json_decref(o);
	return s;
}

static void pod_fill(struct pod *p, char **ips, size_t n_ips)
{
	memset(p, 0, sizeof(*p));
	p->uid = (char *)"0b6f1c2e-7d4a-4e55-9a3b-1f2e3d4c5b6a";
	p->container_id = (char *)"c0ffee";
	p->ifname = (char *)"eth0";
	p->namespace = (char *)"shop";
	p->name = (char *)"cart-7d9f";
	p->service_account = (char *)"cart";
	p->netns_path = (char *)"/var/run/netns/cni-1234";
	p->netns_dev = 4;
	p->netns_ino = 4026532567ull;
	p->ips = ips;
	p->n_ips = n_ips;
	inpod_mode_init(&p->mode);
}

static void test_written_record_round_trips(void)
{
	char *ips[] = { (char *)"10.244.0.7/24", (char *)"fd00::7/64" };
	struct state_record rec;
	struct pod p;
	char err[256], *text;

	pod_fill(&p, ips, 2);
	p.mode.capture_inbound = false;
	T_ASSERT_INT(inpod_mode_add_reroute(&p.mode, "net1", err, sizeof(err)), 0);
	text = record_of(&p);
	T_ASSERT(text);
	err[0] = '\0';
	T_ASSERT_INT(state_record_parse(text, strlen(text), &rec, err, sizeof(err)), 0);
	free(text);
	T_ASSERT_STR(rec.uid, p.uid);
	T_ASSERT_STR(rec.container_id, "c0ffee");
	T_ASSERT_STR(rec.ifname, "eth0");
	T_ASSERT_STR(rec.namespace, "shop");
	T_ASSERT_STR(rec.name, "cart-7d9f");
	T_ASSERT_STR(rec.service_account, "cart");
	T_ASSERT_STR(rec.netns, "/var/run/netns/cni-1234");
	T_ASSERT_INT(rec.netns_dev, 4);
	T_ASSERT(rec.netns_ino == 4026532567ull);
	T_ASSERT_INT(json_array_size(rec.ips), 2);
	T_ASSERT_STR(json_string_value(json_array_get(rec.ips, 1)), "fd00::7/64");
	T_ASSERT(inpod_mode_equal(&rec.mode, &p.mode));
	state_record_clear(&rec);
	T_ASSERT(rec.json == NULL && rec.uid == NULL);
}

/* A device number above INT64_MAX is written as a negative json_int_t and
 * must come back as the same uint64_t, or adoption would call the pod's
 * netns a different namespace. */
static void test_large_dev_round_trips(void)
{
	struct state_record rec;
	struct pod p;
	char err[256], *text;

	pod_fill(&p, NULL, 0);
	p.netns_dev = 0xfffffffffffffff0ull;
	text = record_of(&p);
	T_ASSERT(text);
	T_ASSERT_INT(state_record_parse(text, strlen(text), &rec, err, sizeof(err)), 0);
	free(text);
	T_ASSERT(rec.netns_dev == 0xfffffffffffffff0ull);
	T_ASSERT_INT(json_array_size(rec.ips), 0);
	state_record_clear(&rec);
}

/* Records from before the capture mode and the ips existed: full capture,
 * no addresses; keys unknown to this version are ignored. */
static void test_old_record_defaults(void)
{
	static const char text[] =
		"{\"uid\":\"u-1\",\"containerId\":\"c\",\"ifname\":\"eth0\",\"namespace\":\"ns\","
		"\"name\":\"n\",\"serviceAccount\":\"default\",\"netns\":\"/proc/1/ns/net\","
		"\"netnsDev\":3,\"netnsIno\":7,\"futureField\":{\"x\":1}}";
	struct state_record rec;
	char err[256];

	T_ASSERT_INT(state_record_parse(text, sizeof(text) - 1, &rec, err, sizeof(err)), 0);
	T_ASSERT(rec.ips == NULL);
	T_ASSERT(rec.mode.capture_inbound);
	T_ASSERT_INT(rec.mode.n_reroute, 0);
	T_ASSERT_INT(rec.netns_ino, 7);
	state_record_clear(&rec);
}

#define GOOD_HEAD "{\"containerId\":\"c\",\"ifname\":\"eth0\",\"namespace\":\"ns\",\"name\":\"n\"," \
		  "\"serviceAccount\":\"sa\",\"netns\":\"/proc/1/ns/net\",\"netnsDev\":3,\"netnsIno\":7,"

static void test_bad_records_name_the_field(void)
{
	static const struct {
		const char *text;
		const char *want; /* in the error */
	} cases[] = {
		{ "", "unreadable record: empty" },
		{ "{\"uid\":\"u-1\",\"contai", "unreadable record" },
		{ "[1,2]", "not a JSON object" },
		{ "{} trailing", "unreadable record" },
		{ GOOD_HEAD "\"ips\":[]}", "\"uid\" is missing" },
		{ GOOD_HEAD "\"uid\":42}", "\"uid\" must be a string" },
		{ GOOD_HEAD "\"uid\":\"../etc\"}", "\"uid\" is not a valid pod uid" },
		{ GOOD_HEAD "\"uid\":\"\"}", "\"uid\" is not a valid pod uid" },
		{ GOOD_HEAD "\"uid\":\"a\\u0000b\"}", "unreadable record" },
		{ GOOD_HEAD "\"uid\":\"u\",\"ips\":\"10.0.0.1\"}", "\"ips\" must be an array" },
		{ GOOD_HEAD "\"uid\":\"u\",\"ips\":[\"10.0.0.1\",7]}", "\"ips\" item 1 is not a string" },
		{ GOOD_HEAD "\"uid\":\"u\",\"captureInbound\":\"no\"}", "\"captureInbound\"" },
		{ GOOD_HEAD "\"uid\":\"u\",\"rerouteInterfaces\":[\"lo\"]}", "\"rerouteInterfaces\"" },
		{ GOOD_HEAD "\"uid\":\"u\",\"rerouteInterfaces\":{}}", "\"rerouteInterfaces\"" },
		{ "{\"uid\":\"u\",\"containerId\":\"c\",\"ifname\":\"eth0\",\"namespace\":\"ns\","
		  "\"name\":\"n\",\"serviceAccount\":\"sa\",\"netnsDev\":3,\"netnsIno\":7}",
		  "\"netns\" is missing" },
		{ "{\"uid\":\"u\",\"containerId\":\"c\",\"ifname\":\"eth0\",\"namespace\":\"ns\","
		  "\"name\":\"n\",\"serviceAccount\":\"sa\",\"netns\":\"/x\",\"netnsDev\":\"3\",\"netnsIno\":7}",
		  "\"netnsDev\" must be an integer" },
		{ "{\"uid\":\"u\",\"containerId\":\"c\",\"ifname\":\"eth0\",\"namespace\":\"ns\","
		  "\"name\":\"n\",\"serviceAccount\":\"sa\",\"netns\":\"/x\",\"netnsDev\":3,\"netnsIno\":7.5}",
		  "\"netnsIno\" must be an integer" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct state_record rec;
		char err[256] = "";
		int r = state_record_parse(cases[i].text, strlen(cases[i].text), &rec, err, sizeof(err));

		if (r != -EBADMSG || !strstr(err, cases[i].want))
			printf("#   case %zu: %d \"%s\" (want \"%s\")\n", i, r, err, cases[i].want);
		T_ASSERT_INT(r, -EBADMSG);
		T_ASSERT(strstr(err, cases[i].want));
		T_ASSERT(rec.json == NULL && rec.uid == NULL && rec.ips == NULL);
	}
}

/* Bytes are taken by length: no NUL needed, and nothing past len is read;
 * a file larger than any record is refused before parsing. */
static void test_length_bounds(void)
{
	static const char text[] = GOOD_HEAD "\"uid\":\"u\"}GARBAGE";
	struct state_record rec;
	char err[256], *big;

	T_ASSERT_INT(state_record_parse(text, sizeof(text) - 1 - 7, &rec, err, sizeof(err)), 0);
	state_record_clear(&rec);
	T_ASSERT_INT(state_record_parse(text, sizeof(text) - 1 - 8, &rec, err, sizeof(err)), -EBADMSG);
	big = malloc(STATE_RECORD_MAX + 1);
	T_ASSERT(big);
	memset(big, ' ', STATE_RECORD_MAX + 1);
	memcpy(big, text, sizeof(text) - 1 - 7);
	T_ASSERT_INT(state_record_parse(big, STATE_RECORD_MAX, &rec, err, sizeof(err)), 0);
	state_record_clear(&rec);
	T_ASSERT_INT(state_record_parse(big, STATE_RECORD_MAX + 1, &rec, err, sizeof(err)), -EBADMSG);
	free(big);
	T_ASSERT(strstr(err, "more than"));
}

static void test_uid_valid(void)
{
	char long_uid[130];

	T_ASSERT(state_uid_valid("0b6f1c2e-7d4a-4e55-9a3b-1f2e3d4c5b6a"));
	T_ASSERT(state_uid_valid("a.b_c-D9"));
	T_ASSERT(!state_uid_valid(NULL));
	T_ASSERT(!state_uid_valid(""));
	T_ASSERT(!state_uid_valid(".hidden"));
	T_ASSERT(!state_uid_valid("a/b"));
	T_ASSERT(!state_uid_valid("a b"));
	memset(long_uid, 'a', 128);
	long_uid[128] = '\0';
	T_ASSERT(state_uid_valid(long_uid));
	long_uid[128] = 'a';
	long_uid[129] = '\0';
	T_ASSERT(!state_uid_valid(long_uid));
}

T_MAIN(T_CASE(test_written_record_round_trips), T_CASE(test_large_dev_round_trips),
       T_CASE(test_old_record_defaults), T_CASE(test_bad_records_name_the_field),
       T_CASE(test_length_bounds), T_CASE(test_uid_valid))
