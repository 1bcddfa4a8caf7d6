package record

import (
	"encoding/binary"
	"errors"
	"testing"
)

var errShort = errors.New("short record")

// TestReader reads a record laid out as struct { __u64; __u32; __u32 pad;
// char[8]; char[4] } and refuses one a byte short.
func TestReader(t *testing.T) {
	raw := binary.NativeEndian.AppendUint64(nil, 1<<40)
	raw = binary.NativeEndian.AppendUint32(raw, 7)
	raw = append(raw, 0xff, 0xff, 0xff, 0xff) // padding
	raw = append(raw, "ls\x00junk!"...)       // char[8]
	raw = append(raw, "full"...)              // no NUL: the whole array
	r, err := New(raw, len(raw), errShort)
	if err != nil {
		t.Fatal(err)
	}
	a, b := r.Uint64(), r.Uint32()
	r.Pad(4)
	c, d := r.String(8), r.String(4)
	if a != 1<<40 || b != 7 || c != "ls" || d != "full" {
		t.Errorf("read %d %d %q %q, want %d 7 \"ls\" \"full\"", a, b, c, d, uint64(1<<40))
	}
	if _, err := New(raw[:len(raw)-1], len(raw), errShort); !errors.Is(err, errShort) {
		t.Errorf("a record a byte short: %v, want %v", err, errShort)
	}
}
