// Package scale simulates a bpfleet fleet on one machine to measure API
// load and convergence: N node agents (the real controller.Reconciler, one
// controller-runtime manager each, scoped with controller.CacheOptions) run
// as goroutines against one real envtest API server, with the real operator,
// a real loopback OCI registry, real cosign signatures and trust policies,
// and one shared bundle cache — but a simulated kernel (package simkernel).
//
// The tests live in scale_test.go. The normal run uses 50 nodes and checks
// behaviour only; the full measurement is
//
//	go test ./test/scale -run TestFleet -timeout 60m -v -args \
//	    -scale.nodes=1000 -scale.programs=100 -scale.idle=2m -scale.report=bin/scale.md
//
// which writes a Markdown table of the figures (API requests per node per
// rollout from the API server's own /metrics, convergence percentiles from
// wall clocks, API server, etcd and test-process CPU and memory).
package scale
