package attach_test

import (
	"testing"

	"github.com/bpfleet/bpfleet/nodeagent/attach"
)

func TestUpdatable(t *testing.T) {
	for k, want := range map[attach.Kind]bool{attach.KindXDP: true, attach.KindTCX: true, attach.KindCgroup: true,
		attach.KindTracepoint: false, attach.KindUprobe: false, attach.KindRawTP: false, attach.KindFentry: false} {
		if attach.Updatable(k) != want {
			t.Errorf("%s.Updatable() = %v", k, !want)
		}
	}
}
