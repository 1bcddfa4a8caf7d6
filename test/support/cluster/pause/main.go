// Command pause is the test cluster's sandbox image: it holds a pod's
// namespaces open and exits on SIGTERM or SIGINT, as registry.k8s.io/pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
