package v1alpha1

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The stored form of BpfNodeStateStatus.Programs (issue 21 item 2: a node
// with 100 programs in under 16 KiB, nothing a user reads lost). Named JSON
// rows cost ~600 bytes each; most of it repeats what many rows share (the
// bundle's digest, signer and verification time, and what the kernel says
// about the program's instructions) or is field names. So the stored status
// keeps each distinct shared part once in status.bundles, and each row as
// one line of positional fields referring to it (ProgramRow.Row), with the
// free-text and rarely set fields named beside it. Go code never sees this
// form: BpfNodeStateStatus's MarshalJSON writes it from Programs and its
// UnmarshalJSON reads Programs back, field for field.

// errBadRow is a stored row this package cannot read back.
var errBadRow = errors.New("malformed status.programs row")

// rowFields is the number of space-separated fields of ProgramRow.Row; the
// last, the attach point, is the rest of the line and may hold spaces.
const rowFields = 10

// BundleEntry is what rows of status.programs share: the bundle a program
// came from and the kernel's facts that follow from its instructions. Rows
// refer to an entry by its index in status.bundles.
type BundleEntry struct {
	// Digest is the bundle digest loaded (or being loaded).
	// +optional
	Digest string `json:"digest,omitempty"`
	// Signer is the key fingerprint and trust policy that admitted the bundle.
	// +optional
	Signer string `json:"signer,omitempty"`
	// VerifiedAt is when the agent first verified the bundle's signature.
	// +optional
	VerifiedAt *metav1.Time `json:"verifiedAt,omitempty"`
	// Program is the program's name in the bundle.
	Program string `json:"program"`
	// Tag is the program tag (hash of its instructions), hex.
	// +optional
	Tag string `json:"tag,omitempty"`
	// Type is the program type, e.g. xdp, tracepoint.
	// +optional
	Type string `json:"type,omitempty"`
	// Name is the kernel's (truncated) program name.
	// +optional
	Name string `json:"name,omitempty"`
	// BytesXlated is the size of the translated program.
	// +optional
	BytesXlated uint32 `json:"bytesXlated,omitempty"`
	// BytesJited is the size of the JIT-compiled program.
	// +optional
	BytesJited uint32 `json:"bytesJited,omitempty"`
	// BytesMemlock is the memory the program accounts for.
	// +optional
	BytesMemlock uint64 `json:"bytesMemlock,omitempty"`
	// VerifiedInsns is how many instructions the verifier processed.
	// +optional
	VerifiedInsns uint32 `json:"verifiedInsns,omitempty"`
}

// ProgramRow is one program of one BpfProgram at one attach point, stored.
type ProgramRow struct {
	// Row is the row's fields separated by single spaces, in this order:
	// bpfProgram, uid, generation, state (STATE, or STATE:REASON when the
	// reason is not the state's name), bundle (index in status.bundles),
	// id, loadedAt (Unix seconds), mapIDs (comma separated), btfID, linkID,
	// attachPoint (the rest of the line). "-" stands for an empty name, uid,
	// load time or map list. Example:
	// "probe 0b5c8c36-1f9a-4c1a-9a52-3e8c0d1c2b7f 3 Attached 0 412 1764784800 88,89 61 97 xdp/eth0".
	// kubectl bpf status prints rows with named columns.
	// +kubebuilder:validation:MaxLength=1024
	Row string `json:"row"`
	// Message is a human explanation; on a verifier rejection, the log's tail.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Message string `json:"message,omitempty"`
	// Pods sums the attach points of a program that targets pods.
	// +optional
	Pods *PodAttachCounts `json:"pods,omitempty"`
	// RunCount is how many times the program ran (needs run-time stats on).
	// +optional
	RunCount uint64 `json:"runCount,omitempty"`
	// RunTimeNs is the total run time in nanoseconds (needs run-time stats on).
	// +optional
	RunTimeNs uint64 `json:"runTimeNs,omitempty"`
	// NsPerRun is RunTimeNs / RunCount.
	// +optional
	NsPerRun uint64 `json:"nsPerRun,omitempty"`
}

// MarshalJSON writes the status with Programs in their stored form
// (status.bundles and status.programs rows); Bundles and Rows are ignored.
func (s BpfNodeStateStatus) MarshalJSON() ([]byte, error) {
	type plain BpfNodeStateStatus // without these methods
	p := plain(s)
	p.Bundles, p.Rows = EncodeRows(s.Programs)
	return json.Marshal(p)
}

// UnmarshalJSON reads a status written by MarshalJSON: Programs from the
// stored rows, with Bundles and Rows left empty.
func (s *BpfNodeStateStatus) UnmarshalJSON(b []byte) error {
	type plain BpfNodeStateStatus
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*s = BpfNodeStateStatus(p)
	s.Programs, s.Bundles, s.Rows = DecodeRows(p.Bundles, p.Rows), nil, nil
	return nil
}

// EncodeRows is the stored form of programs: the distinct shared parts and
// one row each, in the same order.
func EncodeRows(programs []ProgramState) ([]BundleEntry, []ProgramRow) {
	if programs == nil {
		return nil, nil
	}
	var bundles []BundleEntry
	index := map[string]int{}
	rows := make([]ProgramRow, 0, len(programs))
	for i := range programs {
		p := &programs[i]
		b := BundleEntry{
			Digest: p.Digest, Signer: p.Signer, VerifiedAt: p.VerifiedAt, Program: p.Program,
			Tag: p.Tag, Type: p.Type, Name: p.Name,
			BytesXlated: p.BytesXlated, BytesJited: p.BytesJited, BytesMemlock: p.BytesMemlock, VerifiedInsns: p.VerifiedInsns,
		}
		key := fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%d\x00%d\x00%d\x00%d",
			b.Digest, b.Signer, unixOrDash(b.VerifiedAt), b.Program, b.Tag, b.Type, b.Name, b.BytesXlated, b.BytesJited, b.BytesMemlock, b.VerifiedInsns)
		at, ok := index[key]
		if !ok {
			at = len(bundles)
			index[key] = at
			bundles = append(bundles, b)
		}
		state := string(p.State)
		if p.Reason != state {
			state += ":" + p.Reason
		}
		row := strings.Join([]string{
			dashIfEmpty(p.BpfProgram), dashIfEmpty(string(p.UID)), strconv.FormatInt(p.Generation, 10), state, strconv.Itoa(at),
			strconv.FormatUint(uint64(p.ID), 10), unixOrDash(p.LoadedAt), joinIDs(p.MapIDs),
			strconv.FormatUint(uint64(p.BTFID), 10), strconv.FormatUint(uint64(p.LinkID), 10), p.AttachPoint,
		}, " ")
		rows = append(rows, ProgramRow{Row: row, Message: p.Message, Pods: p.Pods, RunCount: p.RunCount, RunTimeNs: p.RunTimeNs, NsPerRun: p.NsPerRun})
	}
	return bundles, rows
}

// DecodeRows reads back what EncodeRows wrote. A row it cannot read (one
// written in another shape, e.g. by an older agent, and pruned by the API
// server) becomes an entry with reason UnreadableRow and the error as its
// message, matching no BpfProgram, until its agent writes the status again;
// the rest of the object stays readable.
func DecodeRows(bundles []BundleEntry, rows []ProgramRow) []ProgramState {
	if rows == nil {
		return nil
	}
	out := make([]ProgramState, 0, len(rows))
	for i := range rows {
		p, err := decodeRow(bundles, &rows[i])
		if err != nil {
			p = ProgramState{Reason: ReasonUnreadableRow, Message: fmt.Sprintf("read status.programs[%d]: %v", i, err)}
		}
		out = append(out, p)
	}
	return out
}

func decodeRow(bundles []BundleEntry, r *ProgramRow) (ProgramState, error) {
	f := strings.SplitN(r.Row, " ", rowFields+1)
	if len(f) != rowFields+1 {
		return ProgramState{}, fmt.Errorf("%w: %d fields, want %d: %q", errBadRow, len(f), rowFields+1, r.Row)
	}
	nums := make([]uint64, 0, 5)
	for _, j := range []int{2, 4, 5, 8, 9} {
		n, err := strconv.ParseUint(f[j], 10, 64)
		if err != nil {
			return ProgramState{}, fmt.Errorf("%w: field %d: %w", errBadRow, j+1, err)
		}
		nums = append(nums, n)
	}
	at := nums[1]
	if at >= uint64(len(bundles)) {
		return ProgramState{}, fmt.Errorf("%w: bundle %d of %d", errBadRow, at, len(bundles))
	}
	loadedAt, err := timeOrNil(f[6])
	if err != nil {
		return ProgramState{}, fmt.Errorf("%w: loadedAt: %w", errBadRow, err)
	}
	mapIDs, err := splitIDs(f[7])
	if err != nil {
		return ProgramState{}, fmt.Errorf("%w: mapIDs: %w", errBadRow, err)
	}
	state, reason, hasReason := strings.Cut(f[3], ":")
	if !hasReason {
		reason = state
	}
	b := bundles[at]
	return ProgramState{
		BpfProgram: undash(f[0]), UID: types.UID(undash(f[1])), Generation: int64(nums[0]),
		Digest: b.Digest, Program: b.Program, AttachPoint: f[10], Pods: r.Pods,
		State: ProgramPhase(state), Reason: reason, Message: r.Message, Signer: b.Signer, VerifiedAt: b.VerifiedAt,
		ID: uint32(nums[2]), Tag: b.Tag, Type: b.Type, Name: b.Name, LoadedAt: loadedAt,
		BytesXlated: b.BytesXlated, BytesJited: b.BytesJited, BytesMemlock: b.BytesMemlock, VerifiedInsns: b.VerifiedInsns,
		MapIDs: mapIDs, BTFID: uint32(nums[3]), LinkID: uint32(nums[4]),
		RunCount: r.RunCount, RunTimeNs: r.RunTimeNs, NsPerRun: r.NsPerRun,
	}, nil
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func undash(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

// unixOrDash is t in Unix seconds, "-" when unset: the agent reports times
// to the second, as metav1.Time's JSON does.
func unixOrDash(t *metav1.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return strconv.FormatInt(t.Unix(), 10)
}

func timeOrNil(s string) (*metav1.Time, error) {
	if s == "-" {
		return nil, nil
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return nil, err
	}
	t := metav1.NewTime(time.Unix(sec, 0))
	return &t, nil
}

func joinIDs(ids []uint32) string {
	if len(ids) == 0 {
		return "-"
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(uint64(id), 10)
	}
	return strings.Join(s, ",")
}

func splitIDs(s string) ([]uint32, error) {
	if s == "-" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	ids := make([]uint32, len(parts))
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return nil, err
		}
		ids[i] = uint32(n)
	}
	return ids, nil
}
