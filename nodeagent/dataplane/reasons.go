package dataplane

import (
	"errors"
	"fmt"
	"strings"
	"syscall" // ENOTSUPP (524) is kernel-internal, absent from x/sys/unix

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/internal/loader"
)

// The reasons the dataplane reports in ProgramState.Reason. The words are
// the API's Reason* words (the node agent's controller tests that they
// match), so status reads the same whichever side names them.
const (
	ReasonAttached           = "Attached"
	ReasonAttachFailed       = "AttachFailed"
	ReasonAttachMismatch     = "AttachTypeMismatch"
	ReasonBundleInvalid      = "BundleInvalid"
	ReasonInvalidConstant    = "InvalidConstant"
	ReasonLoadFailed         = "LoadFailed"
	ReasonMapIncompatible    = "MapIncompatible"
	ReasonMapUpdateFailed    = "MapUpdateFailed"
	ReasonNoInterface        = "NoMatchingInterface"
	ReasonNoPodsOnNode       = "NoPodsOnNode"
	ReasonNotSupported       = "NotSupported"
	ReasonProgramNotInBundle = "ProgramNotInBundle"
	ReasonTampered           = "Tampered"
	ReasonVerifierRejected   = "VerifierRejected"
	ReasonWaitingForBundle   = "WaitingForBundle"
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
		return ReasonNotSupported
	case errors.As(err, &ve) && hasLog(ve):
		return ReasonVerifierRejected
	case errors.Is(err, loader.ErrInvalidConstant):
		return ReasonInvalidConstant
	case errors.Is(err, loader.ErrInvalidMapEntry):
		return ReasonMapUpdateFailed
	case errors.Is(err, loader.ErrMapIncompatible):
		return ReasonMapIncompatible
	case errors.Is(err, loader.ErrNoProgram):
		return ReasonProgramNotInBundle
	case errors.Is(err, attach.ErrTypeMismatch):
		return ReasonAttachMismatch
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
	return withReason(ReasonLoadFailed, err)
}
