// Package scale simulates a bpfleet fleet on one machine to measure API
// load and convergence: N node agents (the real controller.Reconciler, one
// controller-runtime manager each, scoped with controller.CacheOptions) run
// as goroutines against one real envtest API server, with the real operator,
// a real loopback OCI registry, real cosign signatures and trust policies,
// and one shared bundle cache — but a simulated kernel (package simkernel).
//
// The tests live in scale_test.go. The normal run (go test ./test/scale)
// uses 50 nodes and 5 programs, takes about a minute, and checks behaviour
// only: every node converges, the halted rollout rolls back, nothing is
// written while idle. The full measurement is
//
//	go test ./test/scale -run TestFleet -timeout 60m -v -args \
//	    -scale.nodes=1000 -scale.programs=10 -scale.idle=2m -scale.report=bin/scale.md
//
// which writes a Markdown table of the figures (API requests per node per
// rollout from the API server's own /metrics, convergence percentiles from
// wall clocks, API server, etcd and test-process CPU and memory, and an
// extrapolation to 5,000 nodes). With -scale.programs=100 at 1,000 nodes the
// steady-state scenario does not converge on a 2-core machine (the API
// server saturates on BpfNodeState status updates); see the report.
//
// Each simulated agent runs in its own controller-runtime manager with the
// node-scoped cache of controller.CacheOptions (its Node and BpfNodeState
// by name, every BpfProgramTarget and BundleTrustPolicy) and talks to the API
// server as a service account bound to the agent's generated ClusterRole, so
// the API server holds four watches per node and classifies agent requests
// like a DaemonSet's. What the simulated nodes share, unlike real nodes, is
// one bundle cache and one signature memo (node-local work a real fleet
// does on every machine in parallel) and this process's two cores.
//
// One manager per node costs ~2.4 MiB of this process and ~0.85 MiB of API
// server per node, so 5,000 nodes do not fit on a 24 GiB machine. The
// shared-informer mode (-scale.shared, shared_test.go) runs the same
// reconcilers differently: each node keeps its own cache of what
// controller.CacheOptions scopes to it (its Node, BpfNodeState and Pods:
// three watches per node), its own client, rate limiter, controller, event
// broadcaster and ticker; the cluster-wide kinds (every kind CacheOptions
// does not scope: BpfPrograms, BundleTrustPolicies, Namespaces) come from
// one cache for the whole process, and -scale.group nodes (100) share a
// manager (each keeps its own HTTP connection: the API server serves 100
// streams per connection). The API server then sends each
// cluster-wide event once instead of once per node: TestApplyUpgrade
// reports the events one manager per node would add, and SCALE.md adds
// their CPU back from the per-node cost measured in the default mode.
// Issue 21 item 3 (apply one program to 5,000 nodes, then upgrade it in
// two waves) is
//
//	make bench-5k           # -scale.shared -scale.nodes=5000, bin/fivek.md
//	make bench-5k-pernode   # one manager per node, 1,000 nodes, bin/fivek-pernode.md
//
// (SCALE_NODES=N changes the size of either). Without -scale.upgrade,
// TestApplyUpgrade is a 10-node smoke run of the shared mode.
package scale
