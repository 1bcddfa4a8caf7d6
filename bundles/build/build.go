// Package build turns a directory with a bundle.yaml and its ELF objects into
// a bundle in a content-addressed OCI layout. Program sections, types, attach
// types, licenses and maps come from parsing the ELF with cilium/ebpf, never
// from the user. Builds are reproducible: the same inputs give the same digest.
package build

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content/oci"
	"sigs.k8s.io/yaml"

	"github.com/bpfleet/bpfleet/api/hooks"
	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/bundles/internal/ocibundle"
)

// SpecFile is the file name Build reads in a bundle directory.
const SpecFile = "bundle.yaml"

// MaxSpecSize bounds bundle.yaml.
const MaxSpecSize = 256 << 10

// Spec is bundle.yaml.
type Spec struct {
	// Name of the bundle.
	Name string `json:"name"`
	// Version of the bundle.
	Version string `json:"version,omitempty"`
	// Description for humans.
	Description string `json:"description,omitempty"`
	// Objects are the ELF files, relative to bundle.yaml.
	Objects []SpecObject `json:"objects"`
	// Programs users may attach.
	Programs []SpecProgram `json:"programs"`
	// MetricMaps name maps exported as metrics.
	MetricMaps []string `json:"metricMaps,omitempty"`
	// Maps say what to do with maps of the objects, by name; a map not
	// listed gets the defaults.
	Maps []SpecMap `json:"maps,omitempty"`
	// Outputs are the maps the programs write events to, with the BTF
	// struct of their records.
	Outputs []SpecOutput `json:"outputs,omitempty"`
	// MinKernel is the oldest supported kernel release, e.g. "6.1".
	MinKernel string `json:"minKernel,omitempty"`
	// RequiredFeatures name kernel features the programs need.
	RequiredFeatures []string `json:"requiredFeatures,omitempty"`
}

// SpecObject is one ELF file of bundle.yaml.
type SpecObject struct {
	// File is the ELF file, relative to bundle.yaml, never with "..". The
	// bundle stores it under its base name.
	File string `json:"file"`
}

// SpecMap is one map of bundle.yaml.
type SpecMap struct {
	// Name of the map in an object; the build fails when none declares it.
	Name string `json:"name"`
	// Preserve carries the map's contents across versions (see
	// format.Map.Preserve); only plain-data map types
	// (format.PreservableMapTypes).
	Preserve bool `json:"preserve,omitempty"`
}

// SpecOutput is one event output of bundle.yaml.
type SpecOutput struct {
	// Map is the ring buffer or perf event array.
	Map string `json:"map"`
	// Record is the struct its records are, as named in the object's BTF.
	Record string `json:"record"`
	// Drops names the programs' counter of records lost to a full output.
	Drops format.DropCounter `json:"drops,omitzero"`
}

// SpecProgram is one program of bundle.yaml.
type SpecProgram struct {
	// Name of the program in the ELF.
	Name string `json:"name"`
	// Object is the file holding the program; needed only when several do.
	Object string `json:"object,omitempty"`
	// Attach is the attach kind (format.AttachKinds); the ELF program's
	// type must fit it (e.g. cgroup takes cgroup_* and sock_ops programs).
	Attach string `json:"attach"`
	// Type, when set, is the program type the author means to ship (e.g.
	// cgroup_skb); the build fails when the ELF holds another.
	Type string `json:"type,omitempty"`
	// Target is an optional default attach target.
	Target string `json:"target,omitempty"`
}

// Options say where Build writes.
type Options struct {
	// LayoutDir is the OCI layout directory (created if missing).
	LayoutDir string
	// Tag is the tag given to the bundle in the layout (a reference's tag,
	// e.g. "0.1.0"); empty means "latest".
	Tag string
}

// Result describes a built bundle.
type Result struct {
	// Digest of the OCI image manifest.
	Digest string
	// Tag it was given in the layout.
	Tag string
	// Manifest is the bundle manifest written in the config blob.
	Manifest *format.Manifest
	// Size is the total size of manifest, config and layers.
	Size int64
}

// ParseSpec decodes bundle.yaml strictly (unknown fields refused) and checks
// what can be checked without the ELF files. Errors wrap
// bundles.ErrBundleInvalid or ErrTooLarge.
func ParseSpec(data []byte) (*Spec, error) {
	if len(data) > MaxSpecSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, limit %d", bundles.ErrTooLarge, SpecFile, len(data), MaxSpecSize)
	}
	var s Spec
	if err := yaml.UnmarshalStrict(data, &s); err != nil {
		return nil, fmt.Errorf("%w: decode %s: %w", bundles.ErrBundleInvalid, SpecFile, err)
	}
	if len(s.Objects) == 0 {
		return nil, fmt.Errorf("%w: %s: objects is empty", bundles.ErrBundleInvalid, SpecFile)
	}
	if len(s.Objects) > format.MaxObjects {
		return nil, fmt.Errorf("%w: %s: %d objects, limit %d", bundles.ErrTooLarge, SpecFile, len(s.Objects), format.MaxObjects)
	}
	if len(s.Programs) == 0 {
		return nil, fmt.Errorf("%w: %s: programs is empty", bundles.ErrBundleInvalid, SpecFile)
	}
	if len(s.Programs) > format.MaxPrograms {
		return nil, fmt.Errorf("%w: %s: %d programs, limit %d", bundles.ErrTooLarge, SpecFile, len(s.Programs), format.MaxPrograms)
	}
	names := map[string]bool{}
	for i, o := range s.Objects {
		if err := checkRelativeFile(o.File); err != nil {
			return nil, fmt.Errorf("%s: objects[%d].file: %w", SpecFile, i, err)
		}
		base := filepath.Base(o.File)
		if names[base] {
			return nil, fmt.Errorf("%w: %s: objects[%d].file: two objects named %q", bundles.ErrBundleInvalid, SpecFile, i, base)
		}
		names[base] = true
	}
	programs := map[string]bool{}
	for i, p := range s.Programs {
		if programs[p.Name] {
			return nil, fmt.Errorf("%w: %s: programs[%d].name: duplicate program %q", bundles.ErrBundleInvalid, SpecFile, i, p.Name)
		}
		programs[p.Name] = true
		if p.Object != "" && !names[p.Object] {
			return nil, fmt.Errorf("%w: %s: programs[%d].object: %q is not in objects", bundles.ErrBundleInvalid, SpecFile, i, p.Object)
		}
		if kinds := format.AttachKinds(); !slices.Contains(kinds, p.Attach) {
			return nil, fmt.Errorf("%w: %s: programs[%d].attach: %q is not one of %s", bundles.ErrBundleInvalid, SpecFile, i, p.Attach, strings.Join(kinds, ", "))
		}
	}
	seenMaps := map[string]bool{}
	for i, mp := range s.Maps {
		if mp.Name == "" {
			return nil, fmt.Errorf("%w: %s: maps[%d].name is empty", bundles.ErrBundleInvalid, SpecFile, i)
		}
		if seenMaps[mp.Name] {
			return nil, fmt.Errorf("%w: %s: maps[%d].name: duplicate map %q", bundles.ErrBundleInvalid, SpecFile, i, mp.Name)
		}
		seenMaps[mp.Name] = true
	}
	return &s, nil
}

// checkRelativeFile refuses absolute paths, "..", and names the bundle
// could not store.
func checkRelativeFile(file string) error {
	if file == "" || !filepath.IsLocal(file) || strings.Contains(file, "\\") {
		return fmt.Errorf("%w: %q is not a local path below bundle.yaml", bundles.ErrBundleInvalid, file)
	}
	return format.CheckFileName(filepath.Base(file))
}

// ReadSpec reads and parses dir/bundle.yaml.
func ReadSpec(dir string) (*Spec, error) {
	data, err := readLimited(filepath.Join(dir, SpecFile), MaxSpecSize)
	if err != nil {
		return nil, err
	}
	return ParseSpec(data)
}

// Build reads dir's bundle.yaml and ELF files and writes the bundle to the
// OCI layout opts.LayoutDir, tagged opts.Tag.
func Build(ctx context.Context, dir string, opts Options) (Result, error) {
	spec, err := ReadSpec(dir)
	if err != nil {
		return Result{}, err
	}
	m := &format.Manifest{
		SchemaVersion:    format.SchemaVersion,
		Name:             spec.Name,
		Version:          spec.Version,
		Description:      spec.Description,
		MetricMaps:       spec.MetricMaps,
		MinKernel:        spec.MinKernel,
		RequiredFeatures: spec.RequiredFeatures,
	}
	type object struct {
		name string
		data []byte
		coll *ebpf.CollectionSpec
	}
	objects := make([]object, 0, len(spec.Objects))
	layers := make(map[string][]byte, len(spec.Objects))
	var layerDescs []ocispec.Descriptor
	for _, so := range spec.Objects {
		data, err := readLimited(filepath.Join(dir, so.File), format.MaxObjectSize)
		if err != nil {
			return Result{}, err
		}
		coll, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(data))
		if err != nil {
			return Result{}, fmt.Errorf("%w: parse ELF %s: %w", bundles.ErrBundleInvalid, so.File, err)
		}
		o := object{name: filepath.Base(so.File), data: data, coll: coll}
		objects = append(objects, o)
		endian := format.LittleEndian
		if coll.ByteOrder == binary.BigEndian {
			endian = format.BigEndian
		}
		d := format.Digest(data)
		layers[d] = data
		m.Objects = append(m.Objects, format.Object{Name: o.name, Digest: d, Size: int64(len(data)), Endianness: endian})
		layerDescs = append(layerDescs, ocispec.Descriptor{
			MediaType: format.ELFMediaType,
			Digest:    digest.Digest(d),
			Size:      int64(len(data)),
			Annotations: map[string]string{
				format.AnnotationTitle:      o.name,
				format.AnnotationEndianness: endian,
			},
		})
		mapNames := make([]string, 0, len(coll.Maps))
		for name := range coll.Maps {
			if !strings.HasPrefix(name, ".") { // .rodata, .data, .bss: constants, not user maps
				mapNames = append(mapNames, name)
			}
		}
		slices.Sort(mapNames)
		for _, name := range mapNames {
			ms := coll.Maps[name]
			m.Maps = append(m.Maps, format.Map{
				Name: name, Object: o.name, Type: format.MapTypeName(ms.Type),
				KeySize: ms.KeySize, ValueSize: ms.ValueSize, MaxEntries: ms.MaxEntries,
			})
		}
	}
	for i, sm := range spec.Maps {
		j := slices.IndexFunc(m.Maps, func(mp format.Map) bool { return mp.Name == sm.Name })
		if j < 0 {
			return Result{}, fmt.Errorf("%w: %s: maps[%d]: map %q is not in any object (maps: %s)", bundles.ErrBundleInvalid, SpecFile, i, sm.Name,
				objectNames(m.Maps, func(mp format.Map) string { return mp.Name }))
		}
		if sm.Preserve && !slices.Contains(format.PreservableMapTypes, m.Maps[j].Type) {
			return Result{}, fmt.Errorf("%w: %s: maps[%d]: map %q is a %s, which cannot be preserved across versions (only %s)",
				bundles.ErrBundleInvalid, SpecFile, i, sm.Name, m.Maps[j].Type, strings.Join(format.PreservableMapTypes, ", "))
		}
		m.Maps[j].Preserve = sm.Preserve
	}
	for i, sp := range spec.Programs {
		var found *ebpf.ProgramSpec
		var in string
		for _, o := range objects {
			if sp.Object != "" && sp.Object != o.name {
				continue
			}
			if ps, ok := o.coll.Programs[sp.Name]; ok {
				if found != nil {
					return Result{}, fmt.Errorf("%w: %s: programs[%d]: %q is in both %s and %s; set object", bundles.ErrBundleInvalid, SpecFile, i, sp.Name, in, o.name)
				}
				found, in = ps, o.name
			}
		}
		if found == nil {
			return Result{}, fmt.Errorf("%w: %s: programs[%d]: program %q is not in any object (%s)", bundles.ErrBundleInvalid, SpecFile, i, sp.Name, objectNames(objects, func(o object) string { return o.name }))
		}
		typ, err := format.ProgramTypeName(found.Type)
		if err != nil {
			return Result{}, fmt.Errorf("%s: programs[%d] %q: %w", SpecFile, i, sp.Name, err)
		}
		if sp.Type != "" && sp.Type != typ {
			return Result{}, fmt.Errorf("%w: %s: programs[%d] %q: declared type %s, the ELF program (section %s) is %s",
				bundles.ErrBundleInvalid, SpecFile, i, sp.Name, sp.Type, found.SectionName, typ)
		}
		if !hooks.KindFits(sp.Attach, found.Type, found.AttachType) {
			return Result{}, fmt.Errorf("%w: %s: programs[%d] %q: a %s program (section %s) cannot be attached as %s",
				bundles.ErrBundleInvalid, SpecFile, i, sp.Name, typ, found.SectionName, sp.Attach)
		}
		m.Programs = append(m.Programs, format.Program{
			Name:       sp.Name,
			Object:     in,
			Section:    found.SectionName,
			Type:       typ,
			AttachType: format.AttachTypeName(found.Type, found.AttachType),
			License:    found.License,
			Attach:     format.AttachHint{Kind: sp.Attach, Target: sp.Target},
		})
	}
	for i, so := range spec.Outputs {
		var out *format.Output
		for _, o := range objects {
			if _, ok := o.coll.Maps[so.Map]; !ok {
				continue
			}
			size, err := recordSize(o.coll, so.Record)
			if err != nil {
				return Result{}, fmt.Errorf("%w: %s: outputs[%d]: %s: %w", bundles.ErrBundleInvalid, SpecFile, i, o.name, err)
			}
			out = &format.Output{Map: so.Map, Record: so.Record, RecordSize: size, Drops: so.Drops}
		}
		if out == nil {
			return Result{}, fmt.Errorf("%w: %s: outputs[%d]: map %q is not in any object", bundles.ErrBundleInvalid, SpecFile, i, so.Map)
		}
		m.Outputs = append(m.Outputs, *out)
	}
	config, err := m.Marshal()
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", SpecFile, err)
	}
	im := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: format.ArtifactType,
		Config: ocispec.Descriptor{
			MediaType: format.ConfigMediaType,
			Digest:    digest.Digest(format.Digest(config)),
			Size:      int64(len(config)),
		},
		Layers: layerDescs,
	}
	raw, err := json.Marshal(im)
	if err != nil {
		return Result{}, fmt.Errorf("encode image manifest: %w", err)
	}
	b, err := format.Assemble(format.Parts{
		Digest: format.Digest(raw), ImageManifest: raw, Config: config, Layers: layers,
	})
	if err == nil {
		err = b.CheckObjects()
	}
	if err != nil {
		return Result{}, fmt.Errorf("check built bundle: %w", err)
	}
	store, err := oci.NewWithContext(ctx, opts.LayoutDir)
	if err != nil {
		return Result{}, fmt.Errorf("open layout %s: %w", opts.LayoutDir, err)
	}
	desc, err := ocibundle.Write(ctx, store, b)
	if err != nil {
		return Result{}, fmt.Errorf("write layout %s: %w", opts.LayoutDir, err)
	}
	tag := opts.Tag
	if tag == "" {
		tag = "latest"
	}
	if err := store.Tag(ctx, desc, tag); err != nil {
		return Result{}, fmt.Errorf("tag %s in layout %s: %w", tag, opts.LayoutDir, err)
	}
	return Result{Digest: b.Digest, Tag: tag, Manifest: m, Size: b.Size()}, nil
}

// recordSize is the size of the struct named record in coll's BTF.
func recordSize(coll *ebpf.CollectionSpec, record string) (uint32, error) {
	if coll.Types == nil {
		return 0, fmt.Errorf("record %q: the object has no BTF (build it with -g)", record)
	}
	var st *btf.Struct
	if err := coll.Types.TypeByName(record, &st); err != nil {
		return 0, fmt.Errorf("record %q: no struct of that name in the object's BTF (reference it, e.g. a global `const struct %s *unused`): %w", record, record, err)
	}
	return st.Size, nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: %s is over %d bytes", bundles.ErrTooLarge, path, limit)
	}
	return data, nil
}

func objectNames[T any](list []T, name func(T) string) string {
	names := make([]string, len(list))
	for i, v := range list {
		names[i] = name(v)
	}
	return strings.Join(names, ", ")
}
