#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds warren's container image as an OCI image archive, with no registry
# and no image builder (`make image` runs it):
#
#   hack/image.sh [OUT.tar]     default build-image/warren-image.tar
#   Env: IMAGE (default localhost/warren:dev), the name the archive carries;
#        B (default build-image), the build directory used.
#
# Two layers (docs/install.md says why this base):
#   1. base: the exact shared libraries the binaries below were linked
#      against, taken from this machine's Debian 12 packages (their names and
#      versions listed in /usr/share/warren/base-packages.txt), plus what
#      warren-netns runs (bash, curl, jq, nsenter, nft, ip, ss, tcpdump,
#      conntrack and a few coreutils) and a minimal /etc;
#   2. warren: warren-tunnel, warren-cni, warrenctl, warren-install, warren-ca, warren-waypoint in
#      /usr/local/bin and hack/warren-netns as /usr/local/bin/warren-netns.
# Reproducible: the binaries are built with the checkout's path mapped away
# and stripped; the layers are tars of sorted names with uid/gid 0, mtime 0
# and no atime/ctime, gzipped without a name or time; the config carries no
# date. So the same commit on the same Debian packages gives the same layer
# digests (tests/netns/test_image.sh builds twice, in two checkouts).
# The archive is an OCI image layout (index.json, blobs/sha256/) that also
# carries a docker-save manifest.json, so `ctr images import`,
# `kind load image-archive`, `podman load` and `docker load` all read it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
B=${B:-build-image}
OUT=$(realpath -m "${1:-$B/warren-image.tar}")
IMAGE=${IMAGE:-localhost/warren:dev}
[[ $IMAGE == *:* ]] || { echo "image: IMAGE must be NAME:TAG, got $IMAGE" >&2; exit 1; }
umask 022
export LC_ALL=C

# --- binaries: the checkout's path must not reach them ---------------------------
BINS=(warren-tunnel warren-cni warrenctl warren-install warren-ca warren-waypoint)
nice make -s -j2 B="$B" CFLAGS="-O2 -g -ffile-prefix-map=$ROOT=." "${BINS[@]/#/$B/}" >/dev/null

TOOLS=(/usr/bin/bash /usr/bin/curl /usr/bin/jq /usr/bin/nsenter /usr/sbin/nft /usr/sbin/ip /usr/bin/ss
	/usr/bin/tcpdump /usr/sbin/conntrack /usr/bin/env /usr/bin/cat /usr/bin/head /usr/bin/sort
	/usr/bin/tr /usr/bin/mktemp /usr/bin/timeout /usr/bin/sed /usr/bin/grep)
for t in "${TOOLS[@]}"; do
	[[ -x $t ]] || { echo "image: missing $t (bash hack/install-deps.sh)" >&2; exit 1; }
done

S=$(mktemp -d "${TMPDIR:-/tmp}/warren-image.XXXXXX")
trap 'rm -rf "$S"' EXIT
base=$S/base warren=$S/warren
mkdir -p "$base"/{etc,tmp,usr/bin,usr/sbin,usr/lib64,usr/share/warren} "$warren/usr/local/bin"
chmod 1777 "$base/tmp"
# merged /usr, as Debian 12
for l in bin sbin lib lib64; do ln -s "usr/$l" "$base/$l"; done
mkdir -p "$base/usr/lib"

# --- layer 2: warren -----------------------------------------------------------------
for b in "${BINS[@]}"; do
	strip -o "$warren/usr/local/bin/$b" "$B/$b"
	chmod 0755 "$warren/usr/local/bin/$b"
done
install -m 0755 hack/warren-netns "$warren/usr/local/bin/warren-netns"

# --- layer 1: base -------------------------------------------------------------------
declare -A PKGFILES=()
add_file() { # PATH as the system names it: the real file at its canonical path, plus the link
	local p=$1 real dir
	real=$(readlink -f "$p")
	dir=$(readlink -f "$(dirname "$p")")
	if [[ ! -e $base$real ]]; then
		mkdir -p "$base$(dirname "$real")"
		cp "$real" "$base$real"
		chmod "$(stat -c %a "$real")" "$base$real"
	fi
	if [[ $dir/$(basename "$p") != "$real" && ! -e $base$dir/$(basename "$p") ]]; then
		mkdir -p "$base$dir"
		ln -s "$(realpath --relative-to="$dir" "$real")" "$base$dir/$(basename "$p")"
	fi
	PKGFILES[$p]=1
}
for t in "${TOOLS[@]}"; do add_file "$t"; done
elves=("${TOOLS[@]}")
for b in "${BINS[@]}"; do elves+=("$warren/usr/local/bin/$b"); done
for e in "${elves[@]}"; do
	[[ $(head -c 4 "$e" | od -An -c | tr -d ' ') == 177ELF ]] || continue
	while read -r lib; do add_file "$lib"; done < <(ldd "$e" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
done
printf 'root:x:0:0:root:/root:/bin/bash\ntcpdump:x:104:109::/nonexistent:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$base/etc/passwd"
printf 'root:x:0:\ntcpdump:x:109:\nnogroup:x:65534:\n' >"$base/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$base/etc/nsswitch.conf"
# which Debian packages the base came from, with their versions
owner() { # PATH: its Debian package (merged /usr: dpkg may know it by the other name)
	local r
	r=$(readlink -f "$1")
	dpkg -S "$1" 2>/dev/null || dpkg -S "${1#/usr}" 2>/dev/null || dpkg -S "$r" 2>/dev/null ||
		dpkg -S "${r#/usr}" 2>/dev/null || { echo "image: no Debian package owns $1" >&2; return 1; }
}
for p in "${!PKGFILES[@]}"; do owner "$p"; done |
	cut -d: -f1 | tr ',' '\n' | sed 's/^ *//' | sort -u |
	xargs dpkg-query -W -f '${Package} ${Version}\n' | sort -u >"$base/usr/share/warren/base-packages.txt"

# --- deterministic tars ---------------------------------------------------------------
TAR=(tar --format=gnu --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --no-recursion)
layer() { # DIR OUT.tar.gz: prints "diffid digest size"
	local dir=$1 out=$2
	(cd "$dir" && find . -mindepth 1 | sed 's|^\./||' | sort | "${TAR[@]}" -cf "$out.tar" -T -)
	gzip -n -9 -c "$out.tar" >"$out"
	echo "$(sha256sum <"$out.tar" | cut -d' ' -f1) $(sha256sum <"$out" | cut -d' ' -f1) $(stat -c %s "$out")"
	rm -f "$out.tar"
}
A=$S/archive
mkdir -p "$A/blobs/sha256"
read -r base_diff base_dig base_size < <(layer "$base" "$S/base.tgz")
read -r w_diff w_dig w_size < <(layer "$warren" "$S/warren.tgz")
mv "$S/base.tgz" "$A/blobs/sha256/$base_dig"
mv "$S/warren.tgz" "$A/blobs/sha256/$w_dig"
blob() { # FILE: moves it into blobs/, prints "digest size"
	local d s
	d=$(sha256sum <"$1" | cut -d' ' -f1)
	s=$(stat -c %s "$1")
	mv "$1" "$A/blobs/sha256/$d"
	echo "$d $s"
}
printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/bin:/usr/sbin:/usr/bin"],"Entrypoint":["/usr/local/bin/warren-tunnel"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s","sha256:%s"]}}' \
	"$base_diff" "$w_diff" >"$S/config.json"
read -r cfg_dig cfg_size < <(blob "$S/config.json")
L='application/vnd.oci.image.layer.v1.tar+gzip'
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"%s","digest":"sha256:%s","size":%s},{"mediaType":"%s","digest":"sha256:%s","size":%s}]}' \
	"$cfg_dig" "$cfg_size" "$L" "$base_dig" "$base_size" "$L" "$w_dig" "$w_size" >"$S/manifest.json"
read -r man_dig man_size < <(blob "$S/manifest.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
	"$man_dig" "$man_size" "$IMAGE" "${IMAGE##*:}" >"$A/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$A/oci-layout"
printf '[{"Config":"blobs/sha256/%s","RepoTags":["%s"],"Layers":["blobs/sha256/%s","blobs/sha256/%s"]}]' \
	"$cfg_dig" "$IMAGE" "$base_dig" "$w_dig" >"$A/manifest.json"
mkdir -p "$(dirname "$OUT")"
(cd "$A" && find . -mindepth 1 | sed 's|^\./||' | sort | "${TAR[@]}" -cf "$OUT.tmp" -T -)
mv "$OUT.tmp" "$OUT"
echo "image: $OUT ($IMAGE): manifest sha256:$man_dig"
echo "image: layers base sha256:$base_dig ($((base_size / 1024)) KiB), warren sha256:$w_dig ($((w_size / 1024)) KiB)"
