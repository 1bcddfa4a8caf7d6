package format

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/bundles"
)

// Manifest is the bundle manifest: the JSON config blob of a bundle.
type Manifest struct {
	// SchemaVersion is the manifest schema version, SchemaVersion.
	SchemaVersion int `json:"schemaVersion"`
	// Name of the bundle, e.g. xdp-pod-filter.
	Name string `json:"name"`
	// Version of the bundle, free form (semver recommended).
	Version string `json:"version,omitempty"`
	// Description is free text for humans.
	Description string `json:"description,omitempty"`
	// Objects are the ELF files, one layer each.
	Objects []Object `json:"objects"`
	// Programs are the programs users may attach.
	Programs []Program `json:"programs"`
	// Maps are the maps the objects declare.
	Maps []Map `json:"maps,omitempty"`
	// MetricMaps name maps (in Maps) whose values are exported as metrics.
	MetricMaps []string `json:"metricMaps,omitempty"`
	// Outputs are the maps the programs write events to, each with the BTF
	// type of its records: readers decode any bundle's events from them.
	Outputs []Output `json:"outputs,omitempty"`
	// MinKernel is the oldest kernel release the bundle supports, e.g. "6.1".
	MinKernel string `json:"minKernel,omitempty"`
	// RequiredFeatures name kernel features the programs need.
	RequiredFeatures []string `json:"requiredFeatures,omitempty"`
}

// Object is one ELF file of the bundle.
type Object struct {
	// Name is the file name, never a path.
	Name string `json:"name"`
	// Digest is the layer digest, sha256:<hex>.
	Digest string `json:"digest"`
	// Size is the layer size in bytes.
	Size int64 `json:"size"`
	// Endianness is "little" or "big".
	Endianness string `json:"endianness"`
}

// Program is one eBPF program of the bundle.
type Program struct {
	// Name is the program (function) name in the ELF.
	Name string `json:"name"`
	// Object is the Object.Name that holds the program.
	Object string `json:"object"`
	// Section is the ELF section, e.g. "xdp" or "tracepoint/syscalls/sys_enter_openat".
	Section string `json:"section"`
	// Type is the program type in kernel lower case (see ProgramTypeName).
	Type string `json:"type"`
	// AttachType is the cilium/ebpf AttachType name (see AttachTypeName), or "".
	AttachType string `json:"attachType,omitempty"`
	// License is the license the ELF declares.
	License string `json:"license"`
	// Attach is the default attach hint.
	Attach AttachHint `json:"attach"`
}

// AttachHint says how a program is meant to be attached by default.
type AttachHint struct {
	// Kind is one of AttachKinds.
	Kind string `json:"kind"`
	// Target is an optional default target (function, tracepoint group/name, ...).
	Target string `json:"target,omitempty"`
}

// Map is one map declared by an object.
type Map struct {
	// Name is the map name in the ELF.
	Name string `json:"name"`
	// Object is the Object.Name that declares the map.
	Object string `json:"object"`
	// Type is the map type in lower case (see MapTypeName).
	Type string `json:"type"`
	// KeySize in bytes.
	KeySize uint32 `json:"keySize"`
	// ValueSize in bytes.
	ValueSize uint32 `json:"valueSize"`
	// MaxEntries is the declared capacity.
	MaxEntries uint32 `json:"maxEntries"`
	// Preserve carries the map across versions: an agent upgrading a
	// BpfProgram to another digest (or reloading it) re-uses the running
	// map of this name, with its contents, instead of creating a new one.
	// It refuses the upgrade when the running map's type, key size, value
	// size, max entries or flags differ. Only PreservableMapTypes.
	Preserve bool `json:"preserve,omitempty"`
}

// Output is a map the programs write event records to.
type Output struct {
	// Map is the ring buffer or perf event array, one of Maps.
	Map string `json:"map"`
	// Record is the name of the records' struct in the object's BTF.
	Record string `json:"record"`
	// RecordSize is that struct's size in bytes.
	RecordSize uint32 `json:"recordSize"`
	// Drops, when set, is where the programs count the records they could
	// not write to Map (a full ring buffer); agents export it per program as
	// bpfleet_events_dropped_total{reason="kernel"}.
	Drops DropCounter `json:"drops,omitzero"`
}

// DropCounter is a 64-bit counter at Index of an array or per-CPU array map
// (summed over CPUs).
type DropCounter struct {
	// Map is the array, one of Maps.
	Map string `json:"map"`
	// Index is the counter's key.
	Index uint32 `json:"index"`
}

// DropMapTypes are the map types a DropCounter may name.
var DropMapTypes = []string{MapTypeName(ebpf.Array), MapTypeName(ebpf.PerCPUArray)}

// PreservableMapTypes are the map types a Map may Preserve: maps holding
// plain data. Program arrays, map-in-maps, devmaps, cpumaps, XSK maps,
// sockmaps, reuseport arrays and cgroup arrays hold references to kernel
// objects the previous version made (programs, maps, sockets, devices);
// perf event arrays and ring buffers are event streams whose readers
// belong to a version; socket, inode, task and cgroup storage live and die
// with their objects. Refused for now, so a later kernel type is refused
// until it is known to be plain data.
var PreservableMapTypes = []string{
	MapTypeName(ebpf.Hash), MapTypeName(ebpf.Array), MapTypeName(ebpf.PerCPUHash), MapTypeName(ebpf.PerCPUArray),
	MapTypeName(ebpf.LRUHash), MapTypeName(ebpf.LRUCPUHash), MapTypeName(ebpf.LPMTrie),
	MapTypeName(ebpf.Queue), MapTypeName(ebpf.Stack), MapTypeName(ebpf.BloomFilter),
}

// OutputMapTypes are the map types an Output may name.
var OutputMapTypes = []string{MapTypeName(ebpf.RingBuf), MapTypeName(ebpf.PerfEventArray)}

// ParseManifest decodes a config blob strictly: unknown fields, trailing
// data and blobs over MaxConfigSize are refused, and the result is validated.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("%w: manifest is %d bytes, limit %d", bundles.ErrTooLarge, len(data), MaxConfigSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: decode manifest: %w", bundles.ErrBundleInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: decode manifest: trailing data after the JSON object", bundles.ErrBundleInvalid)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Marshal encodes the manifest as the config blob, after validating it.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	data, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("%w: manifest is %d bytes, limit %d", bundles.ErrTooLarge, len(data), MaxConfigSize)
	}
	return data, nil
}

var (
	digestPattern = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
	// identPattern: ELF symbol-like names (programs, maps).
	identPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)
	// bundleNamePattern: DNS-label-like bundle names.
	bundleNamePattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$`)
	// kernelPattern: "6", "6.1", "6.1.12".
	kernelPattern = regexp.MustCompile(`^[0-9]+(\.[0-9]+){0,2}$`)
)

// Validate checks the manifest against the format rules and limits. Errors
// wrap bundles.ErrTooLarge for limits and bundles.ErrBundleInvalid otherwise,
// and name the offending field (e.g. programs[2].name).
func (m *Manifest) Validate() error {
	if m.SchemaVersion != SchemaVersion {
		return invalid("schemaVersion", "is %d, want %d", m.SchemaVersion, SchemaVersion)
	}
	if err := checkName("name", m.Name, bundleNamePattern); err != nil {
		return err
	}
	if err := checkText("version", m.Version, MaxNameLength); err != nil {
		return err
	}
	if err := checkText("description", m.Description, MaxDescriptionLength); err != nil {
		return err
	}
	if m.MinKernel != "" && !kernelPattern.MatchString(m.MinKernel) {
		return invalid("minKernel", "%q is not a kernel release like 6.1", m.MinKernel)
	}
	if err := checkCount("objects", len(m.Objects), MaxObjects); err != nil {
		return err
	}
	if len(m.Objects) == 0 {
		return invalid("objects", "no object")
	}
	objects := make(map[string]bool, len(m.Objects))
	for i, o := range m.Objects {
		field := fmt.Sprintf("objects[%d]", i)
		if err := CheckFileName(o.Name); err != nil {
			return fmt.Errorf("%s.name: %w", field, err)
		}
		if objects[o.Name] {
			return invalid(field+".name", "duplicate object %q", o.Name)
		}
		objects[o.Name] = true
		if !digestPattern.MatchString(o.Digest) {
			return invalid(field+".digest", "%q is not sha256:<64 hex>", o.Digest)
		}
		if o.Size <= 0 {
			return invalid(field+".size", "is %d", o.Size)
		}
		if o.Size > MaxObjectSize {
			return tooLarge(field+".size", "is %d bytes, limit %d", o.Size, MaxObjectSize)
		}
		if o.Endianness != LittleEndian && o.Endianness != BigEndian {
			return invalid(field+".endianness", "%q is neither little nor big", o.Endianness)
		}
	}
	if err := checkCount("programs", len(m.Programs), MaxPrograms); err != nil {
		return err
	}
	if len(m.Programs) == 0 {
		return invalid("programs", "no program")
	}
	programs := make(map[string]bool, len(m.Programs))
	for i, p := range m.Programs {
		field := fmt.Sprintf("programs[%d]", i)
		if err := checkName(field+".name", p.Name, identPattern); err != nil {
			return err
		}
		if programs[p.Name] {
			return invalid(field+".name", "duplicate program %q", p.Name)
		}
		programs[p.Name] = true
		if !objects[p.Object] {
			return invalid(field+".object", "%q is not in objects", p.Object)
		}
		if err := checkText(field+".section", p.Section, MaxNameLength); err != nil {
			return err
		}
		if p.Section == "" {
			return invalid(field+".section", "is empty")
		}
		if _, err := ParseProgramType(p.Type); err != nil {
			return fmt.Errorf("%s.type: %w", field, err)
		}
		if p.AttachType != "" {
			if _, err := ParseAttachType(p.AttachType); err != nil {
				return fmt.Errorf("%s.attachType: %w", field, err)
			}
		}
		if err := checkText(field+".license", p.License, MaxNameLength); err != nil {
			return err
		}
		if kinds := AttachKinds(); !slices.Contains(kinds, p.Attach.Kind) {
			return invalid(field+".attach.kind", "%q is not one of %s", p.Attach.Kind, strings.Join(kinds, ", "))
		}
		if err := checkText(field+".attach.target", p.Attach.Target, MaxNameLength*4); err != nil {
			return err
		}
	}
	if err := checkCount("maps", len(m.Maps), MaxMaps); err != nil {
		return err
	}
	maps := make(map[string]bool, len(m.Maps))
	var mapBytes uint64
	for i, mp := range m.Maps {
		field := fmt.Sprintf("maps[%d]", i)
		if err := checkName(field+".name", mp.Name, identPattern); err != nil {
			return err
		}
		if maps[mp.Name] {
			return invalid(field+".name", "duplicate map %q", mp.Name)
		}
		maps[mp.Name] = true
		if !objects[mp.Object] {
			return invalid(field+".object", "%q is not in objects", mp.Object)
		}
		if mp.Type == "" || len(mp.Type) > MaxNameLength {
			return invalid(field+".type", "%q is not a map type", mp.Type)
		}
		n := MapBytes(mp.Type, mp.KeySize, mp.ValueSize, mp.MaxEntries, 1)
		if n > MaxMapBytes {
			return tooLarge(field, "%s declares %d bytes (%s, key %d + value %d × %d entries, kernel overhead included), limit %d",
				mp.Name, n, mp.Type, mp.KeySize, mp.ValueSize, mp.MaxEntries, MaxMapBytes)
		}
		mapBytes += n
		if mp.Preserve && !slices.Contains(PreservableMapTypes, mp.Type) {
			return invalid(field+".preserve", "map %q is a %s, which cannot be preserved across versions (only %s)",
				mp.Name, mp.Type, strings.Join(PreservableMapTypes, ", "))
		}
	}
	if mapBytes > MaxBundleMapBytes {
		return tooLarge("maps", "declare %d bytes together, limit %d", mapBytes, MaxBundleMapBytes)
	}
	if err := checkCount("metricMaps", len(m.MetricMaps), MaxMaps); err != nil {
		return err
	}
	for i, name := range m.MetricMaps {
		if !maps[name] {
			return invalid(fmt.Sprintf("metricMaps[%d]", i), "%q is not in maps", name)
		}
	}
	if err := m.validateOutputs(); err != nil {
		return err
	}
	if err := checkCount("requiredFeatures", len(m.RequiredFeatures), MaxMaps); err != nil {
		return err
	}
	for i, f := range m.RequiredFeatures {
		if err := checkName(fmt.Sprintf("requiredFeatures[%d]", i), f, identPattern); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manifest) validateOutputs() error {
	if err := checkCount("outputs", len(m.Outputs), MaxMaps); err != nil {
		return err
	}
	seen := make(map[string]bool, len(m.Outputs))
	for i, o := range m.Outputs {
		field := fmt.Sprintf("outputs[%d]", i)
		mp, ok := m.Map(o.Map)
		if !ok {
			return invalid(field+".map", "%q is not in maps", o.Map)
		}
		if !slices.Contains(OutputMapTypes, mp.Type) {
			return invalid(field+".map", "%q is a %s, not one of %s", o.Map, mp.Type, strings.Join(OutputMapTypes, ", "))
		}
		if seen[o.Map] {
			return invalid(field+".map", "duplicate output %q", o.Map)
		}
		seen[o.Map] = true
		if err := checkName(field+".record", o.Record, identPattern); err != nil {
			return err
		}
		if o.RecordSize == 0 || o.RecordSize > MaxRecordSize {
			return invalid(field+".recordSize", "is %d, want 1 to %d", o.RecordSize, MaxRecordSize)
		}
		if err := m.validateDrops(field+".drops", o.Drops); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manifest) validateDrops(field string, d DropCounter) error {
	if d == (DropCounter{}) {
		return nil
	}
	mp, ok := m.Map(d.Map)
	switch {
	case !ok:
		return invalid(field+".map", "%q is not in maps", d.Map)
	case !slices.Contains(DropMapTypes, mp.Type):
		return invalid(field+".map", "%q is a %s, not one of %s", d.Map, mp.Type, strings.Join(DropMapTypes, ", "))
	case mp.KeySize != 4 || mp.ValueSize < 8:
		return invalid(field+".map", "%q has %d-byte keys and %d-byte values, want 4 and at least 8", d.Map, mp.KeySize, mp.ValueSize)
	case d.Index >= mp.MaxEntries:
		return invalid(field+".index", "is %d, %q has %d entries", d.Index, d.Map, mp.MaxEntries)
	}
	return nil
}

// Map returns the named map of the manifest.
func (m *Manifest) Map(name string) (*Map, bool) {
	for i := range m.Maps {
		if m.Maps[i].Name == name {
			return &m.Maps[i], true
		}
	}
	return nil, false
}

// Program returns the named program of the manifest.
func (m *Manifest) Program(name string) (*Program, bool) {
	for i := range m.Programs {
		if m.Programs[i].Name == name {
			return &m.Programs[i], true
		}
	}
	return nil, false
}

// CheckFileName refuses object names that could be used as a path: empty,
// too long, containing '/', '\\', NUL or control characters, or "." / "..".
func CheckFileName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: file name is empty", bundles.ErrBundleInvalid)
	case len(name) > MaxNameLength:
		return fmt.Errorf("%w: file name is %d bytes, limit %d", bundles.ErrTooLarge, len(name), MaxNameLength)
	case name == "." || name == ".." || strings.HasPrefix(name, ".."):
		return fmt.Errorf("%w: file name %q is a path", bundles.ErrBundleInvalid, name)
	case strings.ContainsAny(name, "/\\"):
		return fmt.Errorf("%w: file name %q contains a path separator", bundles.ErrBundleInvalid, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: file name %q contains a control character", bundles.ErrBundleInvalid, name)
		}
	}
	return nil
}

func checkName(field, value string, pattern *regexp.Regexp) error {
	if len(value) > MaxNameLength {
		return tooLarge(field, "is %d bytes, limit %d", len(value), MaxNameLength)
	}
	if !pattern.MatchString(value) {
		return invalid(field, "%q does not match %s", value, pattern)
	}
	return nil
}

func checkText(field, value string, limit int) error {
	if len(value) > limit {
		return tooLarge(field, "is %d bytes, limit %d", len(value), limit)
	}
	for _, r := range value {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
			return invalid(field, "contains a control character")
		}
	}
	return nil
}

func checkCount(field string, n, limit int) error {
	if n > limit {
		return tooLarge(field, "has %d entries, limit %d", n, limit)
	}
	return nil
}

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s %s", bundles.ErrBundleInvalid, field, fmt.Sprintf(format, args...))
}

func tooLarge(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s %s", bundles.ErrTooLarge, field, fmt.Sprintf(format, args...))
}
