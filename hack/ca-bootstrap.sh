#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Creates what warren-ca and the tunnels need before they start (docs/ca.md,
# "Install"), with kubectl and the openssl CLI, from the machine that
# installs warren (the product never runs openssl):
#
#   Secret    warren-system/warren-ca            the signing key and certificate
#   ConfigMap warren-system/warren-trust-bundle  roots.pem, the root(s) tunnels trust
#
#   hack/ca-bootstrap.sh                 a new root (hack/gen-ca.sh), made in a
#                                        temporary directory and removed after
#   hack/ca-bootstrap.sh --from DIR      the user's own CA: DIR holds
#                                        ca-cert.pem ca-key.pem cert-chain.pem (an
#                                        intermediate, its chain up to the root) or
#                                        root-cert.pem root-key.pem; the bundle is
#                                        the chain's last certificate (the root)
#   Options: --namespace NS (warren-system), --trust-domain TD (cluster.local),
#            --kubectl CMD (kubectl).
# Idempotent: when the Secret exists it changes nothing and exits 0 (a second
# run must not replace the mesh's key); the ConfigMap is created if missing.
# Root rotation (docs/ca.md) edits the ConfigMap and the Secret by hand.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
usage() { echo "usage: $0 [--from DIR] [--namespace NS] [--trust-domain TD] [--kubectl CMD]" >&2; exit 2; }
from='' ns=warren-system td=cluster.local kubectl=kubectl
while (($#)); do
	case $1 in
	--from) (($# >= 2)) || usage; from=$2; shift ;;
	--namespace) (($# >= 2)) || usage; ns=$2; shift ;;
	--trust-domain) (($# >= 2)) || usage; td=$2; shift ;;
	--kubectl) (($# >= 2)) || usage; kubectl=$2; shift ;;
	*) usage ;;
	esac
	shift
done
k() { $kubectl -n "$ns" "$@"; }

$kubectl get namespace "$ns" >/dev/null 2>&1 || $kubectl create namespace "$ns" >/dev/null
if k get secret warren-ca >/dev/null 2>&1; then
	echo "ca-bootstrap: secret $ns/warren-ca exists: left as it is"
	k get configmap warren-trust-bundle >/dev/null 2>&1 ||
		echo "ca-bootstrap: configmap $ns/warren-trust-bundle is missing: create it from the Secret's root (docs/ca.md)" >&2
	exit 0
fi

S=$(mktemp -d "${TMPDIR:-/tmp}/warren-ca.XXXXXX")
trap 'rm -rf "$S"' EXIT
if [[ -z $from ]]; then
	bash "$ROOT/hack/gen-ca.sh" "$S/ca" --trust-domain "$td" >/dev/null
	files=(root-cert.pem root-key.pem)
	dir=$S/ca
	cp "$dir/root-cert.pem" "$S/roots.pem"
elif [[ -f $from/ca-key.pem ]]; then
	files=(ca-cert.pem ca-key.pem cert-chain.pem)
	dir=$from
	# the bundle: the last certificate of the chain (the root)
	awk '/-----BEGIN CERTIFICATE-----/ {buf = ""} {buf = buf $0 "\n"} /-----END CERTIFICATE-----/ {last = buf} END {printf "%s", last}' \
		"$from/cert-chain.pem" >"$S/roots.pem"
else
	files=(root-cert.pem root-key.pem)
	dir=$from
	cp "$from/root-cert.pem" "$S/roots.pem"
fi
for f in "${files[@]}"; do
	[[ -s $dir/$f ]] || { echo "ca-bootstrap: $dir/$f missing or empty" >&2; exit 1; }
done
openssl x509 -noout -in "$S/roots.pem" 2>/dev/null ||
	{ echo "ca-bootstrap: no root certificate found for the trust bundle" >&2; exit 1; }
args=()
for f in "${files[@]}"; do args+=("--from-file=$f=$dir/$f"); done
k create secret generic warren-ca "${args[@]}" >/dev/null
k create configmap warren-trust-bundle --from-file=roots.pem="$S/roots.pem" --dry-run=client -o yaml | k apply -f - >/dev/null
echo "ca-bootstrap: created secret $ns/warren-ca (${files[*]}) and configmap $ns/warren-trust-bundle"
