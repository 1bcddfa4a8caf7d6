package dataplane

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/internal/loader"
)

func TestReasonFor(t *testing.T) {
	verifier := &ebpf.VerifierError{Cause: syscall.EACCES, Log: []string{"R1 invalid mem access 'scalar'"}}
	for _, tc := range []struct {
		name string
		err  error
		// want is the reason with default "Default".
		want string
	}{
		{"hold with reason", Hold(v1alpha1.ReasonPullFailed, errors.New("registry down")), v1alpha1.ReasonPullFailed},
		{"verifier log", withReason(v1alpha1.ReasonLoadFailed, fmt.Errorf("load: %w", verifier)), v1alpha1.ReasonVerifierRejected},
		{"refused before the verifier ran", withReason(v1alpha1.ReasonLoadFailed, &ebpf.VerifierError{Cause: syscall.EPERM}), v1alpha1.ReasonLoadFailed},
		{"tracing refused", loadError(&ebpf.ProgramSpec{Type: ebpf.Tracing}, &ebpf.VerifierError{Cause: syscall.EPERM}), v1alpha1.ReasonNotSupported},
		{"xdp EPERM is not 'not supported'", loadError(&ebpf.ProgramSpec{Type: ebpf.XDP}, syscall.EPERM), v1alpha1.ReasonLoadFailed},
		{"constant", fmt.Errorf("x: %w", loader.ErrInvalidConstant), v1alpha1.ReasonInvalidConstant},
		{"map entry", fmt.Errorf("x: %w", loader.ErrInvalidMapEntry), v1alpha1.ReasonMapUpdateFailed},
		{"program missing", fmt.Errorf("x: %w", loader.ErrNoProgram), v1alpha1.ReasonProgramNotInBundle},
		{"type mismatch", fmt.Errorf("x: %w", attach.ErrTypeMismatch), v1alpha1.ReasonAttachMismatch},
		{"not supported", fmt.Errorf("x: %w", ebpf.ErrNotSupported), v1alpha1.ReasonNotSupported},
		{"attach", withReason(v1alpha1.ReasonAttachFailed, errors.New("busy")), v1alpha1.ReasonAttachFailed},
		{"anything else", errors.New("boom"), "Default"},
	} {
		if got := reasonFor(tc.err, "Default"); got != tc.want {
			t.Errorf("%s: reason %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestMessage(t *testing.T) {
	long := make([]string, 500)
	for i := range long {
		long[i] = fmt.Sprintf("%d: (bf) r%d = r1", i, i%10)
	}
	long = append(long, "invalid access to packet, off=64 size=1, R2(id=0,off=64,r=0)")
	msg := message(withReason(v1alpha1.ReasonLoadFailed, &ebpf.VerifierError{Cause: syscall.EACCES, Log: long}))
	if len(msg) > 2048 || !strings.HasPrefix(msg, "verifier rejected") || !strings.HasSuffix(msg, "r=0)") {
		t.Fatalf("verifier message (%d bytes) does not keep the log's tail within 2048: %q…", len(msg), msg[:80])
	}
	if got := message(errors.New(strings.Repeat("x", 5000))); len(got) > 2048 {
		t.Fatalf("plain message not truncated: %d bytes", len(got))
	}
}
