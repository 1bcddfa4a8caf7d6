// Package faults breaks bpfleet on purpose and checks that nothing running is
// ever lost: the agent SIGKILLed at every phase of a load and of an upgrade
// (failpoints of nodeagent/dataplane, built with -tags failpoints), registry
// outages and 500s, a corrupted node cache, a wiped bpffs subtree (reboot),
// interfaces flapping, two agents for one node, the operator killed
// mid-rollout. The environment is cmd/localenv's, started once for the
// package with its own prefix and ports; traffic streams of good packets and
// packets of death count what the filter let through during each fault.
//
// The tests need root and the control plane in bin/k8s (make tools): without
// them they skip locally and fail under CI=true.
package faults
