// Package bpffs lays out pins under <root>/<program uid>/ (progs, links,
// maps), mounts bpffs and tracefs when missing, and keeps a small local
// record per BpfProgram of what was loaded, from which digest, with which
// program tags, so that a restarted agent re-adopts instead of reloading.
package bpffs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"
)

// Well-known mount points.
const (
	BPFFSMount   = "/sys/fs/bpf"
	TracefsMount = "/sys/kernel/tracing"
	DefaultRoot  = "/sys/fs/bpf/bpfleet"
)

// MountBPFFS mounts a bpffs at BPFFSMount unless one is there.
func MountBPFFS() error { return ensureMount(BPFFSMount, "bpf", unix.BPF_FS_MAGIC) }

// EnsureBPFFS mounts a bpffs at dir unless one is there, and tells whether
// it had to: a running agent whose bpffs went away (unmounted by hand or by
// a tool cleaning up) has lost its pins and must pin again.
func EnsureBPFFS(dir string) (mounted bool, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && int64(st.Type) == unix.BPF_FS_MAGIC {
		return false, nil
	}
	if err := ensureMount(dir, "bpf", unix.BPF_FS_MAGIC); err != nil {
		return false, err
	}
	return true, nil
}

// MountTracefs mounts tracefs at TracefsMount unless it is there.
func MountTracefs() error { return ensureMount(TracefsMount, "tracefs", unix.TRACEFS_MAGIC) }

func ensureMount(dir, fstype string, magic int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && int64(st.Type) == magic {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mount %s at %s: %w", fstype, dir, err)
	}
	if err := unix.Mount(fstype, dir, fstype, 0, ""); err != nil {
		return fmt.Errorf("mount %s at %s: %w", fstype, dir, err)
	}
	return nil
}

// Layout names the pins of one BpfProgram under a root.
type Layout struct {
	// Root is the bpffs directory holding every BpfProgram's pins.
	Root string
}

// Dir is the directory of a BpfProgram.
func (l Layout) Dir(uid types.UID) string { return filepath.Join(l.Root, string(uid)) }

// Program is the pin of a program.
func (l Layout) Program(uid types.UID, name string) string {
	return filepath.Join(l.Dir(uid), "progs", name)
}

// Map is the pin of a map.
func (l Layout) Map(uid types.UID, name string) string {
	return filepath.Join(l.Dir(uid), "maps", escape(name))
}

// maxPinName keeps pin names under NAME_MAX (255) with room to spare.
const maxPinName = 200

// Link is the pin of the link of program at attach point: program@<escaped
// point>, or program#<hash of point> when that would be too long (deep
// uprobe paths); the record keeps the point of hashed names.
func (l Layout) Link(uid types.UID, program, point string) string {
	name := program + "@" + escape(point)
	if len(name) > maxPinName {
		sum := sha256.Sum256([]byte(point))
		name = program + "#" + hex.EncodeToString(sum[:16])
	}
	return filepath.Join(l.Dir(uid), "links", name)
}

// ErrHashedPin: a link pin's name holds a hash of its attach point, which
// only the record can resolve.
var ErrHashedPin = errors.New("link pin name is hashed")

// ParseLink splits a link pin's file name into program and attach point.
func ParseLink(file string) (program, point string, err error) {
	base := filepath.Base(file)
	if prog, _, ok := strings.Cut(base, "#"); ok && !strings.Contains(prog, "@") {
		return prog, "", fmt.Errorf("parse link pin %s: %w", base, ErrHashedPin)
	}
	prog, esc, ok := strings.Cut(base, "@")
	if !ok {
		return "", "", fmt.Errorf("parse link pin %s: no @", base)
	}
	point, err = url.PathUnescape(esc)
	if err != nil {
		return "", "", fmt.Errorf("parse link pin %s: %w", base, err)
	}
	return prog, point, nil
}

// Links lists the link pins of a BpfProgram.
func (l Layout) Links(uid types.UID) ([]string, error) {
	return list(filepath.Join(l.Dir(uid), "links"))
}

// ErrUnsafeRoot: the pin root is not bpfleet's alone (a bpffs mount root,
// or a directory holding pins bpfleet did not make), so removing what it
// does not know there could delete another tool's pins, e.g. Cilium's.
var ErrUnsafeRoot = errors.New("bpffs root is not bpfleet's own")

// IsUID tells whether name is one bpfleet generates under the root: a
// Kubernetes UID, which is an RFC 4122 UUID in its canonical 36-character
// form.
func IsUID(name string) bool {
	if len(name) != 36 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
		default:
			return false
		}
	}
	return true
}

// Check refuses a root that bpfleet must not manage: the root of a bpffs
// mount (it holds every tool's pins: /sys/fs/bpf/tc, /sys/fs/bpf/cilium),
// or a directory holding anything but BpfProgram pin directories, named by
// UID or known (recorded by this node's agent). A missing root is fine.
func (l Layout) Check(known func(types.UID) bool) error {
	root := filepath.Clean(l.Root)
	var st, parent unix.Stat_t
	switch err := unix.Stat(root, &st); {
	case errors.Is(err, unix.ENOENT):
		return nil
	case err != nil:
		return fmt.Errorf("check bpffs root %s: %w", root, err)
	}
	if err := unix.Stat(filepath.Dir(root), &parent); err != nil {
		return fmt.Errorf("check bpffs root %s: %w", root, err)
	}
	if root == "/" || st.Dev != parent.Dev {
		return fmt.Errorf("check bpffs root %s: %w: it is a mount root, shared with other tools; use a directory of bpfleet's own under it, e.g. %s",
			root, ErrUnsafeRoot, filepath.Join(root, filepath.Base(DefaultRoot)))
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("check bpffs root %s: %w", root, err)
	}
	var foreign []string
	for _, e := range ents {
		if e.IsDir() && (IsUID(e.Name()) || known != nil && known(types.UID(e.Name()))) {
			continue
		}
		foreign = append(foreign, e.Name())
	}
	if len(foreign) > 0 {
		if len(foreign) > 5 {
			foreign = append(foreign[:5], "...")
		}
		return fmt.Errorf("check bpffs root %s: %w: it holds %s, which bpfleet did not make; use a directory of bpfleet's own",
			root, ErrUnsafeRoot, strings.Join(foreign, ", "))
	}
	return nil
}

// UIDs lists the BpfPrograms that have a pin directory: the directories
// named as Kubernetes UIDs. Anything else under the root is not bpfleet's
// and is never listed, so never removed.
func (l Layout) UIDs() ([]types.UID, error) {
	ents, err := os.ReadDir(l.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", l.Root, err)
	}
	var out []types.UID
	for _, e := range ents {
		if e.IsDir() && IsUID(e.Name()) {
			out = append(out, types.UID(e.Name()))
		}
	}
	return out, nil
}

// Prepare creates the directories of a BpfProgram.
func (l Layout) Prepare(uid types.UID) error {
	for _, sub := range []string{"progs", "maps", "links"} {
		if err := os.MkdirAll(filepath.Join(l.Dir(uid), sub), 0o700); err != nil {
			return fmt.Errorf("create pin directory: %w", err)
		}
	}
	return nil
}

// Remove removes every pin of a BpfProgram. Removing a pin does not detach
// a link or free a program another holder keeps open.
func (l Layout) Remove(uid types.UID) error {
	if err := os.RemoveAll(l.Dir(uid)); err != nil {
		return fmt.Errorf("remove pins of %s: %w", uid, err)
	}
	return nil
}

func list(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		out = append(out, filepath.Join(dir, e.Name()))
	}
	return out, nil
}

// escape makes any string a plain pin file name: bytes other than
// [A-Za-z0-9_-] become %XX (bpffs refuses some, e.g. in "a.test:+0x10").
// url.PathUnescape reverses it.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// MapDir is the directory of a BpfProgram's map pins.
func (l Layout) MapDir(uid types.UID) string { return filepath.Join(l.Dir(uid), "maps") }

// MapName returns the map name of a map pin's file name.
func MapName(file string) string {
	name, err := url.PathUnescape(filepath.Base(file))
	if err != nil {
		return filepath.Base(file)
	}
	return name
}
