// Command etcd is the etcd server, built from the Go module proxy at the version
// pinned in this module's go.mod (go install of etcd fails on its replace directives).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
