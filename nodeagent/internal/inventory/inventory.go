// Package inventory lists every eBPF program loaded in the node's kernel and
// summarises, boundedly, those bpfleet did not load: id, type, name, tag,
// load time and the attach points of the links that hold them. It only
// reads: bpfleet never modifies programs it did not load.
//
// A program is bpfleet's when its id is one the dataplane reports, or when it
// is pinned (directly, or through a pinned link) under the agent's bpffs
// root. Everything else in the kernel is unmanaged: systemd's cgroup
// programs, another agent's, a third-party loader's.
package inventory

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/internal/status"
)

// MaxListed is how many unmanaged programs a summary lists (the CRD's bound).
const MaxListed = 20

// maxAttachPoint bounds the attach points reported for one program.
const maxAttachPoint = 256

// Program is one eBPF program loaded in the kernel.
type Program struct {
	// ID is the kernel's program id.
	ID uint32
	// Type is bpftool's name of the program type, e.g. xdp, cgroup_skb.
	Type string
	// Name is the kernel's (truncated) program name.
	Name string
	// Tag is the program tag, hex.
	Tag string
	// LoadedAt is when the kernel loaded it, to the second; zero when unknown.
	LoadedAt time.Time
	// AttachPoints are where the links referencing it attach, sorted;
	// empty when it is attached without a link (legacy netlink XDP, tc
	// cls_bpf, perf_event ioctl) or not at all.
	AttachPoints []string
}

// Scan lists every program loaded in the kernel, by ascending id, with the
// attach points of the links that reference it. Programs unloaded while
// scanning are skipped; a missing privilege is an error.
func Scan() ([]Program, error) {
	points, err := linkPoints()
	if err != nil {
		return nil, err
	}
	var out []Program
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("get next program id after %d: %w", id, err)
		}
		id = next
		p, err := readProgram(id)
		if errors.Is(err, os.ErrNotExist) {
			continue // unloaded meanwhile
		}
		if err != nil {
			return nil, err
		}
		p.AttachPoints = points[p.ID]
		out = append(out, p)
	}
}

func readProgram(id ebpf.ProgramID) (Program, error) {
	prog, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return Program{}, fmt.Errorf("open program %d: %w", id, err)
	}
	defer prog.Close()
	var st status.ProgramInfo
	if err := status.FillProgram(&st, prog, false); err != nil {
		return Program{}, fmt.Errorf("read program %d: %w", id, err)
	}
	p := Program{ID: uint32(id), Type: st.Type, Name: st.Name, Tag: st.Tag}
	if st.LoadedAt != nil {
		p.LoadedAt = st.LoadedAt.Time
	}
	return p, nil
}

// A link that answers EAGAIN is retried linkRetries times, linkRetryWait apart.
const (
	linkRetries   = 10
	linkRetryWait = 5 * time.Millisecond
)

// linkPoints maps program ids to the attach points of every link in the
// kernel that references them.
func linkPoints() (map[uint32][]string, error) {
	out := map[uint32][]string{}
	it := new(link.Iterator)
	defer func() { it.Close() }()
	retries := 0
	for {
		if it.Next() {
			retries = 0
			info, err := it.Link.Info()
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("read link %d: %w", it.ID, err)
			}
			id := uint32(info.Program)
			out[id] = append(out[id], AttachPoint(info))
			continue
		}
		err := it.Err()
		if err == nil {
			break
		}
		// A link being created or torn down by someone else answers EAGAIN
		// for a moment; the iterator stops there. Resume after the last link
		// read, a few times, before calling the scan failed.
		if errors.Is(err, unix.EAGAIN) && retries < linkRetries {
			retries++
			last := it.ID
			it.Close()
			it = &link.Iterator{ID: last}
			time.Sleep(linkRetryWait)
			continue
		}
		return nil, fmt.Errorf("iterate links: %w", err)
	}
	for id := range out {
		slices.Sort(out[id])
	}
	return out, nil
}

// AttachPoint describes where a link attaches, in the spirit of bpftool link
// show: xdp/ifindex:3, tcx-ingress/ifindex:3, cgroup/cgroup_inet_ingress:id
// 42, raw_tracepoint/sched_switch, kprobe/do_sys_open, tracing/btf_id:1234.
// Interfaces are given by index: a link may live in another network
// namespace than the agent's, where the name would mislead.
func AttachPoint(info *link.Info) string {
	switch {
	case info.XDP() != nil:
		return fmt.Sprintf("xdp/ifindex:%d", info.XDP().Ifindex)
	case info.TCX() != nil:
		return fmt.Sprintf("%s/ifindex:%d", tcxDirection(attachName(info.TCX().AttachType)), info.TCX().Ifindex)
	case info.Netkit() != nil:
		return fmt.Sprintf("%s/ifindex:%d", attachName(info.Netkit().AttachType), info.Netkit().Ifindex)
	case info.Cgroup() != nil:
		return fmt.Sprintf("cgroup/%s:id %d", strings.TrimPrefix(attachName(info.Cgroup().AttachType), "cgroup_"), info.Cgroup().CgroupId)
	case info.NetNs() != nil:
		return fmt.Sprintf("netns/%s:ino %d", attachName(info.NetNs().AttachType), info.NetNs().NetnsInode)
	case info.RawTracepoint() != nil:
		return "raw_tracepoint/" + info.RawTracepoint().Name
	case info.Tracing() != nil:
		return fmt.Sprintf("%s/btf_id:%d", strings.TrimPrefix(attachName(info.Tracing().AttachType), "trace_"), info.Tracing().TargetBtfId)
	case info.Netfilter() != nil:
		nf := info.Netfilter()
		return fmt.Sprintf("netfilter/pf:%d,hook:%d,prio:%d", nf.ProtocolFamily, nf.Hook, nf.Priority)
	case info.KprobeMulti() != nil:
		return fmt.Sprintf("kprobe_multi/%d functions", info.KprobeMulti().Count)
	case info.UprobeMulti() != nil:
		return "uprobe_multi/" + info.UprobeMulti().File
	case info.PerfEvent() != nil:
		return perfEventPoint(info.PerfEvent())
	}
	return linkTypeName(info.Type)
}

func perfEventPoint(pe *link.PerfEventInfo) string {
	switch {
	case pe.Kprobe() != nil:
		k := pe.Kprobe()
		if k.Offset != 0 {
			return fmt.Sprintf("kprobe/%s+%d", k.Function, k.Offset)
		}
		return "kprobe/" + k.Function
	case pe.Uprobe() != nil:
		return fmt.Sprintf("uprobe/%s:%#x", pe.Uprobe().File, pe.Uprobe().Offset)
	case pe.Tracepoint() != nil:
		return "tracepoint/" + pe.Tracepoint().Tracepoint
	}
	return "perf_event"
}

// attachName is the kernel's attach type name without BPF_, lower case.
func attachName(t interface{ String() string }) string {
	return strings.ToLower(strings.TrimPrefix(t.String(), "BPF_"))
}

func tcxDirection(name string) string { return strings.ReplaceAll(name, "_", "-") }

// linkTypeNames are bpftool's names of link types without type-specific
// information here.
var linkTypeNames = map[link.Type]string{
	link.IterType:        "iter",
	link.StructOpsType:   "struct_ops",
	link.NetNsType:       "netns",
	link.PerfEventType:   "perf_event",
	link.KprobeMultiType: "kprobe_multi",
}

func linkTypeName(t link.Type) string {
	if n, ok := linkTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("link_type_%d", uint32(t))
}

// PinnedIDs returns the ids of the programs pinned under root: program pins,
// and the programs of link pins. Map pins and other files are ignored, and so
// is a missing root.
func PinnedIDs(root string) (map[uint32]bool, error) {
	ids := map[uint32]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		switch filepath.Base(filepath.Dir(path)) {
		case "progs":
			// Opening a pin takes a reference, never changes the object.
			// (The kernel refuses read-only opens of links.)
			if p, err := ebpf.LoadPinnedProgram(path, nil); err == nil {
				if info, err := p.Info(); err == nil {
					if id, ok := info.ID(); ok {
						ids[uint32(id)] = true
					}
				}
				p.Close()
			}
		case "links":
			if l, err := link.LoadPinnedLink(path, nil); err == nil {
				if info, err := l.Info(); err == nil {
					ids[uint32(info.Program)] = true
				}
				l.Close()
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk pins under %s: %w", root, err)
	}
	return ids, nil
}

// Summarize counts the programs of all whose ids are not in ours, by type,
// and lists the newest limit of them (highest ids first: ids grow with every
// load, so a newly loaded program comes first).
func Summarize(all []Program, ours map[uint32]bool, limit int) *v1alpha1.UnmanagedSummary {
	sum := &v1alpha1.UnmanagedSummary{}
	var listed []Program
	for _, p := range all {
		if ours[p.ID] {
			continue
		}
		sum.Count++
		if sum.ByType == nil {
			sum.ByType = map[string]int32{}
		}
		sum.ByType[p.Type]++
		listed = append(listed, p)
	}
	slices.SortFunc(listed, func(a, b Program) int { return cmp.Compare(b.ID, a.ID) })
	if len(listed) > limit {
		listed = listed[:limit]
	}
	for _, p := range listed {
		u := v1alpha1.UnmanagedProgram{
			ID: p.ID, Type: p.Type, Name: p.Name, Tag: p.Tag,
			AttachPoint: joinBounded(p.AttachPoints),
		}
		if !p.LoadedAt.IsZero() {
			t := metav1.NewTime(p.LoadedAt.Truncate(time.Second))
			u.LoadedAt = &t
		}
		sum.Programs = append(sum.Programs, u)
	}
	return sum
}

// joinBounded joins with commas, cut to maxAttachPoint bytes.
func joinBounded(points []string) string {
	s := strings.Join(points, ",")
	if len(s) > maxAttachPoint {
		s = s[:maxAttachPoint-3] + "..."
	}
	return s
}

// Same tells whether two summaries report the same programs. Load times are
// ignored: they derive from the boot time and may wobble by a second between
// reads of the same program.
func Same(a, b *v1alpha1.UnmanagedSummary) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Count != b.Count || len(a.ByType) != len(b.ByType) || len(a.Programs) != len(b.Programs) {
		return false
	}
	for t, n := range a.ByType {
		if b.ByType[t] != n {
			return false
		}
	}
	for i := range a.Programs {
		x, y := a.Programs[i], b.Programs[i]
		x.LoadedAt, y.LoadedAt = nil, nil
		if x != y {
			return false
		}
	}
	return true
}

// KeepLoadTimes copies the load times prev reports into next for the
// programs both list, so that a rewrite does not move them by a second.
func KeepLoadTimes(prev, next *v1alpha1.UnmanagedSummary) {
	if prev == nil || next == nil {
		return
	}
	old := map[uint32]*metav1.Time{}
	for _, p := range prev.Programs {
		old[p.ID] = p.LoadedAt
	}
	for i := range next.Programs {
		if t, ok := old[next.Programs[i].ID]; ok && t != nil {
			next.Programs[i].LoadedAt = t
		}
	}
}

// Changes says, in a few words, how next differs from prev: the count, and
// the listed programs that came and went (by id, type and name).
func Changes(prev, next *v1alpha1.UnmanagedSummary) string {
	var before v1alpha1.UnmanagedSummary
	if prev != nil {
		before = *prev
	}
	seen := map[uint32]bool{}
	for _, p := range before.Programs {
		seen[p.ID] = true
	}
	now := map[uint32]bool{}
	var added, removed []string
	for _, p := range next.Programs {
		now[p.ID] = true
		if !seen[p.ID] {
			added = append(added, describe(p))
		}
	}
	for _, p := range before.Programs {
		if !now[p.ID] {
			removed = append(removed, describe(p))
		}
	}
	msg := fmt.Sprintf("%d unmanaged programs (was %d)", next.Count, before.Count)
	if len(added) > 0 {
		msg += "; new: " + bounded(added)
	}
	if len(removed) > 0 {
		msg += "; gone or no longer listed: " + bounded(removed)
	}
	return msg
}

func describe(p v1alpha1.UnmanagedProgram) string {
	s := fmt.Sprintf("%d %s", p.ID, p.Type)
	if p.Name != "" {
		s += " " + p.Name
	}
	if p.AttachPoint != "" {
		s += " at " + p.AttachPoint
	}
	return s
}

func bounded(items []string) string {
	const show = 5
	if len(items) <= show {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:show], ", ") + fmt.Sprintf(" and %d more", len(items)-show)
}
