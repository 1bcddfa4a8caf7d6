package events_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/bpfleet/bpfleet/bpf/exectrace"
	"github.com/bpfleet/bpfleet/nodeagent/internal/events"
)

// execRecord is an exec-trace record as the kernel writes it.
func execRecord(comm, filename string) []byte {
	rec := make([]byte, exectrace.EventSize)
	le := binary.LittleEndian
	le.PutUint64(rec, 4026531835)
	le.PutUint32(rec[8:], 4242)
	le.PutUint32(rec[12:], 1)
	le.PutUint32(rec[16:], 1000)
	le.PutUint32(rec[20:], 100)
	copy(rec[24:40], comm)
	copy(rec[40:], filename)
	return rec
}

func execDecoder(tb testing.TB) *events.Decoder {
	tb.Helper()
	spec, err := exectrace.Spec()
	if err != nil {
		tb.Fatal(err)
	}
	var st *btf.Struct
	if err := spec.Types.TypeByName("exec_event", &st); err != nil {
		tb.Fatal(err)
	}
	d, err := events.NewDecoder(st)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// TestDecodeExecTrace: the generic decoder, from exec-trace's BTF alone,
// gives every field the hand-written ParseEvent gives.
func TestDecodeExecTrace(t *testing.T) {
	d := execDecoder(t)
	if d.Size() != exectrace.EventSize {
		t.Fatalf("record size %d, want %d", d.Size(), exectrace.EventSize)
	}
	rec := execRecord("bash", "/usr/bin/bash\x00garbage after the NUL")
	out, err := d.AppendJSON(nil, rec)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("invalid JSON %s: %v", out, err)
	}
	ev, err := exectrace.ParseEvent(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"cgroup_id": float64(ev.CgroupID), "pid": float64(ev.PID), "ppid": float64(ev.PPID),
		"uid": float64(ev.UID), "gid": float64(ev.GID), "comm": ev.Comm, "filename": ev.Filename,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded %s\nwant %v", out, want)
	}
	if _, err := d.AppendJSON(nil, rec[:100]); !errors.Is(err, events.ErrShortRecord) {
		t.Errorf("short record: %v, want ErrShortRecord", err)
	}
}

// TestDecodeKinds: every kind of member a record may hold.
func TestDecodeKinds(t *testing.T) {
	u8 := &btf.Int{Name: "__u8", Size: 1}
	u16 := &btf.Int{Name: "__u16", Size: 2}
	s32 := &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	u32 := &btf.Int{Name: "unsigned int", Size: 4}
	char := &btf.Int{Name: "char", Size: 1, Encoding: btf.Signed}
	boolT := &btf.Int{Name: "_Bool", Size: 1, Encoding: btf.Bool}
	state := &btf.Enum{Name: "state", Size: 4, Values: []btf.EnumValue{{Name: "RUNNING", Value: 0}, {Name: "SLEEPING", Value: 1}}}
	inner := &btf.Struct{Name: "addr", Size: 4, Members: []btf.Member{
		{Name: "port", Type: u16, Offset: 0},
		{Name: "proto", Type: u8, Offset: 16},
	}}
	rec := &btf.Struct{Name: "rec", Size: 40, Members: []btf.Member{
		{Name: "delta", Type: s32, Offset: 0},
		{Name: "state", Type: state, Offset: 32},
		{Name: "flags", Type: u32, Offset: 64, BitfieldSize: 3},
		{Name: "level", Type: u32, Offset: 67, BitfieldSize: 5},
		{Name: "ok", Type: boolT, Offset: 96},
		{Name: "name", Type: &btf.Array{Type: char, Index: u32, Nelems: 8}, Offset: 104},
		{Name: "ports", Type: &btf.Array{Type: u16, Index: u32, Nelems: 3}, Offset: 176},
		{Name: "to", Type: &btf.Typedef{Name: "addr_t", Type: &btf.Volatile{Type: inner}}, Offset: 224},
		{Name: "", Type: &btf.Union{Size: 4, Members: []btf.Member{{Name: "raw", Type: u32}, {Name: "low", Type: u16}}}, Offset: 256},
		{Name: "ratio", Type: &btf.Float{Name: "float", Size: 4}, Offset: 288},
	}}
	d, err := events.NewDecoder(rec)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 40)
	le := binary.LittleEndian
	le.PutUint32(b[0:], uint32(0xfffffff9)) // -7
	le.PutUint32(b[4:], 1)                  // SLEEPING
	le.PutUint32(b[8:], 0b10110_101)        // flags 5, level 22
	b[12] = 1
	copy(b[13:21], "nginx\x00\xff\xff")
	le.PutUint16(b[22:], 80)
	le.PutUint16(b[24:], 443)
	le.PutUint16(b[26:], 8080)
	le.PutUint16(b[28:], 53)
	b[30] = 17
	le.PutUint32(b[32:], 0x00010002)
	le.PutUint32(b[36:], 0x3fc00000) // 1.5
	out, err := d.AppendJSON(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"delta":-7,"state":"SLEEPING","flags":5,"level":22,"ok":true,"name":"nginx","ports":[80,443,8080],"to":{"port":53,"proto":17},"_8":{"raw":65538,"low":2},"ratio":1.5}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
}

func TestDecoderRefuses(t *testing.T) {
	if _, err := events.NewDecoder(&btf.Int{Name: "u32", Size: 4}); !errors.Is(err, events.ErrUnsupportedType) {
		t.Errorf("an int as the record: %v, want ErrUnsupportedType", err)
	}
	bad := &btf.Struct{Name: "bad", Size: 8, Members: []btf.Member{{Name: "fn", Type: &btf.FuncProto{}}}}
	if _, err := events.NewDecoder(bad); !errors.Is(err, events.ErrUnsupportedType) {
		t.Errorf("a function member: %v, want ErrUnsupportedType", err)
	}
}

// FuzzAppendJSON: whatever bytes a program writes, the line is valid JSON.
func FuzzAppendJSON(f *testing.F) {
	d := execDecoder(f)
	f.Add(execRecord("bash", "/bin/bash"))
	f.Add(bytes.Repeat([]byte{0xff}, exectrace.EventSize))
	f.Add(execRecord("a\"b\\c\x01", "\xc3\x28 invalid utf-8"))
	f.Fuzz(func(t *testing.T, rec []byte) {
		out, err := d.AppendJSON(nil, rec)
		if len(rec) < d.Size() {
			if !errors.Is(err, events.ErrShortRecord) {
				t.Fatalf("short record: %v", err)
			}
			return
		}
		if err != nil || !json.Valid(out) {
			t.Fatalf("AppendJSON = %q, %v: not valid JSON", out, err)
		}
	})
}

func TestKeep(t *testing.T) {
	d := execDecoder(t)
	k, err := d.Keep([]string{"filename", "pid"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := k.AppendJSON(nil, execRecord("bash", "/bin/bash"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"pid":4242,"filename":"/bin/bash"}`; string(out) != want {
		t.Errorf("got %s, want %s (the record's order)", out, want)
	}
	if _, err := d.Keep([]string{"pid", "nope"}); !errors.Is(err, events.ErrUnknownField) {
		t.Errorf("Keep(nope): %v, want ErrUnknownField", err)
	}
}
