// Package cluster runs a real single-node Kubernetes cluster on this machine
// for tests and for `make cluster`: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, a kubelet on containerd and runc
// with the bridge CNI plugin, and kube-proxy, every one built from the Go
// module proxy (test/tools/build-control-plane.sh, build-node.sh), plus an
// OCI registry the node pulls images from. Nothing is simulated: pods are
// real containers, service-account tokens are the kubelet's.
//
// The node's address lives on an interface of its own and pods on a bridge, both
// in 198.19.0.0/16 (RFC 2544 benchmarking space), so nothing routes off the
// machine. Start cleans up what a killed run left; Stop leaves no process,
// container, mount, cgroup, interface, netfilter table or changed sysctl.
package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	cniNetwork  = "bpfleet-test"
	kubeletPort = 10250
)

// Ports are the TCP ports the components listen on.
type Ports struct {
	APIServer, Etcd, EtcdPeer, Registry          int
	ControllerManager, Scheduler, KubeletHealthz int
	ProxyHealthz, ProxyMetrics                   int
}

// Options configure a cluster; zero values take the defaults.
type Options struct {
	// RepoDir is the bpfleet checkout (bin/k8s, bin/node are below it).
	RepoDir string
	// StateDir holds everything the cluster writes; default
	// <RepoDir>/bin/cluster. It is emptied at Start.
	StateDir string
	// K8sBinDir holds etcd, kube-apiserver and kubectl; default bin/k8s.
	K8sBinDir string
	// NodeBinDir holds the node's binaries; default bin/node.
	NodeBinDir string
	// NodeName registers the kubelet; default bpfleet-real-1.
	NodeName string
	// NodeAddr is the node's address, on an interface NodeInterface (a veth);
	// default 198.19.0.1 on bpfleet-node0.
	NodeAddr      string
	NodeInterface string
	// PodCIDR is the bridge's range (default 198.19.1.0/24), ServiceCIDR
	// the services' (default 198.19.2.0/24), Bridge its name (bpfleet-br0).
	PodCIDR, ServiceCIDR, Bridge string
	Ports                        Ports
	// Out receives progress lines; nil discards them.
	Out io.Writer
}

func (o *Options) defaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.StateDir, filepath.Join(o.RepoDir, "bin", "cluster"))
	def(&o.K8sBinDir, filepath.Join(o.RepoDir, "bin", "k8s"))
	def(&o.NodeBinDir, filepath.Join(o.RepoDir, "bin", "node"))
	def(&o.NodeName, "bpfleet-real-1")
	def(&o.NodeAddr, "198.19.0.1")
	def(&o.NodeInterface, "bpfleet-node0")
	def(&o.PodCIDR, "198.19.1.0/24")
	def(&o.ServiceCIDR, "198.19.2.0/24")
	def(&o.Bridge, "bpfleet-br0")
	port := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	port(&o.Ports.APIServer, 16443)
	port(&o.Ports.Etcd, 12379)
	port(&o.Ports.EtcdPeer, 12380)
	port(&o.Ports.Registry, 15000)
	port(&o.Ports.ControllerManager, 10257)
	port(&o.Ports.Scheduler, 10259)
	port(&o.Ports.KubeletHealthz, 10248)
	port(&o.Ports.ProxyHealthz, 10256)
	port(&o.Ports.ProxyMetrics, 10249)
	if o.Out == nil {
		o.Out = io.Discard
	}
}

type dirs struct {
	state, logs, containerd, kubelet, cniConf, pki string
	pidFile, hostState                             string
}

// Cluster is a running cluster.
type Cluster struct {
	// Kubeconfig is an admin (system:masters) kubeconfig; Config the same.
	Kubeconfig string
	Config     *rest.Config
	Clientset  kubernetes.Interface
	// NodeName and NodeIP are the node's.
	NodeName, NodeIP string
	// RegistryHost is the registry on loopback (127.0.0.1:PORT), for
	// pushes and for containerd; RegistryNodeHost the same registry on the
	// node's address, which pods reach.
	RegistryHost, RegistryNodeHost string
	// ContainerdSocket is containerd's gRPC socket.
	ContainerdSocket string
	// SandboxImage and WorkloadImage are images the harness built and
	// pushed: a pause program, and busybox (Debian's busybox-static).
	SandboxImage, WorkloadImage string
	// Timings of the bring-up's milestones, since Start began.
	Timings []Timing

	opts     Options
	dirs     dirs
	pki      *pki
	procs    []*proc
	registry *http.Server
	// hostLock is held from Start to Stop (lockHost).
	hostLock *os.File
	kubelet  *proc
	before   hostState
}

// Timing is one bring-up milestone.
type Timing struct {
	Name  string
	Since time.Duration
}

// Start cleans up what an earlier run left, then brings the cluster up and
// waits until the node is Ready and the default ServiceAccount exists. On
// error everything started is stopped and cleaned.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	opts.defaults()
	st, err := filepath.Abs(opts.StateDir)
	if err != nil {
		return nil, fmt.Errorf("resolve state dir: %w", err)
	}
	c := &Cluster{opts: opts, NodeName: opts.NodeName, NodeIP: opts.NodeAddr}
	c.dirs = dirs{
		state: st, logs: filepath.Join(st, "logs"), containerd: filepath.Join(st, "containerd"),
		kubelet: filepath.Join(st, "kubelet"), cniConf: filepath.Join(st, "cni", "net.d"), pki: filepath.Join(st, "pki"),
		// Outside the state dir's tree that Start empties.
		pidFile: st + ".pids", hostState: st + ".host.json",
	}
	if c.hostLock, err = lockHost(ctx, hostLockPath, opts.Out); err != nil {
		return nil, err
	}
	c.ContainerdSocket = filepath.Join(c.dirs.containerd, "containerd.sock")
	c.RegistryHost = fmt.Sprintf("127.0.0.1:%d", opts.Ports.Registry)
	c.RegistryNodeHost = net.JoinHostPort(opts.NodeAddr, strconv.Itoa(opts.Ports.Registry))
	c.SandboxImage = c.RegistryHost + "/bpfleet-test/pause:1"
	c.WorkloadImage = c.RegistryHost + "/bpfleet-test/busybox:1"
	began := time.Now()
	defer func() {
		if err != nil {
			if serr := c.Stop(context.Background()); serr != nil {
				err = errors.Join(err, serr)
			}
		}
	}()
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"check prerequisites", c.preflight},
		{"clean up what an earlier run left", func(context.Context) error {
			return errors.Join(c.cleanHost(), os.RemoveAll(c.dirs.state))
		}},
		{"prepare the host: save sysctls, shared bpffs/tracefs, node address", c.prepareHost},
		{"start etcd and kube-apiserver", c.startAPIServer},
		{"start kube-controller-manager and kube-scheduler", c.startControllers},
		{"start the registry, push the pause and busybox images", c.startRegistry},
		{"start containerd", c.startContainerd},
		{"start the kubelet and wait for the node to be Ready", c.startKubelet},
		{"start kube-proxy and wait for the default ServiceAccount", c.startProxy},
	}
	for i, s := range steps {
		fmt.Fprintf(opts.Out, "[%d/%d] %s ...\n", i+1, len(steps), s.name)
		t := time.Now()
		if err := s.fn(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		c.Timings = append(c.Timings, Timing{Name: s.name, Since: time.Since(began)})
		fmt.Fprintf(opts.Out, "      done in %s\n", time.Since(t).Round(10*time.Millisecond))
	}
	return c, nil
}

// Stop stops every component (kubelet first, so it stops no pod on its way
// out), removes the pods' containers, and restores the host.
func (c *Cluster) Stop(ctx context.Context) error {
	var errs []error
	if c.registry != nil {
		errs = append(errs, c.registry.Shutdown(ctx))
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		if err := c.procs[i].stop(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	c.procs = nil
	errs = append(errs, c.cleanHost(), os.RemoveAll(c.dirs.state))
	if c.hostLock != nil {
		errs = append(errs, c.hostLock.Close())
		c.hostLock = nil
	}
	return errors.Join(errs...)
}

// Logs is the directory of the components' logs.
func (c *Cluster) Logs() string { return c.dirs.logs }

func (c *Cluster) bin(dir, name string) string { return filepath.Join(dir, name) }

func (c *Cluster) preflight(context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("a real node needs root: the kubelet, containerd and runc manage cgroups, mounts and network namespaces")
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kubectl"} {
		if _, err := os.Stat(c.bin(c.opts.K8sBinDir, b)); err != nil {
			return fmt.Errorf("find %s (run `make tools`): %w", b, err)
		}
	}
	for _, b := range []string{"kubelet", "kube-controller-manager", "kube-scheduler", "kube-proxy", "containerd", "containerd-shim-runc-v2", "runc", "cni/bridge", "cni/host-local", "cni/portmap"} {
		if _, err := os.Stat(c.bin(c.opts.NodeBinDir, b)); err != nil {
			return fmt.Errorf("find %s (run `make node-tools`): %w", b, err)
		}
	}
	for _, cmd := range []string{"ip", "nft", "iptables", "busybox"} {
		if _, err := exec.LookPath(cmd); err != nil {
			return fmt.Errorf("find %s (apt-get install iproute2 nftables iptables busybox-static): %w", cmd, err)
		}
	}
	return nil
}

func (c *Cluster) prepareHost(context.Context) error {
	if err := c.saveHostState(); err != nil {
		return err
	}
	for _, d := range []string{c.dirs.state, c.dirs.logs, c.dirs.containerd, c.dirs.kubelet, c.dirs.cniConf} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	for _, args := range [][]string{
		// A veth pair (this kernel has no dummy interfaces); deleting one
		// end removes both.
		{"link", "add", c.opts.NodeInterface, "type", "veth", "peer", "name", c.opts.NodeInterface + "p"},
		{"addr", "add", c.opts.NodeAddr + "/32", "dev", c.opts.NodeInterface},
		{"link", "set", c.opts.NodeInterface, "up"},
		{"link", "set", c.opts.NodeInterface + "p", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %v: %w: %s", args, err, out)
		}
	}
	return nil
}

func (c *Cluster) startAPIServer(ctx context.Context) error {
	p, err := newPKI(c.dirs.pki)
	if err != nil {
		return err
	}
	c.pki = p
	apiIP, err := firstIP(c.opts.ServiceCIDR)
	if err != nil {
		return err
	}
	if err := p.issue("apiserver", "kube-apiserver", nil, c.NodeIP, "127.0.0.1", apiIP, "localhost",
		"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"); err != nil {
		return err
	}
	if err := p.issue("kubelet-serving", "system:node:"+c.NodeName, []string{"system:nodes"}, c.NodeIP, c.NodeName); err != nil {
		return err
	}
	if err := p.issue(idKubeletClient.file, idKubeletClient.user, idKubeletClient.groups); err != nil {
		return err
	}
	if err := p.serviceAccountKeys(); err != nil {
		return err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", c.opts.Ports.Etcd)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", c.opts.Ports.EtcdPeer)
	etcd, err := c.start("etcd", c.bin(c.opts.K8sBinDir, "etcd"),
		"--data-dir", filepath.Join(c.dirs.state, "etcd"), "--name", "default",
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "default="+peerURL, "--unsafe-no-fsync", "--log-level", "warn")
	if err != nil {
		return err
	}
	if err := waitFor(ctx, etcd, 30*time.Second, "etcd", httpOK(etcdURL+"/health", nil)); err != nil {
		return err
	}
	issuer := "https://kubernetes.default.svc.cluster.local"
	api, err := c.start("kube-apiserver", c.bin(c.opts.K8sBinDir, "kube-apiserver"),
		"--etcd-servers", etcdURL,
		"--bind-address", c.NodeIP, "--advertise-address", c.NodeIP,
		"--secure-port", strconv.Itoa(c.opts.Ports.APIServer),
		"--service-cluster-ip-range", c.opts.ServiceCIDR,
		"--client-ca-file", p.path("ca.crt"),
		"--tls-cert-file", p.path("apiserver.crt"), "--tls-private-key-file", p.path("apiserver.key"),
		"--kubelet-client-certificate", p.path(idKubeletClient.file+".crt"),
		"--kubelet-client-key", p.path(idKubeletClient.file+".key"),
		"--kubelet-preferred-address-types", "InternalIP",
		"--service-account-key-file", p.path("sa.pub"),
		"--service-account-signing-key-file", p.path("sa.key"),
		"--service-account-issuer", issuer, "--api-audiences", issuer,
		"--authorization-mode", "Node,RBAC",
		"--enable-admission-plugins", "NodeRestriction",
		"--allow-privileged=true",
		"--profiling=false", "--v=1")
	if err != nil {
		return err
	}
	server := fmt.Sprintf("https://%s", net.JoinHostPort(c.NodeIP, strconv.Itoa(c.opts.Ports.APIServer)))
	if c.Kubeconfig, err = p.kubeconfig(idAdmin, server); err != nil {
		return err
	}
	if c.Config, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig); err != nil {
		return fmt.Errorf("load admin kubeconfig: %w", err)
	}
	c.Config.QPS, c.Config.Burst = 100, 200
	if c.Clientset, err = kubernetes.NewForConfig(c.Config); err != nil {
		return fmt.Errorf("create clientset: %w", err)
	}
	return waitFor(ctx, api, 60*time.Second, "kube-apiserver", func() error {
		body, err := c.Clientset.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return fmt.Errorf("readyz: %w: %s", err, body)
		}
		return nil
	})
}

func (c *Cluster) server() string {
	return fmt.Sprintf("https://%s", net.JoinHostPort(c.NodeIP, strconv.Itoa(c.opts.Ports.APIServer)))
}

func (c *Cluster) startControllers(ctx context.Context) error {
	p := c.pki
	kcmConfig, err := p.kubeconfig(idController, c.server())
	if err != nil {
		return err
	}
	kcm, err := c.start("kube-controller-manager", c.bin(c.opts.NodeBinDir, "kube-controller-manager"),
		"--kubeconfig", kcmConfig, "--authentication-kubeconfig", kcmConfig, "--authorization-kubeconfig", kcmConfig,
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(c.opts.Ports.ControllerManager),
		"--use-service-account-credentials",
		"--service-account-private-key-file", p.path("sa.key"),
		"--root-ca-file", p.path("ca.crt"),
		"--cluster-signing-cert-file", p.path("ca.crt"), "--cluster-signing-key-file", p.path("ca.key"),
		"--flex-volume-plugin-dir", filepath.Join(c.dirs.state, "volume-plugins"),
		"--controllers", "*", "--leader-elect=false", "--profiling=false", "--v=1")
	if err != nil {
		return err
	}
	schedConfig, err := p.kubeconfig(idScheduler, c.server())
	if err != nil {
		return err
	}
	sched, err := c.start("kube-scheduler", c.bin(c.opts.NodeBinDir, "kube-scheduler"),
		"--kubeconfig", schedConfig, "--authentication-kubeconfig", schedConfig, "--authorization-kubeconfig", schedConfig,
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(c.opts.Ports.Scheduler),
		"--leader-elect=false", "--profiling=false", "--v=1")
	if err != nil {
		return err
	}
	insecure := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // #nosec G402 -- loopback health check of a self-signed serving cert
	if err := waitFor(ctx, kcm, 60*time.Second, "kube-controller-manager", httpOK(fmt.Sprintf("https://127.0.0.1:%d/healthz", c.opts.Ports.ControllerManager), insecure)); err != nil {
		return err
	}
	return waitFor(ctx, sched, 60*time.Second, "kube-scheduler", httpOK(fmt.Sprintf("https://127.0.0.1:%d/healthz", c.opts.Ports.Scheduler), insecure))
}

func (c *Cluster) startContainerd(ctx context.Context) error {
	if err := c.writeCNIConfig(); err != nil {
		return err
	}
	cfg, err := c.writeContainerdConfig()
	if err != nil {
		return err
	}
	p, err := c.start("containerd", c.bin(c.opts.NodeBinDir, "containerd"), "--config", cfg)
	if err != nil {
		return err
	}
	return waitFor(ctx, p, 30*time.Second, "containerd", func() error {
		_, err := c.Ctr(ctx, "version")
		return err
	})
}

// Ctr runs ctr against this cluster's containerd in the kubelet's
// namespace (k8s.io).
func (c *Cluster) Ctr(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.bin(c.opts.NodeBinDir, "ctr"),
		append([]string{"--address", c.ContainerdSocket, "--namespace", "k8s.io"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %v: %w: %s", args, err, out)
	}
	return string(out), nil
}

func (c *Cluster) startKubelet(ctx context.Context) error {
	kc, err := c.pki.kubeconfig(nodeIdentity(c.NodeName), c.server())
	if err != nil {
		return err
	}
	cfg, err := c.writeKubeletConfig()
	if err != nil {
		return err
	}
	c.kubelet, err = c.start("kubelet", c.bin(c.opts.NodeBinDir, "kubelet"),
		"--config", cfg, "--kubeconfig", kc, "--root-dir", c.dirs.kubelet,
		"--hostname-override", c.NodeName, "--node-ip", c.NodeIP, "--v=1")
	if err != nil {
		return err
	}
	return waitFor(ctx, c.kubelet, 90*time.Second, "node "+c.NodeName+" Ready", func() error {
		n, err := c.Clientset.CoreV1().Nodes().Get(ctx, c.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				if cond.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("condition Ready is %s: %s", cond.Status, cond.Message)
			}
		}
		return errors.New("no Ready condition yet")
	})
}

func (c *Cluster) startProxy(ctx context.Context) error {
	kc, err := c.pki.kubeconfig(idProxy, c.server())
	if err != nil {
		return err
	}
	cfg, err := c.writeProxyConfig(kc)
	if err != nil {
		return err
	}
	p, err := c.start("kube-proxy", c.bin(c.opts.NodeBinDir, "kube-proxy"), "--config", cfg, "--v=1")
	if err != nil {
		return err
	}
	if err := waitFor(ctx, p, 60*time.Second, "kube-proxy", httpOK(fmt.Sprintf("http://127.0.0.1:%d/healthz", c.opts.Ports.ProxyHealthz), nil)); err != nil {
		return err
	}
	return waitFor(ctx, nil, 60*time.Second, "the default ServiceAccount", func() error {
		_, err := c.Clientset.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}

// Kubectl runs kubectl as cluster admin and returns its stdout; on failure
// the error carries stderr.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	return c.KubectlAs(ctx, c.Kubeconfig, args...)
}

// KubectlAs runs kubectl with another kubeconfig.
func (c *Cluster) KubectlAs(ctx context.Context, kubeconfig string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin(c.opts.K8sBinDir, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %v: %w: %s", args, err, stderr.String())
	}
	return string(out), nil
}

func firstIP(cidr string) (string, error) {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", cidr, err)
	}
	ip := n.IP.To4()
	if ip == nil {
		return "", fmt.Errorf("parse %s: only IPv4 service ranges", cidr)
	}
	ip = append(net.IP(nil), ip...)
	ip[3]++
	return ip.String(), nil
}

func httpOK(url string, client *http.Client) func() error {
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Second}
	}
	return func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	}
}

// KubectlPath is the kubectl built with the control plane.
func (c *Cluster) KubectlPath() string { return c.bin(c.opts.K8sBinDir, "kubectl") }
