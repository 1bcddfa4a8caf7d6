package bpffs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/nodeagent/internal/loader"
)

// RecordVersion is the version of the record format.
const RecordVersion = 1

// Record is what the agent loaded for one BpfProgram.
type Record struct {
	// Version is RecordVersion.
	Version int `json:"version"`
	// UID and Name identify the BpfProgram.
	UID  types.UID `json:"uid"`
	Name string    `json:"name"`
	// Digest is the bundle digest loaded.
	Digest string `json:"digest"`
	// LoadHash is a hash of what decides the loaded code (digest and
	// constants); a different one needs a reload.
	LoadHash string `json:"loadHash"`
	// Programs are the loaded programs by name.
	Programs map[string]ProgramRecord `json:"programs,omitempty"`
	// Links are the attach points of the pinned links.
	Links []LinkRecord `json:"links,omitempty"`
	// Maps are the names of the pinned maps.
	Maps []string `json:"maps,omitempty"`
	// Object is the bundle object the programs come from.
	Object string `json:"object,omitempty"`
	// MapEntries are the entries last written, hex, to delete the stale ones.
	MapEntries []EntryRecord `json:"mapEntries,omitempty"`
	// MapEntriesHash is a hash of the spec's mapEntries last written.
	MapEntriesHash string `json:"mapEntriesHash,omitempty"`
}

// ProgramRecord is one loaded program.
type ProgramRecord struct {
	// Tag is the kernel's program tag, hex.
	Tag string `json:"tag"`
	// ID is the kernel's program id when loaded.
	ID uint32 `json:"id"`
}

// LinkRecord is one pinned link.
type LinkRecord struct {
	// Program is the program's name in the bundle.
	Program string `json:"program"`
	// Point is the attach point.
	Point string `json:"point"`
	// Kind is the attach kind (format.AttachKind); empty in records of
	// agents before it was stored, whose kind is read from Point.
	Kind string `json:"kind,omitempty"`
}

// EntryRecord is one map entry written, hex.
type EntryRecord struct {
	Map   string `json:"map"`
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Node is the node-wide record: the boot and kernel the pins belong to.
type Node struct {
	// BootID is /proc/sys/kernel/random/boot_id.
	BootID string `json:"bootID"`
	// KernelRelease is uname -r.
	KernelRelease string `json:"kernelRelease"`
}

// LoadHash hashes what decides the loaded code of a BpfProgram: the digest,
// the constants and the attach parameters fixed at load time (loadKeys, e.g.
// a fentry's function), all order-insensitive.
func LoadHash(digest string, consts []loader.Constant, loadKeys ...string) string {
	cs := make([]string, 0, len(consts))
	for _, c := range consts {
		cs = append(cs, c.Name+"="+c.Value)
	}
	slices.Sort(cs)
	keys := append([]string(nil), loadKeys...)
	slices.Sort(keys)
	h := sha256.Sum256([]byte(digest + "\n" + strings.Join(cs, "\n") + "\n\n" + strings.Join(keys, "\n")))
	return hex.EncodeToString(h[:])
}

// Store keeps records as JSON files in a directory, written atomically.
type Store struct {
	// Dir holds <uid>.json and node.json.
	Dir string
}

func (s Store) path(uid types.UID) string {
	return filepath.Join(s.Dir, "programs", string(uid)+".json")
}

// ErrRecordInvalid: a record read back from disk names something that
// cannot be a pin (a path, "..", an empty name) or another BpfProgram.
var ErrRecordInvalid = errors.New("invalid record")

// Get reads the record of uid; ok is false when there is none. A record is
// input like any other: one whose uid is not the one asked for, or whose
// program or link names are no plain file names (Layout would build pin
// paths outside the BpfProgram's directory from them), wraps
// ErrRecordInvalid.
func (s Store) Get(uid types.UID) (rec Record, ok bool, err error) {
	if err := checkName("uid", string(uid)); err != nil {
		return Record{}, false, fmt.Errorf("read record: %w", err)
	}
	ok, err = readJSON(s.path(uid), &rec)
	if err != nil || !ok {
		return Record{}, ok, err
	}
	if rec.Version != RecordVersion {
		return Record{}, false, fmt.Errorf("read record %s: version %d, want %d", uid, rec.Version, RecordVersion)
	}
	if err := rec.check(uid); err != nil {
		return Record{}, false, fmt.Errorf("read record %s: %w", uid, err)
	}
	return rec, true, nil
}

// check refuses a record that is not uid's or names a pin by a path.
func (rec *Record) check(uid types.UID) error {
	if rec.UID != uid {
		return fmt.Errorf("%w: it is the record of %q", ErrRecordInvalid, rec.UID)
	}
	for name := range rec.Programs {
		if err := checkName("program", name); err != nil {
			return err
		}
	}
	for _, l := range rec.Links {
		if err := checkName("link program", l.Program); err != nil {
			return err
		}
	}
	return nil
}

// checkName refuses what cannot be one path element under a pin directory.
func checkName(what, name string) error {
	if name == "" || name == "." || name == ".." || len(name) > maxPinName || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%w: %s %q is not a plain file name", ErrRecordInvalid, what, name)
	}
	return nil
}

// Put writes the record of rec.UID atomically.
func (s Store) Put(rec Record) error {
	if err := checkName("uid", string(rec.UID)); err != nil {
		return fmt.Errorf("write record: %w", err)
	}
	rec.Version = RecordVersion
	return writeJSON(s.path(rec.UID), rec)
}

// Delete removes the record of uid.
func (s Store) Delete(uid types.UID) error {
	if err := os.Remove(s.path(uid)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete record %s: %w", uid, err)
	}
	return nil
}

// List returns the uids that have a record.
func (s Store) List() ([]types.UID, error) {
	ents, err := os.ReadDir(filepath.Join(s.Dir, "programs"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	var out []types.UID
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			out = append(out, types.UID(name))
		}
	}
	return out, nil
}

// Node reads the node record; ok is false when there is none.
func (s Store) Node() (n Node, ok bool, err error) {
	ok, err = readJSON(filepath.Join(s.Dir, "node.json"), &n)
	return n, ok, err
}

// PutNode writes the node record atomically.
func (s Store) PutNode(n Node) error { return writeJSON(filepath.Join(s.Dir, "node.json"), n) }

func readJSON(path string, v any) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read record: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("decode record %s: %w", path, err)
	}
	return true, nil
}

// writeJSON writes to a temporary file in the same directory, syncs it and
// renames it over path, so a crash leaves the old or the new record.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode record: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write record: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("write record: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write record: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write record: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write record: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write record: %w", err)
	}
	return nil
}
