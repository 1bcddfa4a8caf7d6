package events

import "errors"

// Errors of the events package.
var (
	// ErrUnsupportedType is returned for a record type the decoder cannot
	// represent (functions, forward declarations, void).
	ErrUnsupportedType = errors.New("unsupported record type")
	// ErrShortRecord is returned for a record shorter than its type.
	ErrShortRecord = errors.New("record shorter than its type")
	// ErrUnknownField is returned by Keep for a name the record does not have.
	ErrUnknownField = errors.New("record has no such field")
	// ErrNotAnOutput is returned for an output map that is neither a ring
	// buffer nor a perf event array.
	ErrNotAnOutput = errors.New("not a ring buffer or perf event array")
)
