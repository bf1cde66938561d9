/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Constants of the compatible surface (Istio ambient's ports, marks and addresses).
 * Shared by plugin, tunnel and tests; nothing here allocates.
 */
#ifndef WARREN_H
#define WARREN_H

#define WARREN_VERSION "0.1.0"

/* Ports inside each enrolled pod's netns. */
#define PORT_OUTBOUND      15001
#define PORT_INBOUND_PLAIN 15006
#define PORT_INBOUND_HBONE 15008
#define PORT_DNS           15053

/* Ports of the tunnel process itself. */
#define PORT_ADMIN     15000
#define PORT_METRICS   15020
#define PORT_READINESS 15021

/* SO_MARK on every socket the tunnel makes in a pod: never redirected. */
#define MARK_TUNNEL      0x539u
#define MARK_MASK        0xfffu
/* connmark/fwmark that returns replies of spoofed connections to the tunnel. */
#define MARK_CONN        0x111u
#define ROUTE_TABLE_INPOD 100u
#define RULE_PRIORITY_INPOD 32764u

/* Kubelet probes are SNATed to these on the node and bypass capture. */
#define PROBE_SNAT_IPV4 "169.254.7.127"
#define PROBE_SNAT_IPV6 "fd16:9254:7127:1337:ffff:ffff:ffff:ffff"

/* Our nftables tables in the pod netns (family inet). */
#define NFT_TABLE_NAT    "warren-nat"
#define NFT_TABLE_MANGLE "warren-mangle"

#define DEFAULT_TUNNEL_SOCKET "/var/run/warren/tunnel.sock"
#define DEFAULT_ADMIN_SOCKET  "/var/run/warren/admin.sock"
#define DEFAULT_STATE_DIR     "/var/lib/warren"

#define LABEL_DATAPLANE_MODE "istio.io/dataplane-mode"
/* Pod annotations. "true" (Go's strconv.ParseBool spellings): capture the
 * pod's outbound traffic only (Istio's "ingress mode"). */
#define ANNOTATION_BYPASS_INBOUND_CAPTURE "ambient.istio.io/bypass-inbound-capture"
/* "ifA,ifB": TCP arriving on these interfaces is the pod's outbound
 * traffic (KubeVirt, nested containers). */
#define ANNOTATION_REROUTE_VIRTUAL_INTERFACES "istio.io/reroute-virtual-interfaces"
/* Set by Istio's sidecar injector: such a pod has a sidecar and is never
 * enrolled. */
#define ANNOTATION_SIDECAR_STATUS "sidecar.istio.io/status"
/* Waypoint attachment (Istio's labels; docs/waypoint.md). */
#define LABEL_USE_WAYPOINT           "istio.io/use-waypoint"
#define LABEL_USE_WAYPOINT_NAMESPACE "istio.io/use-waypoint-namespace"
#define LABEL_WAYPOINT_FOR           "istio.io/waypoint-for"
#define LABEL_GATEWAY_NAME           "gateway.networking.k8s.io/gateway-name"
#define GATEWAY_CLASS_WAYPOINT       "istio-waypoint"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
