/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The plugin <-> tunnel handoff protocol.
 *
 * Transport: a Unix SOCK_SEQPACKET socket (root only), one message per
 * datagram, at most HANDOFF_MAX_MSG bytes. A message is a JSON object with
 * "v": HANDOFF_VERSION and "op". The plugin sends one request and reads one
 * response per connection. Only "add" carries a file descriptor (the pod's
 * netns, SCM_RIGHTS); any fd on another message is closed and rejected.
 *
 * Requests (plugin -> tunnel):
 *   query  {namespace, name, uid}                       -> {enroll: bool, reason, mode}
 *          (+ netns, containerId, ifname, ips from ADD: Kubernetes mode
 *          remembers them to enroll the pod when its labels change)
 *   add    {uid, namespace, name, containerId, ifname,
 *           netns, ips: ["10.0.0.2/24", ...], mode} + fd -> {}   (after listeners are up)
 *   del    {containerId, ifname, uid?}                  -> {known: bool}
 *   check  {containerId, ifname, uid?}                  -> {known: bool, mode}
 *   status {}                                           -> {ready: bool}
 *   gc     {valid: [{containerId, ifname}, ...]}        -> {removed: N}
 * "mode" is the pod's capture mode (struct inpod_mode), as three fields:
 * redirect ("nftables" or "ebpf": the plugin's config; with "ebpf", bpfDir:
 * the bpffs mount holding the pod's pins), captureInbound (bool; false: annotation
 * ambient.istio.io/bypass-inbound-capture) and rerouteInterfaces (array of
 * interface names; annotation istio.io/reroute-virtual-interfaces).
 * Absent means capture everything, reroute nothing, so a plugin or tunnel
 * one version older still interoperates.
 * Responses (tunnel -> plugin): {"v":1, "ok": true, ...} or
 *   {"v":1, "ok": false, "error": "what went wrong and what to do"}, with
 *   "retry": true when the same request may succeed later (the pod is not
 *   in the mesh model yet): the plugin then answers CNI error 11.
 *
 * Ownership: functions taking json_t * borrow it; *out json_t are new
 * references owned by the caller. Received fds are owned by the caller.
 * All functions return 0 or -errno and fill err (may be NULL).
 */
#ifndef WARREN_HANDOFF_H
#define WARREN_HANDOFF_H

#include <jansson.h>
#include <stddef.h>

#include "conf/inpod_mode.h"

#define HANDOFF_VERSION 1
#define HANDOFF_MAX_MSG 65536

/* Serialise msg (adds "v") and send it as one datagram, with pass_fd
 * attached when >= 0. -EMSGSIZE when too large. */
int handoff_send(int sock, json_t *msg, int pass_fd);

/* Receive one datagram and parse it. *out_fd gets a passed fd or -1 (if
 * out_fd is NULL any passed fd is closed). -EPROTO for a malformed message
 * (bad JSON, wrong version, truncated, more than one fd) with err set;
 * -ECONNRESET on EOF. */
int handoff_recv(int sock, json_t **out, int *out_fd, char *err, size_t errlen);

/* Client: connect to path, send req (+fd), wait up to timeout_ms for the
 * reply. -ECONNREFUSED/-ENOENT when the tunnel is not there, -ETIMEDOUT. */
int handoff_call(const char *path, int timeout_ms, json_t *req, int pass_fd,
		 json_t **resp, char *err, size_t errlen);

/* Server: create, bind (mode 0600, parent dirs 0700) and listen on path,
 * replacing a stale socket. Returns the listening fd (non-blocking,
 * close-on-exec) or -errno. */
int handoff_listen(const char *path);

/* Set obj's "redirect", "captureInbound" and "rerouteInterfaces" from mode: 0 or
 * -ENOMEM. */
int handoff_mode_put(json_t *obj, const struct inpod_mode *mode);
/* Read them back into *mode (absent: everything captured, nothing
 * rerouted): 0, or -EPROTO with err naming the bad field. */
int handoff_mode_get(json_t *obj, struct inpod_mode *mode, char *err, size_t errlen);

/* Build a response: ok=true, or ok=false with a printf-style error. */
json_t *handoff_ok(void);
json_t *handoff_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same with "retry": true. */
json_t *handoff_retry(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
