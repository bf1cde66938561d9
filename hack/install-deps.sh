#!/usr/bin/env bash
# Installs the Debian packages needed to build, test, benchmark and demo warren.
# Idempotent: packages already present are not fetched again.
set -euo pipefail

PKGS=(
  # build
  build-essential pkg-config clang llvm libclang-rt-14-dev bpftool
  libjansson-dev libmnl-dev libnftnl-dev libssl-dev libnghttp2-dev libbpf-dev libyaml-dev libcurl4-openssl-dev libcap-ng-dev
  # run, test, demo
  containernetworking-plugins nftables iproute2 conntrack tcpdump openssl
  socat netcat-openbsd curl jq procps psmisc python3 python3-yaml iputils-ping util-linux
  # lint (tests/netns/test_warren_netns.sh checks hack/warren-netns with it)
  shellcheck
  # runtime-level tests (tests/netns/test_runtime.sh): the libcni Go harness, ctr, podman
  golang-go golang-github-appc-cni-dev containerd runc podman busybox-static
  # the real-cluster tests (tests/kube/, hack/kube-build.sh): runc's seccomp;
  # test_ca.sh re-signs a service-account token to make an expired one
  libseccomp-dev python3-cryptography
  # benchmark peers and load tools
  iperf3 sockperf haproxy wrk
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep 'install ok installed' >/dev/null || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
