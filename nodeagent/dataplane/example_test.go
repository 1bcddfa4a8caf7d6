package dataplane_test

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/dataplane"
	"github.com/bpfleet/bpfleet/nodeagent/hookspec"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
)

// An agent opens the dataplane once, applies the node's full desired set on
// every change, and resyncs when interfaces come and go or a timer fires.
// (Needs root; not run by go test.)
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dp, err := dataplane.New(ctx, dataplane.Options{StateDir: "/var/lib/bpfleet"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer dp.Close() // never detaches: the pins keep the filter running

	b, _ := kernelprog.NewBundle("sha256:…", kernelprog.Object)
	desired := []dataplane.Desired{{
		Name: "pod-filter", UID: types.UID("0b7c…"), Digest: b.Digest, Bundle: b,
		// The agent's controller parses the BpfProgram's spec into hooks.
		Spec: hookspec.Spec(v1alpha1.BpfProgramSpec{
			Programs: []v1alpha1.ProgramAttachment{{Name: kernelprog.XDPFilter,
				XDP: &v1alpha1.XDPAttach{Interfaces: v1alpha1.InterfaceSelector{Names: []string{"veth*"}, Primary: true}}}},
			MapEntries: []v1alpha1.MapEntry{{Map: "deny", Key: "0f27", Value: "01"}}, // UDP 9999
		}, nil),
	}}
	for _, st := range dp.Apply(ctx, desired) {
		fmt.Println(st.AttachPoint, st.State, st.Reason, st.ID, st.LinkID)
	}
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-dp.Changes(): // an interface appeared or went away
		case <-tick.C: // heal drift
		case <-ctx.Done():
			return
		}
		dp.Resync(ctx)
	}
}
