package dataplane_test

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strconv"
	"testing"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/dataplane"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// TestStatusMatchesBpftool compares every field of a snapshot with what
// bpftool prints for the same program and link.
func TestStatusMatchesBpftool(t *testing.T) {
	e := newEnv(t)
	bpftool := privileged.RequireCommand(t, "bpftool")
	uid := "status-" + randHex(4)
	d := e.open(t, func(o *dataplane.Options) { o.Stats = true })
	ds := e.xdpDesired(t, uid, "sha256:v1", kernelprog.Object, v1alpha1.XDPModeNative)
	wantAttached(t, one(t, d.Apply(ctx, parsed(ds)), uid))
	e.sendUDP(t, 9999, 20)
	st := one(t, d.Snapshot(), uid)

	out, err := exec.Command(bpftool, "-j", "prog", "show", "id", strconv.Itoa(int(st.ID))).Output()
	if err != nil {
		t.Fatalf("bpftool prog show: %v", err)
	}
	var bt struct {
		ID           uint32   `json:"id"`
		Type         string   `json:"type"`
		Name         string   `json:"name"`
		Tag          string   `json:"tag"`
		LoadedAt     int64    `json:"loaded_at"`
		BytesXlated  uint32   `json:"bytes_xlated"`
		BytesJited   uint32   `json:"bytes_jited"`
		BytesMemlock uint64   `json:"bytes_memlock"`
		MapIDs       []uint32 `json:"map_ids"`
		BTFID        uint32   `json:"btf_id"`
		RunCnt       uint64   `json:"run_cnt"`
		RunTimeNs    uint64   `json:"run_time_ns"`
		// verified_insns is printed by newer bpftools only.
		VerifiedInsns *uint32 `json:"verified_insns"`
	}
	if err := json.Unmarshal(out, &bt); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	slices.Sort(bt.MapIDs)
	ours := slices.Clone(st.MapIDs)
	slices.Sort(ours)
	for _, c := range []struct {
		field     string
		got, want any
	}{
		{"id", st.ID, bt.ID},
		{"type", st.Type, bt.Type},
		{"name", st.Name, bt.Name},
		{"tag", st.Tag, bt.Tag},
		{"bytes_xlated", st.BytesXlated, bt.BytesXlated},
		{"bytes_jited", st.BytesJited, bt.BytesJited},
		{"bytes_memlock", st.BytesMemlock, bt.BytesMemlock},
		{"map_ids", ours, bt.MapIDs},
		{"btf_id", st.BTFID, bt.BTFID},
	} {
		if !equalJSON(c.got, c.want) {
			t.Errorf("%s: ours %v, bpftool %v", c.field, c.got, c.want)
		}
	}
	if d := st.LoadedAt.Unix() - bt.LoadedAt; d < -1 || d > 1 {
		t.Errorf("loaded_at: ours %d, bpftool %d", st.LoadedAt.Unix(), bt.LoadedAt)
	}
	if bt.VerifiedInsns != nil && *bt.VerifiedInsns != st.VerifiedInsns {
		t.Errorf("verified_insns: ours %d, bpftool %d", st.VerifiedInsns, *bt.VerifiedInsns)
	}
	if st.VerifiedInsns == 0 {
		t.Errorf("verified_insns not reported")
	}
	// Stats only grow between our read and bpftool's.
	if st.RunCount < 20 || bt.RunCnt < st.RunCount || bt.RunTimeNs < st.RunTimeNs || st.NsPerRun == 0 || st.NsPerRun != st.RunTimeNs/st.RunCount {
		t.Errorf("stats: ours run_cnt %d run_time_ns %d ns/run %d, bpftool run_cnt %d run_time_ns %d",
			st.RunCount, st.RunTimeNs, st.NsPerRun, bt.RunCnt, bt.RunTimeNs)
	}
	t.Logf("xdp_filter: %d runs, %d ns/run", st.RunCount, st.NsPerRun)

	out, err = exec.Command(bpftool, "-j", "link", "show", "id", strconv.Itoa(int(st.LinkID))).Output()
	if err != nil {
		t.Fatalf("bpftool link show: %v", err)
	}
	var bl struct {
		ID     uint32 `json:"id"`
		Type   string `json:"type"`
		ProgID uint32 `json:"prog_id"`
	}
	if err := json.Unmarshal(out, &bl); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	if bl.ID != st.LinkID || bl.ProgID != st.ID || bl.Type != "xdp" {
		t.Errorf("link: ours id %d prog %d, bpftool %+v", st.LinkID, st.ID, bl)
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
