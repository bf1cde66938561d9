#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Renders deploy/warren.yaml: the resources of deploy/kustomization.yaml, in
# its order, as one file (no kustomize needed to read or apply it).
#   hack/render-deploy.sh           write deploy/warren.yaml
#   hack/render-deploy.sh --check   exit 1 when deploy/warren.yaml is stale
set -euo pipefail
cd "$(dirname "$0")/../deploy"
render() {
	echo "# SPDX-License-Identifier: Apache-2.0"
	echo "# warren: rendered from deploy/kustomization.yaml by hack/render-deploy.sh; do not edit."
	echo "# Install: kubectl apply -f warren.yaml (docs/install.md). Istio's CRDs are not in"
	echo "# here: on a cluster without Istio, kubectl create -f crds/istio-security.yaml first."
	local f
	for f in $(sed -n 's/^- \(.*\.yaml\)$/\1/p' kustomization.yaml); do
		echo "---"
		echo "# $f"
		grep -v '^# SPDX-License-Identifier' "$f"
	done
}
if [[ ${1:-} == --check ]]; then
	render | cmp -s - warren.yaml || { echo "deploy/warren.yaml is stale: run hack/render-deploy.sh" >&2; exit 1; }
	exit 0
fi
render >warren.yaml.tmp
mv warren.yaml.tmp warren.yaml
