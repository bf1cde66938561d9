#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `make image` is reproducible: the checkout's files copied to two
# directories with different paths, hack/image.sh run in each from a clean
# build, and the two archives compared (layer digests, then every byte).
# Then the image's own contents: the binaries run in it (chroot), its layers
# hold only root-owned entries with mtime 0.
#
#   $T/a/<checkout>  --hack/image.sh-->  a.tar  \
#                                                 >  same layer digests, same bytes
#   $T/bb/<checkout> --hack/image.sh-->  b.tar  /
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/netns/lib.sh
lib_init
need tar gzip sha256sum chroot git
SRC=$PWD

for d in a bb; do
	mkdir -p "$T/$d/warren"
	git -C "$SRC" ls-files -z --cached --others --exclude-standard |
		(cd "$SRC" && xargs -0 cp --parents -t "$T/$d/warren" 2>/dev/null)
	if ! (cd "$T/$d/warren" && IMAGE=localhost/warren:test bash hack/image.sh "$T/$d.tar") >"$T/$d.log" 2>&1; then
		die "hack/image.sh in $T/$d failed: $(tail -5 "$T/$d.log")"
	fi
done
layers() { tar -xOf "$1" manifest.json | "$PYTHON" -c 'import json,sys; print(" ".join(json.load(sys.stdin)[0]["Layers"]))'; }
la=$(layers "$T/a.tar") lb=$(layers "$T/bb.tar")
check "two builds in two checkouts: the same layer digests" test "$la" = "$lb"
diag "layers: $la"
check "... and byte-identical archives" cmp "$T/a.tar" "$T/bb.tar"

mkdir -p "$T/x" "$T/root"
tar -xf "$T/a.tar" -C "$T/x"
for l in $la; do tar -xzf "$T/x/$l" -C "$T/root"; done
check "the layers' blobs match their digests" bash -c "cd '$T/x/blobs/sha256' && for f in *; do [[ \$(sha256sum <\$f | cut -d' ' -f1) == \$f ]] || exit 1; done"
bad=$(for l in $la; do tar -tvzf "$T/x/$l"; done | awk '$2 != "0/0" || $4 != "1970-01-01" {print}' | head -5)
check "every layer entry is 0/0 with mtime 0" test -z "$bad"
for c in "warren-tunnel --version" "warren-install --help" "warrenctl --help" "warren-ca --help" "warren-waypoint --help" "warren-netns --help" \
	"nft --version" "tcpdump --version" "jq --version" "curl --version" "nsenter --version"; do
	check "in the image: $c runs" chroot "$T/root" /usr/bin/env PATH=/usr/local/bin:/usr/sbin:/usr/bin $c
done
check "in the image: warren-cni is the one built (answers VERSION)" \
	bash -c "CNI_COMMAND=VERSION chroot '$T/root' /usr/local/bin/warren-cni </dev/null | grep -q supportedVersions"
check "the base lists its Debian packages with versions" grep -q '^libc6 ' "$T/root/usr/share/warren/base-packages.txt"
check "no path of the build machine's checkout in the binaries" \
	bash -c "! grep -l '$T' '$T/root/usr/local/bin/'warren-*"
((TAP_FAILED == 0))
