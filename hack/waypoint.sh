#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Renders a waypoint for a namespace (docs/waypoint.md, "In a cluster"):
# the Gateway (class istio-waypoint), its ServiceAccount and binding to the
# ClusterRole warren-waypoint (deploy/waypoint/rbac.yaml, in
# deploy/warren.yaml), a copy of the mesh's trust bundle, the Deployment
# running warren-waypoint from warren's image, and its Service. Prints YAML
# for kubectl apply -f -; reads the trust bundle with kubectl.
#
#   hack/waypoint.sh NAMESPACE [NAME]   NAME defaults to waypoint
#   Options: --for service|workload|all (service), --replicas N (1),
#            --image IMAGE (localhost/warren:dev), --bundle FILE (instead of
#            the cluster's warren-system/warren-trust-bundle), --kubectl CMD.
#
# Then label what it serves: kubectl label namespace NAMESPACE istio.io/use-waypoint=NAME
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
usage() { echo "usage: $0 NAMESPACE [NAME] [--for service|workload|all] [--replicas N] [--image IMAGE] [--bundle FILE] [--kubectl CMD]" >&2; exit 2; }
ns='' name='' for=service replicas=1 image=localhost/warren:dev bundle='' kubectl=kubectl
while (($#)); do
	case $1 in
	--for) (($# >= 2)) || usage; for=$2; shift ;;
	--replicas) (($# >= 2)) || usage; replicas=$2; shift ;;
	--image) (($# >= 2)) || usage; image=$2; shift ;;
	--bundle) (($# >= 2)) || usage; bundle=$2; shift ;;
	--kubectl) (($# >= 2)) || usage; kubectl=$2; shift ;;
	-*) usage ;;
	*) if [[ -z $ns ]]; then ns=$1; elif [[ -z $name ]]; then name=$1; else usage; fi ;;
	esac
	shift
done
[[ -n $ns ]] || usage
name=${name:-waypoint}
dns1123() { [[ $1 =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ && ${#1} -le 63 ]]; }
dns1123 "$ns" || { echo "waypoint.sh: namespace \"$ns\" is not a DNS label" >&2; exit 2; }
# the Deployment's and Service's names are the Gateway's
dns1123 "$name" || { echo "waypoint.sh: name \"$name\" is not a DNS label" >&2; exit 2; }
[[ $for =~ ^(service|workload|all)$ ]] || { echo "waypoint.sh: --for service, workload or all" >&2; exit 2; }
[[ $replicas =~ ^[1-9][0-9]?$ ]] || { echo "waypoint.sh: --replicas 1..99" >&2; exit 2; }
[[ $image =~ ^[A-Za-z0-9./:@_-]+$ ]] || { echo "waypoint.sh: bad image \"$image\"" >&2; exit 2; }

if [[ -n $bundle ]]; then
	roots=$(cat "$bundle")
else
	roots=$($kubectl -n warren-system get configmap warren-trust-bundle -o 'jsonpath={.data.roots\.pem}') ||
		{ echo "waypoint.sh: cannot read warren-system/warren-trust-bundle (hack/ca-bootstrap.sh makes it)" >&2; exit 1; }
fi
grep -q -- '-----BEGIN CERTIFICATE-----' <<<"$roots" ||
	{ echo "waypoint.sh: the trust bundle holds no PEM certificate" >&2; exit 1; }

# @ROOTS@: the PEM, indented as a YAML block scalar
indented=$(sed 's/^/    /' <<<"$roots")
while IFS= read -r line; do
	if [[ $line == @ROOTS@ ]]; then
		printf '%s\n' "$indented"
		continue
	fi
	line=${line//@NAMESPACE@/$ns}
	line=${line//@NAME@/$name}
	line=${line//@FOR@/$for}
	line=${line//@REPLICAS@/$replicas}
	line=${line//image: localhost\/warren:dev/image: $image}
	printf '%s\n' "$line"
done <"$ROOT/deploy/waypoint/waypoint.yaml.in"
