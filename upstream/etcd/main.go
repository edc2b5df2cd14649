// Command etcd is etcd's own main (etcdmain), built from the pinned go.etcd.io/etcd/server/v3
// module: the server module has no main package of its own to `go build`.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
