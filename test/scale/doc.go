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
package scale
