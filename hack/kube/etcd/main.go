// Command etcd is etcd's own server main (server/main.go), built from the
// published module so the test cluster pins etcd by version.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
