package benchprogs

import (
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/test/support/frame"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

func TestVerdicts(t *testing.T) {
	privileged.RequireRoot(t)
	progs, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	defer progs.Close()
	in := frame.Build(frame.Spec{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), Protocol: frame.ProtocolUDP})
	tests := []struct {
		name string
		prog *ebpf.Program
		want uint32 // XDP action
	}{
		{name: "pass", prog: progs.Pass, want: 2},
		{name: "tx", prog: progs.TX, want: 3},
		{name: "drop", prog: progs.Drop, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.prog.Run(&ebpf.RunOptions{Data: in})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("verdict %d, want %d", got, tt.want)
			}
		})
	}
}
