package localenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/bpfleet/bpfleet/api/scheme"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/cmd/localenv/internal/registrystore"
	"github.com/bpfleet/bpfleet/cmd/localenv/orphans"
)

func (e *Env) startControlPlane(ctx context.Context) error {
	assets := filepath.Join(e.opts.RepoDir, "bin", "k8s")
	cp := &crenvtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(e.opts.RepoDir, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme.New(),
	}
	// etcd keeps its data in the state dir (fresh at every start, removed
	// at Stop), so that RestartEtcd can stop it and start it again with the
	// cluster's state, as a real etcd restart would.
	etcdDir := filepath.Join(e.opts.StateDir, "etcd")
	if err := os.RemoveAll(etcdDir); err != nil {
		return fmt.Errorf("remove old etcd data: %w", err)
	}
	if err := os.MkdirAll(etcdDir, 0o700); err != nil {
		return fmt.Errorf("create etcd data dir: %w", err)
	}
	cp.ControlPlane.Etcd = &crenvtest.Etcd{DataDir: etcdDir}
	api := cp.ControlPlane.GetAPIServer()
	api.SecureServing.ListenAddr.Address = "127.0.0.1"
	api.SecureServing.ListenAddr.Port = strconv.Itoa(e.opts.APIPort)
	api.Configure().
		Set("advertise-address", "127.0.0.1").
		Set("endpoint-reconciler-type", "none")
	cfg, err := cp.Start()
	if err != nil {
		return fmt.Errorf("start control plane: %w", err)
	}
	e.cp = cp
	if err := e.recordChildren(); err != nil {
		_ = cp.Stop()
		return err
	}
	e.onStop(func(context.Context) error {
		err := cp.Stop()
		return errors.Join(err, os.RemoveAll(etcdDir), os.Remove(e.pidFile()))
	})
	e.Config = cfg
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	e.Client = c

	user, err := cp.ControlPlane.AddUser(crenvtest.User{Name: "bpfleet-local-admin", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		return fmt.Errorf("add admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("render kubeconfig: %w", err)
	}
	e.Kubeconfig = filepath.Join(e.opts.StateDir, "kubeconfig")
	if err := os.WriteFile(e.Kubeconfig, kc, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	e.Printf("apiserver https://127.0.0.1:%d, kubeconfig %s", e.opts.APIPort, e.Kubeconfig)
	return nil
}

// RestartEtcd stops etcd (SIGTERM, as a restarted etcd pod), waits for
// down, and starts it again on the same address with the same data. The
// apiserver answers errors meanwhile and reconnects on its own.
func (e *Env) RestartEtcd(down time.Duration) error {
	etcd := e.cp.ControlPlane.Etcd
	if err := etcd.Stop(); err != nil {
		return fmt.Errorf("stop etcd: %w", err)
	}
	time.Sleep(down)
	if err := etcd.Start(); err != nil {
		return fmt.Errorf("start etcd again: %w", err)
	}
	return e.recordChildren()
}

// pidFile records the processes this run started (etcd, kube-apiserver),
// so that the next run on the same state dir stops them if this one is
// killed before its Stop: they would hold the ports and the etcd data.
func (e *Env) pidFile() string { return filepath.Join(e.opts.StateDir, "pids") }

func (e *Env) recordChildren() error {
	kids, err := orphans.Children(os.Getpid())
	if err != nil {
		return err
	}
	return orphans.Record(e.pidFile(), kids...)
}

// startRegistry serves a real OCI distribution API on 127.0.0.1 with all of
// its data under <state dir>/registry: blobs as files, manifests and tags in
// a journal replayed at start. Stop leaves the directory alone, so pushed
// bundles, their signatures and referrers survive a restart of bpfleet-local
// (after Ctrl-C or a crash) on the same state dir, as the cosign key does.
func (e *Env) startRegistry(ctx context.Context) error {
	e.RemoteOptions = remote.Options{Timeout: 30 * time.Second}
	if e.opts.Registry != "" {
		e.Registry = e.opts.Registry
		e.Printf("registry http://%s (given, not started here)", e.Registry)
		return nil
	}
	dir := filepath.Join(e.opts.StateDir, "registry")
	reg, err := registrystore.Open(dir)
	if err != nil {
		return fmt.Errorf("open registry data (remove %s to start empty): %w", dir, err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", e.opts.RegistryPort)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return errors.Join(fmt.Errorf("listen on %s: %w", addr, err), reg.Close())
	}
	srv := &http.Server{Handler: reg, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	e.onStop(func(ctx context.Context) error { return errors.Join(srv.Shutdown(ctx), reg.Close()) })
	e.Registry = addr
	e.Printf("registry http://%s (data in %s, %d manifest writes restored)", addr, dir, reg.Restored)
	if reg.TornBytes > 0 {
		e.Printf("registry journal: dropped a torn last record (%d bytes) left by a crash", reg.TornBytes)
	}
	return nil
}
