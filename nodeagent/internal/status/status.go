// Package status reads, for a loaded program and its link, the fields
// bpftool prog show prints, plus run statistics when the kernel collects them.
package status

import (
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/bundles/format"
)

// TypeName is bpftool's name of a program type: the kernel's
// BPF_PROG_TYPE_* suffix in lower case, as bundle manifests name it too.
func TypeName(t ebpf.ProgramType) string {
	if n, err := format.ProgramTypeName(t); err == nil {
		return n
	}
	return fmt.Sprintf("type_%d", uint32(t))
}

// bootTime is when the machine booted, on the wall clock (what bpftool adds
// to a program's load time to print loaded_at).
func bootTime() time.Time {
	var rt, bt unix.Timespec
	if unix.ClockGettime(unix.CLOCK_REALTIME, &rt) != nil || unix.ClockGettime(unix.CLOCK_BOOTTIME, &bt) != nil {
		return time.Time{}
	}
	return time.Unix(rt.Sec, rt.Nsec).Add(-time.Duration(bt.Nano()))
}

// ProgramInfo is what bpftool prog show prints of a loaded program, and its run
// statistics; the node agent copies it into the status of its node.
type ProgramInfo struct {
	// ID is the kernel's program id.
	ID uint32
	// Tag is the program tag (hash of its instructions), hex.
	Tag string
	// Type is the program type, e.g. xdp, tracepoint.
	Type string
	// Name is the kernel's (truncated) program name.
	Name string
	// LoadedAt is when the kernel loaded the program.
	LoadedAt *metav1.Time
	// BytesXlated is the size of the translated program.
	BytesXlated uint32
	// BytesJited is the size of the JIT-compiled program.
	BytesJited uint32
	// BytesMemlock is the memory the program accounts for.
	BytesMemlock uint64
	// VerifiedInsns is how many instructions the verifier processed.
	VerifiedInsns uint32
	// MapIDs are the ids of the maps the program uses.
	MapIDs []uint32
	// BTFID is the id of the program's BTF.
	BTFID uint32
	// RunCount is how many times the program ran (needs run-time stats on).
	RunCount uint64
	// RunTimeNs is the total run time in nanoseconds.
	RunTimeNs uint64
	// NsPerRun is RunTimeNs / RunCount.
	NsPerRun uint64
}

// FillProgram sets the program fields of st from prog: id, tag, type, name,
// loadedAt, bytes xlated/jited/memlock, verified instructions, map ids, BTF
// id and, when stats is set, run count, run time and ns per run.
func FillProgram(st *ProgramInfo, prog *ebpf.Program, stats bool) error {
	info, err := prog.Info()
	if err != nil {
		return fmt.Errorf("read program info: %w", err)
	}
	if id, ok := info.ID(); ok {
		st.ID = uint32(id)
	}
	st.Tag = info.Tag
	st.Type = TypeName(info.Type)
	st.Name = info.Name
	if lt, ok := info.LoadTime(); ok {
		t := metav1.NewTime(bootTime().Add(lt).Truncate(time.Second))
		st.LoadedAt = &t
	}
	if n, err := info.TranslatedSize(); err == nil {
		st.BytesXlated = uint32(n)
	}
	if n, err := info.JitedSize(); err == nil {
		st.BytesJited = n
	}
	if n, ok := info.Memlock(); ok {
		st.BytesMemlock = n
	}
	if n, ok := info.VerifiedInstructions(); ok {
		st.VerifiedInsns = n
	}
	st.MapIDs = nil
	if ids, ok := info.MapIDs(); ok {
		for _, id := range ids {
			st.MapIDs = append(st.MapIDs, uint32(id))
		}
	}
	if id, ok := info.BTFID(); ok {
		st.BTFID = uint32(id)
	}
	st.RunCount, st.RunTimeNs, st.NsPerRun = 0, 0, 0
	if stats {
		s, err := prog.Stats()
		if err != nil {
			return fmt.Errorf("read program stats: %w", err)
		}
		st.RunCount = s.RunCount
		st.RunTimeNs = uint64(s.Runtime)
		if s.RunCount > 0 {
			st.NsPerRun = st.RunTimeNs / s.RunCount
		}
	}
	return nil
}

// LinkID returns the kernel's id of l, 0 when unknown.
func LinkID(l link.Link) uint32 {
	if l == nil {
		return 0
	}
	info, err := l.Info()
	if err != nil {
		return 0
	}
	return uint32(info.ID)
}

// EnableStats turns on the kernel's run-time statistics for as long as the
// returned closer stays open.
func EnableStats() (interface{ Close() error }, error) {
	c, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		return nil, fmt.Errorf("enable run-time stats: %w", err)
	}
	return c, nil
}
