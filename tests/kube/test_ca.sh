#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# warren-ca on a real control plane (hack/kube-up.sh, KUBE_NODES=0): node
# authorization through the API server's own TokenReview and pod list,
# with warren-ca's RBAC from deploy/ca/rbac.yaml and its own token.
#
#   netns wkc-ID: etcd, kube-apiserver 10.100.0.1:6443
#                 warren-ca 127.0.0.1:15012 (--kubeconfig: the warren-ca SA's token)
#                 curl --cacert root-cert.pem, as a tunnel: Bearer <pod-bound token>
#                 warren-waypoint (--ca-address): its own identity, by CSR
#
#   Node objects node1, node2 (no kubelet: pods stay Pending, which is
#   "not finished"); pods warren-system/tunnel-1 on node1 and tunnel-2 on
#   node2 (service account warren), shop/cart-1 on node1 (cart),
#   shop/batch-1 on node1 (batch, phase Succeeded), shop/waypoint-1 on node1
#   (waypoint). A workload's own pod-bound token gets its own identity only.
set -uo pipefail
source "$(dirname "$0")/../netns/lib.sh"

lib_init
need openssl
need_built warren-ca warren-waypoint
kube_need_bins

CA_PID=
kube_cleanup() {
	local rc=$?
	[[ -n ${WP_PID:-} ]] && kill "$WP_PID" 2>/dev/null
	ca_stop
	kube_down || { not_ok "kube-down: everything removed" "$(cat "$T/kube-down.log")"; rc=1; }
	(exit $rc)
	cleanup
}
trap kube_cleanup EXIT

t0=$SECONDS
kube_up 0
ok "kube-up: etcd and kube-apiserver ready in $((SECONDS - t0)) s"

# --- objects ---------------------------------------------------------------------
kube_ns warren-system || die "namespace warren-system"
kube_ns shop || die "namespace shop"
kubectl create serviceaccount warren -n warren-system >/dev/null || die "sa warren"
for sa in cart batch lonely waypoint; do kubectl create serviceaccount "$sa" -n shop >/dev/null || die "sa $sa"; done
kubectl apply -f "$WARREN_ROOT/deploy/ca/rbac.yaml" >/dev/null || die "deploy/ca/rbac.yaml"
check "deploy/ca/deployment.yaml (Deployment, Service) passes the API server's validation" \
	kubectl apply --dry-run=server -f "$WARREN_ROOT/deploy/ca/deployment.yaml"
for n in node1 node2; do
	printf 'apiVersion: v1\nkind: Node\nmetadata: {name: %s}\n' "$n" | kubectl create -f - >/dev/null || die "node $n"
done
pod() { # NS NAME SA NODE
	kubectl create -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {namespace: $1, name: $2}
spec:
  nodeName: $4
  serviceAccountName: $3
  automountServiceAccountToken: false
  containers: [{name: app, image: localhost/warren-app:1}]
YAML
}
pod warren-system tunnel-1 warren node1 && pod warren-system tunnel-2 warren node2 &&
	pod shop cart-1 cart node1 && pod shop batch-1 batch node1 && pod shop waypoint-1 waypoint node1 ||
	die "pods"
kubectl patch pod batch-1 -n shop --subresource=status --type=merge \
	-p '{"status":{"phase":"Succeeded"}}' >/dev/null || die "batch-1 Succeeded"

# tokens: what the tunnel pods' projected volumes hold (audience warren-ca, bound to the pod)
token() { # NS SA POD [AUDIENCE]
	kubectl create token "$2" -n "$1" --audience "${4:-warren-ca}" --bound-object-kind Pod \
		--bound-object-name "$3" --duration 1h
}
token warren-system warren tunnel-1 >"$T/tok-node1" && token warren-system warren tunnel-2 >"$T/tok-node2" &&
	token shop cart cart-1 >"$T/tok-cart" && token warren-system warren tunnel-1 api >"$T/tok-aud" &&
	token shop waypoint waypoint-1 >"$T/tok-wp" &&
	kubectl create token cart -n shop --audience warren-ca --duration 1h >"$T/tok-cart-unbound" ||
	die "kubectl create token"

# --- warren-ca, with its own service account's token ------------------------------
bash "$WARREN_ROOT/hack/gen-ca.sh" "$T/ca" >/dev/null 2>&1 || die "gen-ca.sh"
kube_ca_kubeconfig || die "warren-ca token"
chmod 600 "$T/ca-token"
CA_ADDR=127.0.0.1:15012
ca_start() { # ip netns exec execs warren-ca: $! is warren-ca itself
	ip netns exec "$KUBE_CP_NETNS" "$WARREN_BUILD/warren-ca" --ca-dir "$T/ca" --kubeconfig "$T/ca-kubeconfig" \
		--listen "$CA_ADDR" --namespace warren-system "$@" >>"$T/ca.log" 2>&1 &
	CA_PID=$!
}
ca_stop() { [[ -n $CA_PID ]] && kill "$CA_PID" 2>/dev/null && wait "$CA_PID" 2>/dev/null; CA_PID=; }
CURL=(cpexec curl -s --cacert "$T/ca/root-cert.pem" --resolve "warren-ca.warren-system.svc:15012:127.0.0.1")
ca_healthy() { [[ $("${CURL[@]}" https://warren-ca.warren-system.svc:15012/healthz) == *ok* ]]; }

# A key that others can read: refused.
chmod 644 "$T/ca/root-key.pem"
ca_start
if wait_for -t 10 exited "$CA_PID" && grep -q "root-key.pem is mode 0644: others may read it" "$T/ca.log"; then
	ok "warren-ca refuses a CA key others can read (mode 0644)"
else
	not_ok "warren-ca refuses a CA key others can read" "$(tail -n 5 "$T/ca.log")"
fi
ca_stop
chmod 600 "$T/ca/root-key.pem"
: >"$T/ca.log"
ca_start
wait_for -t 10 ca_healthy || die "warren-ca not serving (see $T/ca.log: $(tail -n 5 "$T/ca.log"))"
ok "warren-ca serves TLS 1.3 with a certificate for warren-ca.warren-system.svc from the mesh root"

# --- signing -------------------------------------------------------------------------
csr() { # NS SA -> $T/NS-SA.key, prints the request body
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/$1-$2.key" \
		-subj / -addext "subjectAltName=URI:spiffe://cluster.local/ns/$1/sa/$2" 2>/dev/null |
		"$PYTHON" -c 'import json,sys; print(json.dumps({"csr": sys.stdin.read()}))'
}
sign() { # TOKENFILE NS SA -> $T/out.json, prints the HTTP status
	csr "$2" "$3" >"$T/body.json"
	"${CURL[@]}" -o "$T/out.json" -w '%{http_code}' -H "Authorization: Bearer $(cat "$1")" \
		-H 'Content-Type: application/json' --data-binary @"$T/body.json" \
		https://warren-ca.warren-system.svc:15012/v1/sign
}
reason() { "$PYTHON" -c 'import json; print(json.load(open("'"$T"'/out.json")).get("error", ""))'; }
expect() { # NAME WANT_STATUS WANT_REASON_SUBSTRING TOKENFILE NS SA
	local code why
	code=$(sign "$4" "$5" "$6")
	why=$(reason 2>/dev/null)
	if [[ $code == "$2" && $why == *"$3"* ]]; then
		ok "$1 ($code${why:+: $why})"
	else
		not_ok "$1" "status $code, want $2; reason: $why; warren-ca log:"$'\n'"$(tail -n 3 "$T/ca.log")"
	fi
}

code=$(sign "$T/tok-node1" shop cart)
if [[ $code == 200 ]]; then
	"$PYTHON" -c 'import json; j=json.load(open("'"$T"'/out.json")); open("'"$T"'/leaf.pem","w").write(j["certChain"])'
	ok "node1's tunnel gets spiffe://cluster.local/ns/shop/sa/cart (a cart pod runs on node1)"
	check "the certificate verifies against the root and holds the tunnel's key" bash -c "
		openssl verify -CAfile '$T/ca/root-cert.pem' '$T/leaf.pem' &&
		[[ \$(openssl x509 -in '$T/leaf.pem' -noout -pubkey) == \$(openssl pkey -in '$T/shop-cart.key' -pubout) ]]"
	check "the SPIFFE ID is the only SAN; digitalSignature, serverAuth+clientAuth, CA:FALSE, 24 h" bash -c "
		t=\$(openssl x509 -in '$T/leaf.pem' -noout -text)
		grep -A1 'Subject Alternative Name' <<<\"\$t\" | tail -n 1 | grep -qx ' *URI:spiffe://cluster.local/ns/shop/sa/cart' &&
		grep -A1 'X509v3 Key Usage' <<<\"\$t\" | tail -n 1 | grep -qx ' *Digital Signature' &&
		grep -A1 'Extended Key Usage' <<<\"\$t\" | tail -n 1 | grep -q 'TLS Web Server Authentication, TLS Web Client Authentication' &&
		grep -q 'CA:FALSE' <<<\"\$t\" &&
		end=\$(date -d \"\$(openssl x509 -in '$T/leaf.pem' -noout -enddate | cut -d= -f2)\" +%s) &&
		(( end - \$(date +%s) > 86000 && end - \$(date +%s) <= 86400 ))"
else
	not_ok "node1's tunnel gets spiffe://cluster.local/ns/shop/sa/cart" "status $code: $(cat "$T/out.json")"
fi
grep -q "sign spiffe://cluster.local/ns/shop/sa/cart for node node1 pod tunnel-1 .*: 200" "$T/ca.log" &&
	ok "warren-ca logs the signature with the caller's node and pod" ||
	not_ok "warren-ca logs the signature" "$(tail -n 3 "$T/ca.log")"

expect "node2's tunnel is refused cart: no cart pod on node2" 403 "no running pod with service account shop/cart on node node2" \
	"$T/tok-node2" shop cart
grep -q "sign spiffe://cluster.local/ns/shop/sa/cart for node node2 pod tunnel-2 .*: 403 no running pod" "$T/ca.log" &&
	ok "warren-ca logs the refusal and why" || not_ok "warren-ca logs the refusal" "$(tail -n 3 "$T/ca.log")"
expect "a service account with no pod anywhere is refused" 403 "no running pod with service account shop/lonely" \
	"$T/tok-node1" shop lonely
expect "a finished pod (phase Succeeded) does not count" 403 "no running pod with service account shop/batch" \
	"$T/tok-node1" shop batch
expect "a workload's own pod-bound token (the cart pod's) gets its own identity, shop/cart" 200 "" \
	"$T/tok-cart" shop cart
grep -q "sign spiffe://cluster.local/ns/shop/sa/cart for node .* pod cart-1 .*: 200" "$T/ca.log" &&
	ok "... logged with the caller's pod" || not_ok "self signature logged" "$(tail -n 3 "$T/ca.log")"
"$PYTHON" -c 'import json; print(json.load(open("'"$T"'/out.json"))["certChain"])' >"$T/cart-self.pem" &&
	cp "$T/shop-cart.key" "$T/cart-self.key" || not_ok "the cart pod's own certificate kept"
expect "... but no other service account's identity" 403 \
	"caller system:serviceaccount:shop:cart is not the tunnel's service account system:serviceaccount:warren-system:warren nor the requested identity's own (shop/lonely)" \
	"$T/tok-cart" shop lonely
expect "a token of the identity's own account not bound to a pod is refused" 403 \
	"token of system:serviceaccount:shop:cart is not bound to a pod" "$T/tok-cart-unbound" shop cart

# warren-waypoint asks for its own identity: a key in memory, a CSR, the
# pod's projected token; without an answer it serves nothing (fail closed).
ca_stop
ca_start --dns warren-ca.warren-system.svc --dns 127.0.0.1 --cert-lifetime 60
wait_for -t 10 ca_healthy || die "warren-ca not serving again"
printf 'apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: waypoint, namespace: shop}\nspec:\n  gatewayClassName: istio-waypoint\n  listeners: [{name: mesh, port: 15008, protocol: HBONE}]\n' >"$T/wp-mesh.yaml"
WP_PID=
wp_start() { # TOKENFILE
	ip netns exec "$KUBE_CP_NETNS" "$WARREN_BUILD/warren-waypoint" --mesh "$T/wp-mesh.yaml" \
		--ca-address https://127.0.0.1:15012 --ca-token-file "$1" --trust-bundle "$T/ca/root-cert.pem" \
		--namespace shop --name waypoint --listen 127.0.0.1:15108 --readiness 127.0.0.1:15121 \
		--metrics off >"$T/wp.out" 2>"$T/wp.log" &
	WP_PID=$!
}
wp_stop() { [[ -n $WP_PID ]] && kill "$WP_PID" 2>/dev/null && wait "$WP_PID" 2>/dev/null; WP_PID=; }
wp_ready_is() { [[ $(cpexec curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:15121/healthz/ready) == "$1" ]]; }
wp_start "$T/tok-wp"
check "warren-waypoint with its pod's token: a certificate from warren-ca, ready" wait_for -t 20 wp_ready_is 200
check "... as spiffe://cluster.local/ns/shop/sa/waypoint, signed for its own pod" bash -c \
	"grep -q 'waypoint shop/waypoint as spiffe://cluster.local/ns/shop/sa/waypoint' '$T/wp.log' &&
	 grep -q 'sign spiffe://cluster.local/ns/shop/sa/waypoint for node .* pod waypoint-1 .*: 200' '$T/ca.log'"
check "... and serves TLS 1.3 on 15008 with that certificate (the mesh root verifies it)" bash -c \
	"ip netns exec '$KUBE_CP_NETNS' openssl s_client -connect 127.0.0.1:15108 -tls1_3 -alpn h2 -CAfile '$T/ca/root-cert.pem' \
	  -cert '$T/cart-self.pem' -key '$T/cart-self.key' </dev/null 2>/dev/null | grep -q 'Verify return code: 0'"
wp_renewed() { grep -q 'identity spiffe://cluster.local/ns/shop/sa/waypoint: renewed, serial' "$T/wp.log"; }
check "... renewed before it expires (60 s certificates: a quarter of their life after issue)" wait_for -t 45 wp_renewed
check "... and still ready with the new one" wp_ready_is 200
wp_stop
wp_start "$T/tok-cart"
check "warren-waypoint with another account's token: refused by warren-ca, not ready" wait_for -t 20 bash -c \
	"grep -q 'no certificate for spiffe://cluster.local/ns/shop/sa/waypoint yet (.*nor the requested identity.s own' '$T/wp.log'"
check "... readiness answers 503 (no certificate yet)" wp_ready_is 503
check "... and no HBONE connection gets a TLS handshake" fails bash -c \
	"ip netns exec '$KUBE_CP_NETNS' openssl s_client -connect 127.0.0.1:15108 -tls1_3 -alpn h2 </dev/null 2>/dev/null | grep -q 'BEGIN CERTIFICATE'"
wp_stop
expect "a token for another audience is refused" 403 "token not authenticated" "$T/tok-aud" shop cart
printf 'garbage' >"$T/tok-bad"
expect "a token that is not a JWT is refused" 403 "token not authenticated" "$T/tok-bad" shop cart

# An expired token: the tunnel-1 token's claims moved two hours back and signed
# again with the cluster's service-account key, as the API server would have
# issued it then.
"$PYTHON" - "$T/tok-node1" "$T/pki/sa.key" >"$T/tok-expired" <<'PY' || die "expired token"
import base64, json, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
tok = open(sys.argv[1]).read().strip()
head, body, _ = tok.split(".")
pad = lambda s: s + "=" * (-len(s) % 4)
claims = json.loads(base64.urlsafe_b64decode(pad(body)))
for k in ("exp", "iat", "nbf"):
    claims[k] -= 7200
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
signing = head + "." + b64(json.dumps(claims, separators=(",", ":")).encode())
key = serialization.load_pem_private_key(open(sys.argv[2], "rb").read(), None)
r, s = utils.decode_dss_signature(key.sign(signing.encode(), ec.ECDSA(hashes.SHA256())))
print(signing + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big")))
PY
expect "an expired token (signed by the cluster's key) is refused" 403 "token not authenticated" "$T/tok-expired" shop cart
grep -q "403 token not authenticated:.*expired" "$T/ca.log" &&
	ok "the API server's reason (expired) is in warren-ca's log" || not_ok "expired in the log" "$(grep -i expired "$T/ca.log" | tail -n 2)"

# The token's pod deleted: the API server no longer accepts the bound token.
# (warren-ca remembers an accepted review for 10 s, and the API server looks
# the pod up in its informer cache: poll, bounded.)
kubectl delete pod tunnel-2 -n warren-system --grace-period=0 --force >/dev/null 2>&1
wait_for -t 10 fails kubectl get pod tunnel-2 -n warren-system || not_ok "tunnel-2 deleted"
unbound_refused() { [[ $(sign "$T/tok-node2" shop cart) == 403 && $(reason) == *"token not authenticated"* ]]; }
if wait_for -t 20 unbound_refused; then
	ok "a token bound to a deleted tunnel pod is refused ($(reason))"
else
	not_ok "a token bound to a deleted tunnel pod is refused" "$(reason)"
fi

# The cart pod finished: node1 loses cart at its next request.
kubectl patch pod cart-1 -n shop --subresource=status --type=merge -p '{"status":{"phase":"Failed"}}' >/dev/null
expect "once the cart pod has failed, node1 is refused cart too" 403 "no running pod" "$T/tok-node1" shop cart

# Malformed requests.
code=$("${CURL[@]}" -o "$T/out.json" -w '%{http_code}' --data-binary @"$T/body.json" https://warren-ca.warren-system.svc:15012/v1/sign)
[[ $code == 401 ]] && ok "no bearer token: 401" || not_ok "no bearer token: 401" "status $code"
code=$("${CURL[@]}" -o "$T/out.json" -w '%{http_code}' -H "Authorization: Bearer $(cat "$T/tok-node1")" \
	--data-binary '{"csr":"nope"}' https://warren-ca.warren-system.svc:15012/v1/sign)
[[ $code == 400 && $(reason) == *"no PEM"* ]] && ok "a body without a CSR: 400 ($(reason))" || not_ok "bad CSR: 400" "status $code $(reason)"

# warren-ca's RBAC is what it needs: without it, a 503 that says so, not a signature.
kubectl delete clusterrolebinding warren-ca >/dev/null || die "delete binding"
expect "without its RBAC, warren-ca answers 503 and names the RBAC" 503 "RBAC" "$T/tok-node1" shop lonely
kubectl apply -f "$WARREN_ROOT/deploy/ca/rbac.yaml" >/dev/null

# --- an intermediate the user provides (cert-manager, their PKI) ---------------------------
# The Secret's keys as hack/ca-bootstrap.sh --from takes them: ca-cert.pem,
# ca-key.pem, cert-chain.pem; no root key.
pid=$CA_PID
ca_stop
check "warren-ca stops on SIGTERM" fails kill -0 "$pid"
bash "$WARREN_ROOT/hack/gen-ca.sh" "$T/inter" --intermediate >/dev/null 2>&1 || die "gen-ca.sh --intermediate"
mv "$T/ca" "$T/ca.first" && mkdir -m 700 "$T/ca" &&
	cp -p "$T/inter/ca-cert.pem" "$T/inter/ca-key.pem" "$T/inter/cert-chain.pem" "$T/ca/" ||
	die "the intermediate's directory"
cp "$T/inter/root-cert.pem" "$T/inter-root.pem"
CURL=(cpexec curl -s --cacert "$T/inter-root.pem" --resolve "warren-ca.warren-system.svc:15012:127.0.0.1")
pod shop cart-2 cart node1 || die "pod cart-2"
ca_start
wait_for -t 10 ca_healthy || die "warren-ca with an intermediate: $(tail -n 5 "$T/ca.log")"
ok "warren-ca serves with an intermediate (no root key), its TLS certificate verified against the root"
code=$(sign "$T/tok-node1" shop cart)
if [[ $code == 200 ]]; then
	"$PYTHON" -c 'import json; j=json.load(open("'"$T"'/out.json")); open("'"$T"'/ichain.pem","w").write(j["certChain"])'
	awk '/BEGIN/ {n++} n == 1' "$T/ichain.pem" >"$T/ileaf.pem"
	awk '/BEGIN/ {n++} n == 2' "$T/ichain.pem" >"$T/iinter.pem"
	check "signed by the intermediate: the chain holds leaf and intermediate, and verifies to the root" bash -c "
		cmp -s <(openssl x509 -in '$T/iinter.pem' -outform der) <(openssl x509 -in '$T/inter/ca-cert.pem' -outform der) &&
		openssl verify -CAfile '$T/inter-root.pem' -untrusted '$T/iinter.pem' '$T/ileaf.pem'"
else
	not_ok "warren-ca with an intermediate signs cart for node1" "status $code: $(cat "$T/out.json")"
fi
pid=$CA_PID
ca_stop
check "warren-ca (intermediate) stops on SIGTERM" fails kill -0 "$pid"
check "warren-ca: no sanitizer report (with B=build-san)" fails grep -q "Sanitizer" "$T/ca.log"
[[ $TAP_FAILED == 0 ]]
