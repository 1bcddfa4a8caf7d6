// Package caps shows, rather than asserts, that the node agent runs with
// exactly the Linux capabilities its DaemonSet grants and that each one is
// needed.
//
// Its tests read the capability list of the agent container from
// config/agent/daemonset.yaml, run the agent's own kernel tests with only
// those capabilities (bounding, permitted, effective, inheritable and
// ambient sets, through util-linux setpriv), then run agent scenarios (one
// dataplane lifecycle per hook kind, in a process holding a chosen set) with
// each capability removed and check what breaks and with which kernel error.
package caps

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

// AgentContainer is the name of the long-running container in the DaemonSet
// (the init container that mounts filesystems is privileged and not ours to
// confine).
const AgentContainer = "agent"

// AgentCapabilities reads a DaemonSet manifest and returns the capabilities
// added to its agent container, upper case without the CAP_ prefix (BPF,
// PERFMON, …), in manifest order. It fails unless the container drops ALL:
// anything else would make the added list a lower bound, not the grant.
func AgentCapabilities(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read daemonset: %w", err)
	}
	var ds appsv1.DaemonSet
	if err := yaml.UnmarshalStrict(raw, &ds); err != nil {
		return nil, fmt.Errorf("decode daemonset %s: %w", path, err)
	}
	for _, c := range ds.Spec.Template.Spec.Containers {
		if c.Name != AgentContainer {
			continue
		}
		sc := c.SecurityContext
		if sc == nil || sc.Capabilities == nil {
			return nil, fmt.Errorf("container %q of %s: no capabilities", c.Name, path)
		}
		if sc.Privileged != nil && *sc.Privileged {
			return nil, fmt.Errorf("container %q of %s is privileged", c.Name, path)
		}
		drop := make([]string, 0, len(sc.Capabilities.Drop))
		for _, d := range sc.Capabilities.Drop {
			drop = append(drop, strings.ToUpper(string(d)))
		}
		if !slices.Contains(drop, "ALL") {
			return nil, fmt.Errorf("container %q of %s does not drop ALL capabilities (drops %v)", c.Name, path, drop)
		}
		out := make([]string, 0, len(sc.Capabilities.Add))
		for _, a := range sc.Capabilities.Add {
			out = append(out, strings.TrimPrefix(strings.ToUpper(string(a)), "CAP_"))
		}
		return out, nil
	}
	return nil, fmt.Errorf("find container %q in %s: %w", AgentContainer, path, errNoContainer)
}

var errNoContainer = errors.New("no such container")

// SetprivArgs returns the setpriv arguments that run a command as root
// holding exactly caps in every capability set (bounding, inheritable,
// ambient, hence permitted and effective) with no_new_privs, as a container
// with allowPrivilegeEscalation: false does. The command follows "--".
func SetprivArgs(caps []string) []string {
	set := "-all"
	for _, c := range caps {
		set += ",+" + strings.ToLower(c)
	}
	return []string{
		"--reuid=0", "--regid=0", "--clear-groups",
		"--inh-caps=" + set, "--ambient-caps=" + set, "--bounding-set=" + set,
		"--no-new-privs", "--",
	}
}

// Without returns caps minus the ones named in drop.
func Without(caps []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(caps), func(c string) bool { return slices.Contains(drop, c) })
}
