package v1alpha1_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
)

// nodeWithPrograms is a BpfNodeState as an agent of the many-programs scale
// scenario (test/scale, TestManyPrograms) writes it: n BpfPrograms sharing
// one signed bundle, each a tracepoint program, Attached, with the facts
// bpftool shows. distinctBundles gives every program its own digest
// instead (the worst case for status.bundles).
func nodeWithPrograms(n int, distinctBundles bool) *v1.BpfNodeState {
	at := metav1.NewTime(time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC))
	st := &v1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: "size-node-0001"}}
	st.Status = v1.BpfNodeStateStatus{
		Kernel:       v1.KernelInfo{Release: "6.18.0-sim", Architecture: "amd64", BTF: true, BootID: "0c9e4c55-3b8a-4f31-a5f0-1b2d3c4d5e6f"},
		Features:     []v1.Feature{{Name: "btf", Supported: true}, {Name: "tcx", Supported: true}, {Name: "tracepoint", Supported: true}},
		Summary:      v1.NodeSummary{Programs: int32(n), Attached: int32(n)},
		AgentVersion: "v0.9.0-dev",
		Conditions: []metav1.Condition{{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1.ReasonAllAttached,
			Message: fmt.Sprintf("%d program entries attached", n), LastTransitionTime: at}},
	}
	for i := range n {
		digest := "sha256:" + strings.Repeat("3f2a9c1b", 8)
		if distinctBundles {
			digest = fmt.Sprintf("sha256:%056x%08x", 0, i)
		}
		st.Status.Programs = append(st.Status.Programs, v1.ProgramState{
			BpfProgram: fmt.Sprintf("many-%03d", i), UID: types.UID(fmt.Sprintf("0b5c8c36-1f9a-4c1a-9a52-%012d", i)), Generation: 1,
			Digest: digest, Program: "exec_trace", AttachPoint: "tracepoint/sched/sched_process_exec",
			State: v1.PhaseAttached, Reason: v1.ReasonAttached, Signer: "scale/scale SHA256:0123456789abcdef", VerifiedAt: &at,
			ID: uint32(41000 + i), Tag: "a04f5eef1b1e4f3c", Type: "TracePoint", Name: "exec_trace", LoadedAt: &at,
			BytesXlated: 1224, BytesJited: 704, BytesMemlock: 4096, VerifiedInsns: 153,
			MapIDs: []uint32{uint32(52000 + i)}, BTFID: uint32(61000 + i), LinkID: uint32(73000 + i),
		})
	}
	return st
}

// namedSize is the size the status had when every row was a named JSON
// object (the shape before status.bundles), for the figures.
func namedSize(t *testing.T, st *v1.BpfNodeState) int {
	t.Helper()
	rows, err := json.Marshal(st.Status.Programs)
	if err != nil {
		t.Fatal(err)
	}
	rest := *st.DeepCopy()
	rest.Status.Programs = nil
	b, err := json.Marshal(rest)
	if err != nil {
		t.Fatal(err)
	}
	return len(b) + len(`,"programs":`) + len(rows)
}

// TestNodeStateSizeAt100Programs is the regression guard of issue 21 item
// 2's second goal: a BpfNodeState reporting 100 programs is under 16 KiB
// of JSON, as the API server stores and sends it.
func TestNodeStateSizeAt100Programs(t *testing.T) {
	st := nodeWithPrograms(100, false)
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	before := namedSize(t, st)
	t.Logf("BpfNodeState with 100 programs: %d bytes (%.1f KiB, %d a row); named rows: %d bytes (%.1f KiB); ratio %.2f",
		len(b), float64(len(b))/1024, len(b)/100, before, float64(before)/1024, float64(len(b))/float64(before))
	if len(b) >= 16<<10 {
		t.Errorf("a BpfNodeState with 100 programs is %d bytes of JSON, want < 16 KiB (%d)", len(b), 16<<10)
	}
	worst, err := json.Marshal(nodeWithPrograms(100, true))
	if err != nil {
		t.Fatal(err)
	}
	// A bundle of its own for every program repeats the digest, signer and
	// facts per row: reported, not held to 16 KiB.
	t.Logf("with 100 distinct bundles: %d bytes (%.1f KiB)", len(worst), float64(len(worst))/1024)
	if len(worst) >= before {
		t.Errorf("100 distinct bundles take %d bytes, no less than named rows (%d)", len(worst), before)
	}
}

// TestNodeStateRowsRoundTrip: every field of every row reads back as it was
// written, through the JSON the API server stores.
func TestNodeStateRowsRoundTrip(t *testing.T) {
	at := metav1.NewTime(time.Unix(1764784800, 0))
	later := metav1.NewTime(time.Unix(1764784861, 0))
	full := nodeWithPrograms(3, false).Status.Programs
	tests := []struct {
		name string
		rows []v1.ProgramState
	}{
		{"none", nil},
		{"shared bundle", full},
		{"distinct bundles", nodeWithPrograms(3, true).Status.Programs},
		{"pending, no facts, empty reason", []v1.ProgramState{{BpfProgram: "p", UID: "u-1", Program: "x", State: v1.PhasePending}}},
		{"waiting reason, message", []v1.ProgramState{{BpfProgram: "p", UID: "u-1", Generation: 7, Digest: "sha256:ab", Program: "x",
			AttachPoint: "xdp/eth0", State: v1.PhasePending, Reason: v1.ReasonWaitingForWave, Message: "wave 2 of 3: starts after wave 1 is Ready"}}},
		{"failed, keeps running", []v1.ProgramState{{BpfProgram: "p", UID: "u-1", Generation: 2, Digest: "sha256:cd", Program: "x", AttachPoint: "xdp/eth0",
			State: v1.PhaseFailed, Reason: v1.ReasonVerifierRejected, Message: "keeping sha256:ab running: R1 invalid mem access 'scalar'\n12: (61) r0 = *(u32 *)(r1 +0)",
			ID: 9, LoadedAt: &at, MapIDs: []uint32{1, 2, 3}}}},
		{"attach point with spaces, folded", []v1.ProgramState{{BpfProgram: "p", UID: "u-1", Program: "x",
			AttachPoint: "3 attach points: uprobe//opt/my app/bin:main .. uprobe//opt/my app/bin:run", State: v1.PhaseAttached, Reason: v1.ReasonAttached}}},
		{"empty attach point and names", []v1.ProgramState{{State: v1.PhaseDetaching, Reason: "Detaching"}}},
		{"pods and statistics", []v1.ProgramState{{BpfProgram: "p", UID: "u-1", Program: "x", AttachPoint: "cgroup/pods", State: v1.PhaseFailed,
			Reason: v1.ReasonAttachFailed, Pods: &v1.PodAttachCounts{Attached: 3, Failed: 1, RecentFailures: []string{"ns/pod: AttachFailed: no cgroup"}},
			RunCount: 1200, RunTimeNs: 36000, NsPerRun: 30, ID: 4, LinkID: 5, BTFID: 6}}},
		{"same bundle, other verification time", []v1.ProgramState{
			{BpfProgram: "a", UID: "u-1", Digest: "sha256:ab", Program: "x", State: v1.PhaseAttached, Reason: v1.ReasonAttached, VerifiedAt: &at},
			{BpfProgram: "b", UID: "u-2", Digest: "sha256:ab", Program: "x", State: v1.PhaseAttached, Reason: v1.ReasonAttached, VerifiedAt: &later},
			{BpfProgram: "c", UID: "u-3", Digest: "sha256:ab", Program: "y", State: v1.PhaseAttached, Reason: v1.ReasonAttached, VerifiedAt: &at, Tag: "ff"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := v1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Status: v1.BpfNodeStateStatus{Programs: tt.rows, AgentVersion: "v1"}}
			b, err := json.Marshal(&in)
			if err != nil {
				t.Fatal(err)
			}
			var out v1.BpfNodeState
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatalf("read back %s: %v", b, err)
			}
			if !equality.Semantic.DeepEqual(in.Status, out.Status) {
				t.Errorf("read back differs:\n in: %+v\nout: %+v\njson: %s", in.Status.Programs, out.Status.Programs, b)
			}
			if out.Status.Rows != nil || out.Status.Bundles != nil {
				t.Errorf("decoded status keeps its stored form: %d rows, %d bundles", len(out.Status.Rows), len(out.Status.Bundles))
			}
		})
	}
}

// TestNodeStateBundlesShared: rows that share a bundle and program refer to
// one status.bundles entry, so the digest is stored once.
func TestNodeStateBundlesShared(t *testing.T) {
	b, err := json.Marshal(nodeWithPrograms(100, false))
	if err != nil {
		t.Fatal(err)
	}
	var stored struct {
		Status struct {
			Bundles  []map[string]any `json:"bundles"`
			Programs []map[string]any `json:"programs"`
		} `json:"status"`
	}
	if err := json.Unmarshal(b, &stored); err != nil {
		t.Fatal(err)
	}
	if len(stored.Status.Bundles) != 1 || len(stored.Status.Programs) != 100 {
		t.Fatalf("stored %d bundles and %d rows, want 1 and 100", len(stored.Status.Bundles), len(stored.Status.Programs))
	}
	if n := strings.Count(string(b), "sha256:"); n != 1 {
		t.Errorf("the digest is stored %d times, want once", n)
	}
	want := "many-007 0b5c8c36-1f9a-4c1a-9a52-000000000007 1 Attached 0 41007 1796320800 52007 61007 73007 tracepoint/sched/sched_process_exec"
	if got := stored.Status.Programs[7]["row"]; got != want {
		t.Errorf("row 7 is %q, want %q", got, want)
	}
}

// TestNodeStateUnreadableRow: a row in another shape (as the API server
// prunes a row an older agent wrote) reads as an UnreadableRow entry that
// matches no BpfProgram; the rest of the status reads normally.
func TestNodeStateUnreadableRow(t *testing.T) {
	raw := `{"status":{"agentVersion":"v1","bundles":[{"program":"x","digest":"sha256:ab"}],"programs":[
		{},
		{"row":"p u-1 1 Attached 4 0 - - 0 0 xdp/eth0"},
		{"row":"p u-1 one Attached 0 0 - - 0 0 xdp/eth0"},
		{"row":"p u-1 1 Attached 0 0 - - 0 0 xdp/eth0"}]}}`
	var st v1.BpfNodeState
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf("a status with unreadable rows does not decode: %v", err)
	}
	if st.Status.AgentVersion != "v1" || len(st.Status.Programs) != 4 {
		t.Fatalf("decoded %+v", st.Status)
	}
	for i, why := range []string{"1 fields", "bundle 4 of 1", "field 3"} {
		p := st.Status.Programs[i]
		if p.Reason != v1.ReasonUnreadableRow || p.UID != "" || !strings.Contains(p.Message, why) {
			t.Errorf("row %d: got %+v, want reason %s, no uid, message naming %q", i, p, v1.ReasonUnreadableRow, why)
		}
	}
	if p := st.Status.Programs[3]; p.UID != "u-1" || p.Digest != "sha256:ab" || p.State != v1.PhaseAttached || p.AttachPoint != "xdp/eth0" {
		t.Errorf("the readable row reads %+v", p)
	}
}

// TestNodeStateRowsThroughAPIServer: the real API server accepts the
// stored form of 100 programs under the CRD's schema (nothing pruned) and
// the typed client reads every row back.
func TestNodeStateRowsThroughAPIServer(t *testing.T) {
	ctx := context.Background()
	want := nodeWithPrograms(100, false)
	want.Status.Programs[3].State, want.Status.Programs[3].Reason, want.Status.Programs[3].Message = v1.PhaseFailed, v1.ReasonAttachFailed, "no such tracepoint"
	want.Status.Programs[4].Pods = &v1.PodAttachCounts{Attached: 2}
	st := &v1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: "rows-through-apiserver"}}
	if err := env.Client.Create(ctx, st); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), st) })
	st.Status = *want.Status.DeepCopy()
	if err := env.Client.Status().Update(ctx, st); err != nil {
		t.Fatalf("write a 100-program status: %v", err)
	}
	var got v1.BpfNodeState
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(st), &got); err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(want.Status, got.Status) {
		for i := range want.Status.Programs {
			if !equality.Semantic.DeepEqual(want.Status.Programs[i], got.Status.Programs[i]) {
				t.Fatalf("row %d reads back as %+v, want %+v", i, got.Status.Programs[i], want.Status.Programs[i])
			}
		}
		t.Fatalf("status reads back differently: %+v", got.Status)
	}
	// As the API server sends it to watchers: with metadata and the
	// managed fields of the write.
	b, err := json.Marshal(&got)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("as served, with managedFields: %d bytes (%.1f KiB)", len(b), float64(len(b))/1024)
	if len(b) >= 16<<10 {
		t.Errorf("the API server serves a 100-program BpfNodeState in %d bytes, want < 16 KiB", len(b))
	}
}

// BenchmarkNodeStateDecode decodes a 100-program BpfNodeState as the
// operator's and agents' informers do on every watch event: stored rows
// (compact) against the same status with named rows (named, the shape
// before status.bundles), in the same run.
func BenchmarkNodeStateDecode(b *testing.B) {
	st := nodeWithPrograms(100, false)
	compact, err := json.Marshal(st)
	if err != nil {
		b.Fatal(err)
	}
	named, err := json.Marshal(st.Status.Programs)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("compact", func(b *testing.B) {
		b.SetBytes(int64(len(compact)))
		for b.Loop() {
			var out v1.BpfNodeState
			if err := json.Unmarshal(compact, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("named", func(b *testing.B) {
		b.SetBytes(int64(len(named)))
		for b.Loop() {
			var out []v1.ProgramState
			if err := json.Unmarshal(named, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestNodeStateRowsKeepEveryField: a row with every field of ProgramState
// set reads back with every field set, value for value, so that a field
// added to ProgramState without a place in the stored form fails here.
func TestNodeStateRowsKeepEveryField(t *testing.T) {
	var p v1.ProgramState
	fillFields(t, reflect.ValueOf(&p).Elem(), 1)
	p.State, p.Reason = v1.PhaseFailed, v1.ReasonAttachFailed // the row's words
	in := v1.BpfNodeState{Status: v1.BpfNodeStateStatus{Programs: []v1.ProgramState{p}}}
	b, err := json.Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	var out v1.BpfNodeState
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	got := reflect.ValueOf(out.Status.Programs[0])
	for i := range got.NumField() {
		if got.Field(i).IsZero() {
			t.Errorf("ProgramState.%s is lost in the stored form %s", got.Type().Field(i).Name, b)
		}
	}
	if !equality.Semantic.DeepEqual(p, out.Status.Programs[0]) {
		t.Errorf("read back %+v, want %+v", out.Status.Programs[0], p)
	}
}

// fillFields sets every field of v to a value that is not its zero, names
// without spaces.
func fillFields(t *testing.T, v reflect.Value, n int) {
	t.Helper()
	if v.Type() == reflect.TypeOf(metav1.Time{}) {
		v.Set(reflect.ValueOf(metav1.NewTime(time.Unix(1764784800+int64(n), 0))))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("f%d", n))
	case reflect.Int32, reflect.Int64:
		v.SetInt(int64(n))
	case reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(n))
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillFields(t, v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		fillFields(t, v.Index(0), n)
		fillFields(t, v.Index(1), n+1)
	case reflect.Struct:
		for i := range v.NumField() {
			fillFields(t, v.Field(i), n+i)
		}
	default:
		t.Fatalf("fillFields: no value for a %s", v.Kind())
	}
}
