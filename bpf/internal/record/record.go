// Package record reads the fixed-layout ring-buffer records the shipped
// programs write (a C struct of the host's byte order), field by field,
// for their typed APIs' ParseEvent.
package record

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Reader reads a record's fields in their order.
type Reader struct {
	b []byte
}

// New returns a reader of raw, or an error wrapping short when raw is
// shorter than size, the record's C size.
func New(raw []byte, size int, short error) (*Reader, error) {
	if len(raw) < size {
		return nil, fmt.Errorf("%w: %d bytes, want %d", short, len(raw), size)
	}
	return &Reader{b: raw[:size]}, nil
}

// Uint64 reads a __u64.
func (r *Reader) Uint64() uint64 {
	v := binary.NativeEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// Uint32 reads a __u32.
func (r *Reader) Uint32() uint32 {
	v := binary.NativeEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

// Pad passes over n bytes of padding.
func (r *Reader) Pad(n int) { r.b = r.b[n:] }

// String reads a char[n] holding a NUL-terminated string.
func (r *Reader) String(n int) string {
	s := r.b[:n]
	r.b = r.b[n:]
	if i := bytes.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	return string(s)
}
