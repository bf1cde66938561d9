# SPDX-License-Identifier: Apache-2.0
# warren build. `make` builds the three binaries; `make test` runs every test
# and ends with "N passed, N failed"; `make SANITIZE=1 ...` builds everything
# (tests included) with ASan+UBSan into build-san/; `make SANITIZE=thread`
# with TSan into build-tsan/ (the tunnel's worker threads).

PKG_CONFIG ?= pkg-config
PREFIX     ?= /usr/local
DESTDIR    ?=
CNI_BIN_DIR ?= /opt/cni/bin
CC         ?= cc
CFLAGS     ?= -O2 -g

# Each binary links only the libraries it calls. The product binaries link
# with --no-as-needed, so these lists are exactly what they load whatever the
# toolchain's default; tests/lint/linksets.py fails on a library they list
# but do not call.
# libbpf: the plugin loads and attaches the eBPF capture program, the
# tunnel fills its listener map; the other binaries do neither.
CNI_PKGS    := jansson libmnl libnftnl libbpf
TUNNEL_PKGS := jansson libmnl libnftnl libnghttp2 openssl yaml-0.1 libcap-ng libcurl libbpf
CTL_PKGS    := jansson libcurl
CA_PKGS     := jansson libcurl openssl yaml-0.1
# warren-install: jansson for the conflist, libcurl to ask the API server
# whether its DaemonSet is being deleted (conf/kube.c reads the in-cluster
# credentials; it needs OpenSSL's base64 and, through kobj, libyaml).
INSTALL_PKGS := jansson libcurl libcrypto yaml-0.1
# warren-waypoint: the tunnel's loop, TLS and HBONE (nghttp2, OpenSSL), the
# mesh model (jansson, libyaml), the Kubernetes source and warren-ca's
# client (libcurl); no netlink, no eBPF.
WAYPOINT_PKGS := jansson libnghttp2 openssl yaml-0.1 libcurl libcap-ng
PKGS        := $(sort $(CNI_PKGS) $(TUNNEL_PKGS) $(CTL_PKGS) $(INSTALL_PKGS) $(CA_PKGS) $(WAYPOINT_PKGS))

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wformat=2 -Wwrite-strings -Wno-unused-parameter
ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE $(WARN) -I. $(shell $(PKG_CONFIG) --cflags $(PKGS)) $(CFLAGS) -MMD -MP
CNI_LIBS    := -Wl,--no-as-needed $(shell $(PKG_CONFIG) --libs $(CNI_PKGS))
TUNNEL_LIBS := -Wl,--no-as-needed $(shell $(PKG_CONFIG) --libs $(TUNNEL_PKGS)) -lpthread
CTL_LIBS    := -Wl,--no-as-needed $(shell $(PKG_CONFIG) --libs $(CTL_PKGS))
CA_LIBS     := -Wl,--no-as-needed $(shell $(PKG_CONFIG) --libs $(CA_PKGS)) -lpthread
# waypoint/main.c's _gnutls_global_init_skip must be visible to GnuTLS's
# load-time constructor.
WAYPOINT_LIBS := -Wl,--no-as-needed $(shell $(PKG_CONFIG) --libs $(WAYPOINT_PKGS)) \
                 -Wl,--export-dynamic-symbol=_gnutls_global_init_skip
# Unit tests, tools and fuzz targets: the tunnel's libraries (not libcurl:
# only warrenctl calls it); --as-needed keeps each to the ones it calls.
INSTALL_LIBS := -Wl,--no-as-needed $(shell $(PKG_CONFIG) --libs $(INSTALL_PKGS))
# Unit tests, tools and fuzz targets: the tunnel's libraries
# (--as-needed keeps each to the ones it calls).
TEST_LIBS   := -Wl,--as-needed $(shell $(PKG_CONFIG) --libs $(TUNNEL_PKGS)) -lpthread

ifeq ($(SANITIZE),1)
B ?= build-san
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
else ifeq ($(SANITIZE),thread)
B ?= build-tsan
ALL_CFLAGS += -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS += -fsanitize=thread
else
B ?= build
endif
# generated headers (the eBPF skeleton)
ALL_CFLAGS += -I$(B)

LIB_SRCS    := $(wildcard conf/*.c model/*.c netlink/*.c) $(filter-out plugin/main.c,$(wildcard plugin/*.c)) \
               $(filter-out tunnel/main.c,$(wildcard tunnel/*.c)) \
               $(filter-out ca/main.c,$(wildcard ca/*.c)) \
               $(filter-out install/main.c,$(wildcard install/*.c)) \
               $(filter-out waypoint/main.c,$(wildcard waypoint/*.c))
LIB_OBJS    := $(LIB_SRCS:%.c=$(B)/%.o)
UNIT_SRCS   := $(wildcard tests/unit/test_*.c)
UNIT_BINS   := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)
TOOL_SRCS   := $(wildcard tests/tools/*.c)
TOOL_BINS   := $(TOOL_SRCS:tests/tools/%.c=$(B)/tests/%)
FUZZ_SRCS   := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS   := $(FUZZ_SRCS:tests/fuzz/%.c=$(B)/fuzz/%)

BINS := $(B)/warren-cni $(B)/warren-tunnel $(B)/warrenctl $(B)/warren-ca $(B)/warren-install \
        $(B)/warren-waypoint

Q := @
ifeq ($(V),1)
Q :=
endif

all: $(BINS) $(UNIT_BINS) $(TOOL_BINS) $(B)/tests/waypoint-floor $(B)/tests/waypoint-floor-nocurl

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The eBPF capture program (bpf/): compiled against the kernel's types
# (vmlinux.h from its BTF; no CO-RE relocation is needed, docs/ebpf.md),
# embedded into netlink/inpod_ebpf.o as a libbpf skeleton.
CLANG   ?= clang
BPFTOOL ?= $(shell command -v bpftool || echo /usr/sbin/bpftool)
BPF_ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')

$(B)/bpf/vmlinux.h:
	@mkdir -p $(dir $@)
	@echo "  BTF     $@"
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(B)/bpf/%.bpf.o: bpf/%.bpf.c bpf/%.h $(B)/bpf/vmlinux.h
	@echo "  BPF     $<"
	$(Q)$(CLANG) -g -O2 -fdebug-prefix-map=$(CURDIR)=. -target bpf -D__TARGET_ARCH_$(BPF_ARCH) -Wall -Werror -I. -I$(B)/bpf -c -o $@ $<

$(B)/bpf/%.skel.h: $(B)/bpf/%.bpf.o
	@echo "  SKEL    $@"
	$(Q)$(BPFTOOL) gen skeleton $< name $*_bpf > $@.tmp && mv $@.tmp $@

# The object's identity for the pool of spare programs (netlink/ebpf_pool.h):
# a plugin takes only spares loaded from the very bytes it embeds.
$(B)/bpf/%.hash.h: $(B)/bpf/%.bpf.o
	@echo "  HASH    $@"
	$(Q)printf '#define CAPTURE_OBJ_HASH "%s"\n' "$$(sha256sum $< | cut -c1-16)" > $@.tmp && mv $@.tmp $@

$(B)/netlink/inpod_ebpf.o: $(B)/bpf/capture.skel.h
$(B)/netlink/ebpf_pool.o: $(B)/bpf/capture.skel.h $(B)/bpf/capture.hash.h

$(B)/libwarren.a: $(LIB_OBJS)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/warren-cni: $(B)/plugin/main.o $(B)/libwarren.a
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(CNI_LIBS)

$(B)/warren-tunnel: $(B)/tunnel/main.o $(B)/libwarren.a
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(TUNNEL_LIBS)

$(B)/warrenctl: $(B)/ctl/warrenctl.o $(B)/libwarren.a
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(CTL_LIBS)

$(B)/warren-ca: $(B)/ca/main.o $(B)/libwarren.a
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(CA_LIBS)

$(B)/warren-waypoint: $(B)/waypoint/main.o $(B)/libwarren.a
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(WAYPOINT_LIBS)

# make bench's bound for the waypoint's RSS: an empty program linked with
# exactly the waypoint's libraries and flags (tests/bench/waypoint-floor.c);
# -nocurl: the same without libcurl, for what libcurl's dependencies cost.
$(B)/tests/waypoint-floor: $(B)/tests/bench/waypoint-floor.o
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(WAYPOINT_LIBS)

$(B)/tests/waypoint-floor-nocurl: $(B)/tests/bench/waypoint-floor.o
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ -Wl,--no-as-needed $(shell $(PKG_CONFIG) --libs $(filter-out libcurl,$(WAYPOINT_PKGS))) \
		-Wl,--export-dynamic-symbol=_gnutls_global_init_skip

$(B)/warren-install: $(B)/install/main.o $(B)/libwarren.a
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(INSTALL_LIBS)

$(B)/tests/%: $(B)/tests/unit/%.o $(B)/libwarren.a
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(TEST_LIBS)

$(B)/tests/%: $(B)/tests/tools/%.o $(B)/libwarren.a
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(TEST_LIBS)

# libFuzzer targets: always clang, always with ASan+UBSan.
FUZZ_CC ?= clang
FUZZ_CFLAGS := -std=gnu11 -D_GNU_SOURCE -g -O1 -I. -I$(B) $(shell $(PKG_CONFIG) --cflags $(PKGS)) \
               -fsanitize=fuzzer,address,undefined -Wno-unused-command-line-argument
$(B)/fuzz/%: tests/fuzz/%.c $(LIB_SRCS) $(B)/bpf/capture.skel.h $(B)/bpf/capture.hash.h
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(LIB_SRCS) $(TEST_LIBS)

fuzz: $(FUZZ_BINS)

# Runs the fuzz targets for a bounded time each (FUZZ_SECONDS).
FUZZ_SECONDS ?= 20
fuzz-run: $(FUZZ_BINS)
	$(Q)for f in $(FUZZ_BINS); do n=$$(basename $$f); mkdir -p $(B)/fuzz/corpus-$$n; \
	  cp -n tests/fuzz/corpus/$$n/* $(B)/fuzz/corpus-$$n/ 2>/dev/null || true; \
	  echo "  RUN     $$n ($(FUZZ_SECONDS)s)"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 $(B)/fuzz/corpus-$$n >$(B)/fuzz/$$n.log 2>&1 \
	    || { tail -50 $(B)/fuzz/$$n.log; exit 1; }; done

# Every fuzz target for FUZZ_SECONDS each (600 unless given), one after
# another, each from its committed seeds plus what earlier runs found
# ($(B)/fuzz/corpus-NAME); one summary line per target, and the first
# crash stops it (its log and reproducer stay in $(B)/fuzz/).
FUZZ_LONG_SECONDS = $(if $(filter command line environment,$(origin FUZZ_SECONDS)),$(FUZZ_SECONDS),600)
fuzz-long: $(FUZZ_BINS)
	$(Q)for f in $(FUZZ_BINS); do n=$$(basename $$f); mkdir -p $(B)/fuzz/corpus-$$n; \
	  cp -n tests/fuzz/corpus/$$n/* $(B)/fuzz/corpus-$$n/ 2>/dev/null || true; \
	  $$f -max_total_time=$(FUZZ_LONG_SECONDS) -print_final_stats=1 -artifact_prefix=$(B)/fuzz/$$n- \
	    $(B)/fuzz/corpus-$$n >$(B)/fuzz/$$n.long.log 2>&1 || { tail -50 $(B)/fuzz/$$n.long.log; exit 1; }; \
	  echo "  $$n: $(FUZZ_LONG_SECONDS)s, $$(sed -n 's/^stat::number_of_executed_units: *//p' $(B)/fuzz/$$n.long.log) runs, $$(grep -o 'cov: [0-9]*' $(B)/fuzz/$$n.long.log | tail -1), corpus $$(ls $(B)/fuzz/corpus-$$n | wc -l) inputs, no crash"; \
	done

test: all
	$(Q)B=$(B) bash tests/run.sh

unit: all
	$(Q)B=$(B) UNIT_ONLY=1 bash tests/run.sh

bench: all
	$(Q)B=$(B) bash tests/bench/run.sh

demo: all
	$(Q)B=$(B) bash hack/demo.sh

install: $(BINS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(CNI_BIN_DIR)
	install -m 0755 $(B)/warren-tunnel $(B)/warrenctl $(B)/warren-ca $(B)/warren-install $(B)/warren-waypoint $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 hack/warren-netns $(DESTDIR)$(PREFIX)/bin/ 2>/dev/null || true
	# atomic replace: runtimes may exec the plugin while we write it
	install -m 0755 $(B)/warren-cni $(DESTDIR)$(CNI_BIN_DIR)/.warren-cni.new
	mv -f $(DESTDIR)$(CNI_BIN_DIR)/.warren-cni.new $(DESTDIR)$(CNI_BIN_DIR)/warren-cni

# The container image as an OCI archive, no registry (hack/image.sh;
# docs/install.md). IMAGE=localhost/warren:TAG names it.
image:
	$(Q)bash hack/image.sh

clean:
	rm -rf build build-san build-tsan build-image

.PHONY: all test unit bench demo install clean fuzz fuzz-run fuzz-long image
.SECONDARY:

-include $(shell find $(B) -name '*.d' 2>/dev/null)
