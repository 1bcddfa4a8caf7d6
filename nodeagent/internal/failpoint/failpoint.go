//go:build failpoints

package failpoint

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
)

// FailpointEnv names the failpoint to trigger in a build with -tags
// failpoints, as NAME:ACTION, e.g. after-load:kill. The only action is kill:
// the process SIGKILLs itself at that point, with no deferred cleanup, like
// an OOM kill or a node losing power to the agent alone.
//
// Names, in the order a load passes them:
//
//	after-verify  the signature of a digest the node does not run is verified; nothing pulled
//	after-pull    the bundle is verified, pulled and cached; nothing loaded
//	after-load    maps and programs loaded, map entries written; nothing attached or swapped
//	after-attach  new links attached (first load) or running links updated to the new programs (upgrade); not pinned
//	after-pin     programs, maps and links pinned; no local record written
//	after-record  the local record written; status not reported yet
//
// Every failpoint after after-verify fires only once after-verify or
// after-pull has, so that an agent started with a failpoint re-adopts what
// runs without firing it and stops only in an apply that loads.
const FailpointEnv = "BPFLEET_FAILPOINT"

var failpoints struct {
	sync.Mutex
	loading bool
}

// Inject stops the process at name when FailpointEnv asks for it.
func Inject(name string) {
	spec := os.Getenv(FailpointEnv)
	want, action, _ := strings.Cut(spec, ":")
	failpoints.Lock()
	defer failpoints.Unlock()
	if name == "after-verify" || name == "after-pull" {
		failpoints.loading = true
	}
	if spec == "" || want != name || !failpoints.loading {
		return
	}
	switch action {
	case "kill":
		fmt.Fprintf(os.Stderr, "bpfleet failpoint %s: SIGKILL\n", name)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	default:
		fmt.Fprintf(os.Stderr, "bpfleet failpoint %s: unknown action %q ignored\n", name, action)
	}
}
