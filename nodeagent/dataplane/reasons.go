package dataplane

import (
	"errors"
	"fmt"
	"strings"
	"syscall" // ENOTSUPP (524) is kernel-internal, absent from x/sys/unix

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/loader"
)

// reasonError gives an error a status reason.
type reasonError struct {
	reason string
	err    error
}

func (e *reasonError) Error() string { return e.err.Error() }
func (e *reasonError) Unwrap() error { return e.err }

func withReason(reason string, err error) error {
	if err == nil {
		return nil
	}
	return &reasonError{reason: reason, err: err}
}

// reasonFor maps an error to a status reason; def when nothing more precise fits.
func reasonFor(err error, def string) string {
	var he *HoldError
	var ve *ebpf.VerifierError
	var re *reasonError
	switch {
	case errors.As(err, &he):
		return he.Reason
	case errors.Is(err, ebpf.ErrNotSupported):
		return v1alpha1.ReasonNotSupported
	case errors.As(err, &ve) && hasLog(ve):
		return v1alpha1.ReasonVerifierRejected
	case errors.Is(err, loader.ErrInvalidConstant):
		return v1alpha1.ReasonInvalidConstant
	case errors.Is(err, loader.ErrInvalidMapEntry):
		return v1alpha1.ReasonMapUpdateFailed
	case errors.Is(err, loader.ErrMapIncompatible):
		return v1alpha1.ReasonMapIncompatible
	case errors.Is(err, loader.ErrNoProgram):
		return v1alpha1.ReasonProgramNotInBundle
	case errors.Is(err, attach.ErrTypeMismatch):
		return v1alpha1.ReasonAttachMismatch
	case errors.As(err, &re):
		return re.reason
	}
	return def
}

// hasLog tells whether the verifier said anything (a refusal before the
// verifier ran, e.g. EPERM, carries an empty log).
func hasLog(ve *ebpf.VerifierError) bool {
	for _, l := range ve.Log {
		if strings.TrimSpace(l) != "" {
			return true
		}
	}
	return false
}

// loadError classifies a program load error: the kernel refusing BTF
// tracing programs (fentry, fexit, tp_btf) outright means not supported.
func loadError(ps *ebpf.ProgramSpec, err error) error {
	var ve *ebpf.VerifierError
	if ps != nil && ps.Type == ebpf.Tracing && (!errors.As(err, &ve) || !hasLog(ve)) &&
		(errors.Is(err, unix.EPERM) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, syscall.Errno(524))) {
		return fmt.Errorf("kernel refuses BTF tracing programs (fentry/fexit/tp_btf): %w: %w", ebpf.ErrNotSupported, err)
	}
	return withReason(v1alpha1.ReasonLoadFailed, err)
}
