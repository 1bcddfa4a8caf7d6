// Command cluster runs a real single-node Kubernetes cluster on this machine
// (test/support/cluster) until Ctrl-C, then tears it down: `make cluster`.
//
//	go run ./test/tools/cluster [-state-dir bin/cluster]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/bpfleet/bpfleet/test/support/cluster"
	"github.com/bpfleet/bpfleet/test/support/envtest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

func run() error {
	stateDir := flag.String("state-dir", "", "directory for the cluster's state (default bin/cluster)")
	flag.Parse()
	root, err := envtest.RepoRoot()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	began := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{RepoDir: root, StateDir: *stateDir, Out: os.Stdout})
	if err != nil {
		return err
	}
	fmt.Printf(`
A real node is up in %s: node %s (%s), registry %s (pods: %s).
Component logs: %s

  export KUBECONFIG=%s
  kubectl get nodes -o wide

Install bpfleet as README "Deploying on a cluster" shows. Ctrl-C tears everything down.
`, time.Since(began).Round(100*time.Millisecond), c.NodeName, c.NodeIP, c.RegistryHost, c.RegistryNodeHost,
		c.Logs(), filepath.Clean(c.Kubeconfig))
	<-ctx.Done()
	fmt.Println("\ntearing down ...")
	t := time.Now()
	if err := c.Stop(context.Background()); err != nil {
		return err
	}
	fmt.Printf("torn down in %s: no process, container, mount, cgroup, interface or changed sysctl left\n", time.Since(t).Round(100*time.Millisecond))
	return nil
}
