#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Makes a mesh CA for demos and tests with the openssl CLI (the product never
# runs openssl; it loads these files through tunnel/ca.c).
#
#   hack/gen-ca.sh DIR [--intermediate] [--trust-domain TD] [--force]
#
# Writes ECDSA P-256 material into DIR (created if missing):
#   root-cert.pem root-key.pem                     always
#   ca-cert.pem ca-key.pem cert-chain.pem          with --intermediate
#     (cert-chain.pem = intermediate then root, Istio's plugged-in CA layout)
# Root: basicConstraints critical CA:TRUE; intermediate: CA:TRUE,pathlen:0;
# both keyUsage critical keyCertSign,cRLSign,digitalSignature. Keys are 0600.
# Idempotent-ish: when every file of the requested layout already exists it
# keeps them and exits 0; when only some exist it refuses (exit 1) unless
# --force, which regenerates everything.
set -euo pipefail

usage() { echo "usage: $0 DIR [--intermediate] [--trust-domain TD] [--force]" >&2; exit 2; }

dir= inter=0 td=cluster.local force=0
while (($#)); do
	case $1 in
	--intermediate) inter=1 ;;
	--trust-domain) (($# >= 2)) || usage; td=$2; shift ;;
	--trust-domain=*) td=${1#*=} ;;
	--force) force=1 ;;
	-h|--help) usage ;;
	-*) echo "gen-ca: unknown option $1" >&2; usage ;;
	*) [[ -z $dir ]] || usage; dir=$1 ;;
	esac
	shift
done
[[ -n $dir ]] || usage
[[ $td =~ ^[a-z0-9._-]+$ ]] || { echo "gen-ca: bad trust domain '$td' (want [a-z0-9._-]+)" >&2; exit 2; }
command -v openssl >/dev/null || { echo "gen-ca: the openssl CLI is required (apt-get install openssl)" >&2; exit 1; }

files=(root-cert.pem root-key.pem)
((inter)) && files+=(ca-cert.pem ca-key.pem cert-chain.pem)
present=0
for f in "${files[@]}"; do [[ -e $dir/$f ]] && present=$((present + 1)); done
if ((!force && present == ${#files[@]})); then
	echo "gen-ca: $dir already holds a CA (${files[*]}); keeping it (use --force to replace)" >&2
	exit 0
fi
if ((!force && present > 0)); then
	echo "gen-ca: $dir holds part of a CA; refusing to overwrite (use --force to regenerate all)" >&2
	exit 1
fi

mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.gen-ca.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
umask 077

cat >"$tmp/openssl.cnf" <<CNF
[req]
distinguished_name = dn
prompt = no
[dn]
O = $td
[v3_root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[v3_inter]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
CNF
export OPENSSL_CONF="$tmp/openssl.cnf"

serial() { echo "0x4$(openssl rand -hex 15)"; }

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/root-key.pem" 2>/dev/null
openssl req -x509 -new -config "$tmp/openssl.cnf" -key "$tmp/root-key.pem" -sha256 -days 3650 \
	-set_serial "$(serial)" -subj "/O=$td/CN=warren root CA" -extensions v3_root \
	-out "$tmp/root-cert.pem"

if ((inter)); then
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/ca-key.pem" 2>/dev/null
	openssl req -new -config "$tmp/openssl.cnf" -key "$tmp/ca-key.pem" \
		-subj "/O=$td/CN=warren intermediate CA" -out "$tmp/ca.csr"
	openssl x509 -req -in "$tmp/ca.csr" -CA "$tmp/root-cert.pem" -CAkey "$tmp/root-key.pem" \
		-set_serial "$(serial)" -sha256 -days 1825 -extfile "$tmp/openssl.cnf" \
		-extensions v3_inter -out "$tmp/ca-cert.pem" 2>/dev/null
	cat "$tmp/ca-cert.pem" "$tmp/root-cert.pem" >"$tmp/cert-chain.pem"
	openssl verify -CAfile "$tmp/root-cert.pem" "$tmp/ca-cert.pem" >/dev/null
fi

for f in "${files[@]}"; do
	case $f in *key.pem) chmod 0600 "$tmp/$f" ;; *) chmod 0644 "$tmp/$f" ;; esac
	mv -f "$tmp/$f" "$dir/$f"
done
echo "gen-ca: wrote ${files[*]} to $dir (trust domain $td)" >&2
