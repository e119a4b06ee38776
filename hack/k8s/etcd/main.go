// etcd at the version k8s.io/kubernetes itself requires (go.etcd.io/etcd/server/v3), built as `etcd`.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
