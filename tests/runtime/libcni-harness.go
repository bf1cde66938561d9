// SPDX-License-Identifier: Apache-2.0
//
// libcni-harness: drives one CNI conflist through the real runtime-side
// library (Debian's github.com/containernetworking/cni/libcni 1.1.2), the
// code containerd and podman vendor, so prevResult threading, the VERSION
// probe, the result cache and reverse-order DEL are libcni's, not ours.
//
// One command per run; state between runs lives in libcni's cache dir:
//
//	libcni-harness -conflist F -cache D -path P1:P2 -netns N -cid C [-ifname eth0]
//	               [-args 'K=V;K=V'] validate|add|check|del
//
// validate: ValidateNetworkList, then prints "VERSION <type> <versions>" per
// plugin (what its VERSION answer said) and "CAPS <caps>".
// add: prints the result libcni returns, as JSON, on one line.
// check/del: print nothing. Any error: "ERROR: <libcni's message>" on
// stderr, exit 1. Built in the test with
// GO111MODULE=off GOPATH=<tmp>:/usr/share/gocode go build.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "ERROR: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	conflist := flag.String("conflist", "", "conflist file")
	cache := flag.String("cache", "", "libcni cache dir")
	path := flag.String("path", "/usr/lib/cni", "plugin dirs, colon separated (CNI_PATH)")
	netns := flag.String("netns", "", "CNI_NETNS")
	cid := flag.String("cid", "", "CNI_CONTAINERID")
	ifname := flag.String("ifname", "eth0", "CNI_IFNAME")
	args := flag.String("args", "", "CNI_ARGS as K=V;K=V")
	flag.Parse()
	if flag.NArg() != 1 || *conflist == "" || *cache == "" {
		fail("usage: libcni-harness -conflist F -cache D [-path P] [-netns N -cid C -ifname I -args A] validate|add|check|del")
	}
	list, err := libcni.ConfListFromFile(*conflist)
	if err != nil {
		fail("%v", err)
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(*path), *cache, nil)
	rt := &libcni.RuntimeConf{ContainerID: *cid, NetNS: *netns, IfName: *ifname, CacheDir: *cache}
	for _, kv := range strings.Split(*args, ";") {
		if p := strings.SplitN(kv, "=", 2); len(p) == 2 {
			rt.Args = append(rt.Args, [2]string{p[0], p[1]})
		}
	}
	ctx := context.Background()

	switch flag.Arg(0) {
	case "validate":
		caps, err := cni.ValidateNetworkList(ctx, list)
		if err != nil {
			fail("%v", err)
		}
		for _, p := range list.Plugins {
			info, err := cni.GetVersionInfo(ctx, p.Network.Type)
			if err != nil {
				fail("VERSION of %s: %v", p.Network.Type, err)
			}
			fmt.Printf("VERSION %s %s\n", p.Network.Type, strings.Join(info.SupportedVersions(), ","))
		}
		fmt.Printf("CAPS %s\n", strings.Join(caps, ","))
	case "add":
		res, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail("%v", err)
		}
		out, err := json.Marshal(res)
		if err != nil {
			fail("encoding the result: %v", err)
		}
		fmt.Println(string(out))
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail("%v", err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail("%v", err)
		}
	default:
		fail("unknown command %q (validate, add, check, del)", flag.Arg(0))
	}
}
