package cluster

import (
	"fmt"
	"os"
	"path/filepath"
)

// The files each component reads, written from the cluster's layout. Each
// setting that is not a default says why it is there.

func (c *Cluster) writeContainerdConfig() (string, error) {
	d := c.dirs
	hosts := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true\n",
		"http://"+c.RegistryHost, "http://"+c.RegistryHost)
	hostsDir := filepath.Join(d.containerd, "certs.d", c.RegistryHost)
	if err := os.MkdirAll(hostsDir, 0o755); err != nil {
		return "", fmt.Errorf("create registry hosts dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(hostsDir, "hosts.toml"), []byte(hosts), 0o644); err != nil {
		return "", fmt.Errorf("write registry hosts: %w", err)
	}
	cfg := fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = %[5]q
    [plugins.'io.containerd.cri.v1.images'.registry]
      # The harness's registry serves plain HTTP (hosts.toml).
      config_path = %[6]q

  [plugins.'io.containerd.cri.v1.runtime']
    # CAP_SYS_RESOURCE is not in this machine's bounding set: without this
    # every sandbox fails to lower its oom_score_adj.
    restrict_oom_score_adj = true
    # Network namespaces of pods live under the state dir, so teardown and
    # crash clean-up find them there.
    netns_mounts_under_state_dir = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = %[7]q
          Root = %[8]q
          # No systemd here: cgroupfs, as the kubelet.
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = [%[9]q]
      conf_dir = %[10]q

  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'

  [plugins.'io.containerd.nri.v1.nri']
    disable = true

  [plugins.'io.containerd.internal.v1.opt']
    # Not /opt/containerd: nothing outside the state dir.
    path = %[11]q
`, filepath.Join(d.containerd, "root"), filepath.Join(d.containerd, "state"), c.ContainerdSocket, c.ContainerdSocket+".ttrpc",
		c.SandboxImage, filepath.Join(d.containerd, "certs.d"), filepath.Join(c.opts.NodeBinDir, "runc"),
		filepath.Join(d.containerd, "runc"), filepath.Join(c.opts.NodeBinDir, "cni"), d.cniConf, filepath.Join(d.containerd, "opt"))
	path := filepath.Join(d.containerd, "config.toml")
	return path, writeFile(path, cfg)
}

func (c *Cluster) writeCNIConfig() error {
	conf := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %q
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, cniNetwork, c.opts.Bridge, c.opts.PodCIDR, filepath.Join(c.dirs.state, "cni", "ipam"))
	if err := os.MkdirAll(c.dirs.cniConf, 0o755); err != nil {
		return fmt.Errorf("create CNI conf dir: %w", err)
	}
	return writeFile(filepath.Join(c.dirs.cniConf, "10-bpfleet-test.conflist"), conf)
}

func (c *Cluster) writeKubeletConfig() (string, error) {
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1 controllers and no systemd.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://%[1]s
address: %[2]s
port: %[3]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[4]d
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[5]q}
authorization:
  mode: Webhook
tlsCertFile: %[6]q
tlsPrivateKeyFile: %[7]q
podLogsDir: %[8]q
volumePluginDir: %[9]q
failSwapOn: false
# The disk is shared with builds and other tests: never evict or collect
# images because of it.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
makeIPTablesUtilChains: false
resolvConf: /etc/resolv.conf
clusterDomain: cluster.local
maxPods: 110
syncFrequency: 10s
fileCheckFrequency: 10s
nodeStatusUpdateFrequency: 5s
`, c.ContainerdSocket, c.NodeIP, kubeletPort, c.opts.Ports.KubeletHealthz, c.pki.path("ca.crt"),
		c.pki.path("kubelet-serving.crt"), c.pki.path("kubelet-serving.key"), filepath.Join(c.dirs.state, "pod-logs"),
		filepath.Join(c.dirs.state, "volume-plugins"))
	path := filepath.Join(c.dirs.state, "kubelet-config.yaml")
	return path, writeFile(path, cfg)
}

func (c *Cluster) writeProxyConfig(kubeconfig string) (string, error) {
	cfg := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {kubeconfig: %[1]q}
hostnameOverride: %[2]s
bindAddress: %[3]s
clusterCIDR: %[4]s
healthzBindAddress: 127.0.0.1:%[5]d
metricsBindAddress: 127.0.0.1:%[6]d
# Zero leaves the host's conntrack sysctls alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
nodePortAddresses: [%[3]s/32]
`, kubeconfig, c.NodeName, c.NodeIP, c.opts.PodCIDR, c.opts.Ports.ProxyHealthz, c.opts.Ports.ProxyMetrics)
	path := filepath.Join(c.dirs.state, "kube-proxy-config.yaml")
	return path, writeFile(path, cfg)
}

func writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}
