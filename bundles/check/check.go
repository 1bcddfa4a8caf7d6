// Package check performs a bundle's CO-RE relocations against the BTF of a
// target kernel (e.g. /sys/kernel/btf/vmlinux copied from a node) without
// loading anything into a kernel, and names the type and field each failing
// relocation needs.
//
// It runs the same relocation code cilium/ebpf runs before a load
// (btf.CORERelocate), against the target's types instead of the running
// kernel's. What it catches: a type, field or enum value a program reads
// through BPF_CORE_READ / __builtin_preserve_access_index that the target
// lacks, or that changed incompatibly (e.g. a field that became a different
// kind), and ambiguous matches. What it cannot catch: everything the
// verifier decides on the target kernel itself — helper and kfunc
// availability, program and map types the kernel lacks, verifier limits
// (complexity, stack, bounds), attach targets (functions, tracepoints) —
// and types in kernel modules unless their BTF is merged into the target.
//
// A relocation the target cannot satisfy is "poisoned": cilium/ebpf, like
// libbpf, replaces the instruction with an invalid call that the verifier
// rejects if it can reach it. A program that tests bpf_core_field_exists
// (or type/enum-value existence) for the same access before it makes
// unreachable code of the poisoned instruction, so such a problem is
// reported as guarded and does not fail the program. That is a heuristic:
// an existence relocation for the same access anywhere in the program
// counts, whether or not the test dominates the access; only the verifier
// on the target knows for sure.
package check

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/build"
	"github.com/bpfleet/bpfleet/bundles/format"
)

// ManifestFile is the manifest `bpfleet bundle pull` writes beside the ELF
// objects; DirInput reads it, or else build.SpecFile.
const ManifestFile = "bundle.json"

// Program names one program of a bundle and the ELF object holding it.
type Program struct {
	// Name is the program (function) name in the ELF.
	Name string
	// Object is the object file name, a key of Input.Objects.
	Object string
}

// Input is what Check reads: the programs to check and their ELF objects.
type Input struct {
	// Programs to check, in the bundle's order.
	Programs []Program
	// Objects are the ELF objects by file name.
	Objects map[string][]byte
}

// BundleInput returns the programs and objects of a bundle pulled from a
// registry (every byte already checked against its digest).
func BundleInput(b *format.Bundle) (Input, error) {
	in := Input{Objects: map[string][]byte{}}
	for _, o := range b.Manifest.Objects {
		data, err := b.Object(o.Name)
		if err != nil {
			return Input{}, fmt.Errorf("read object %s: %w", o.Name, err)
		}
		in.Objects[o.Name] = data
	}
	for _, p := range b.Manifest.Programs {
		in.Programs = append(in.Programs, Program{Name: p.Name, Object: p.Object})
	}
	return in, nil
}

// DirInput reads a local bundle directory: one written by `bpfleet bundle
// pull` (bundle.json and the objects), or a source directory with
// bundle.yaml and the ELF files it names.
func DirInput(dir string) (Input, error) {
	if data, err := os.ReadFile(filepath.Join(dir, ManifestFile)); err == nil {
		m, err := format.ParseManifest(data)
		if err != nil {
			return Input{}, fmt.Errorf("parse %s: %w", ManifestFile, err)
		}
		in := Input{Objects: map[string][]byte{}}
		for _, o := range m.Objects {
			// o.Name passed format.CheckFileName: a plain file name.
			data, err := os.ReadFile(filepath.Join(dir, o.Name))
			if err != nil {
				return Input{}, fmt.Errorf("read object: %w", err)
			}
			in.Objects[o.Name] = data
		}
		for _, p := range m.Programs {
			in.Programs = append(in.Programs, Program{Name: p.Name, Object: p.Object})
		}
		return in, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return Input{}, fmt.Errorf("read %s: %w", ManifestFile, err)
	}
	spec, err := build.ReadSpec(dir)
	if err != nil {
		return Input{}, fmt.Errorf("read bundle directory %s: %w", dir, err)
	}
	in := Input{Objects: map[string][]byte{}}
	for _, o := range spec.Objects {
		data, err := os.ReadFile(filepath.Join(dir, o.File))
		if err != nil {
			return Input{}, fmt.Errorf("read object: %w", err)
		}
		in.Objects[filepath.Base(o.File)] = data
	}
	for _, p := range spec.Programs {
		obj := filepath.Base(p.Object)
		if p.Object == "" {
			if len(spec.Objects) != 1 {
				return Input{}, fmt.Errorf("%w: program %s names no object among %d", bundles.ErrBundleInvalid, p.Name, len(spec.Objects))
			}
			obj = filepath.Base(spec.Objects[0].File)
		}
		in.Programs = append(in.Programs, Program{Name: p.Name, Object: obj})
	}
	return in, nil
}

// LoadTarget reads a kernel's BTF: a raw BTF file such as
// /sys/kernel/btf/vmlinux, or an ELF vmlinux with a .BTF section.
func LoadTarget(path string) (*btf.Spec, error) {
	spec, err := btf.LoadSpec(path)
	if err != nil {
		return nil, fmt.Errorf("load target BTF %s: %w", path, err)
	}
	return spec, nil
}

// Report is the outcome for every program of the input.
type Report struct {
	// Programs in input order.
	Programs []Result `json:"programs"`
}

// Failed returns the programs that would fail to load on the target.
func (r *Report) Failed() []Result {
	var out []Result
	for _, p := range r.Programs {
		if !p.OK {
			out = append(out, p)
		}
	}
	return out
}

// Result is the outcome of one program.
type Result struct {
	// Program is the program name.
	Program string `json:"program"`
	// Object is the ELF object holding it.
	Object string `json:"object"`
	// Relocations is how many CO-RE relocations the program carries.
	Relocations int `json:"relocations"`
	// OK is false when a problem that is not guarded was found.
	OK bool `json:"ok"`
	// Problems are the relocations the target cannot satisfy.
	Problems []Problem `json:"problems,omitempty"`
}

// Problem is one relocation the target cannot satisfy.
type Problem struct {
	// Kind is the relocation kind (byte_off, field_exists, type_size, …);
	// empty when the relocation as a whole failed (Message says why).
	Kind string `json:"kind,omitempty"`
	// Type is the local type the program accesses, e.g. "struct task_struct".
	Type string `json:"type"`
	// Field is the access path from Type, e.g. "real_parent" or
	// "mm.arg_start"; for enum values the value name; empty for type-level
	// relocations.
	Field string `json:"field,omitempty"`
	// Guarded is true when the program also tests, with an existence
	// relocation, the same access and the target lacks it: the poisoned
	// instruction is then dead code the verifier removes.
	Guarded bool `json:"guarded,omitempty"`
	// Message says what is wrong.
	Message string `json:"message"`
}

// Check performs the CO-RE relocations of every program of in against
// target and reports what the target cannot satisfy. It never loads into a
// kernel and needs no privilege. An error means the input itself is broken
// (unreadable ELF, missing program); relocation problems go in the report.
func Check(in Input, target *btf.Spec) (*Report, error) {
	specs := map[string]*ebpf.CollectionSpec{}
	rep := &Report{}
	for _, p := range in.Programs {
		spec, ok := specs[p.Object]
		if !ok {
			data, ok := in.Objects[p.Object]
			if !ok {
				return nil, fmt.Errorf("%w: program %s is in object %s, which the bundle lacks", bundles.ErrBundleInvalid, p.Name, p.Object)
			}
			var err error
			spec, err = ebpf.LoadCollectionSpecFromReader(strings.NewReader(string(data)))
			if err != nil {
				return nil, fmt.Errorf("parse ELF object %s: %w", p.Object, err)
			}
			specs[p.Object] = spec
		}
		ps, ok := spec.Programs[p.Name]
		if !ok {
			return nil, fmt.Errorf("%w: object %s holds no program %s", bundles.ErrBundleInvalid, p.Object, p.Name)
		}
		rep.Programs = append(rep.Programs, checkProgram(p, ps, spec.Types, target))
	}
	return rep, nil
}

// relocation is one CO-RE relocation of a program, decoded.
type relocation struct {
	relo  *btf.CORERelocation
	ins   asm.Instruction
	kind  string
	typ   string
	field string
	// key identifies the access (local type id and accessor) so an
	// existence check can be matched with the accesses it guards.
	key string
}

func checkProgram(p Program, ps *ebpf.ProgramSpec, local *btf.Spec, target *btf.Spec) Result {
	res := Result{Program: p.Name, Object: p.Object, OK: true}
	var relocs []relocation
	iter := ps.Instructions.Iterate()
	for iter.Next() {
		relo := btf.CORERelocationMetadata(iter.Ins)
		if relo == nil {
			continue
		}
		r := describe(relo, local)
		r.ins = *iter.Ins
		relocs = append(relocs, r)
	}
	res.Relocations = len(relocs)
	if len(relocs) == 0 {
		return res
	}
	bo := ps.ByteOrder
	if bo == nil {
		bo = binary.NativeEndian
	}
	raw := make([]*btf.CORERelocation, len(relocs))
	for i, r := range relocs {
		raw[i] = r.relo
	}
	fixups, err := btf.CORERelocate(raw, []*btf.Spec{target}, bo, func(t btf.Type) (btf.TypeID, error) {
		if local == nil {
			return 0, fmt.Errorf("no local BTF for %s", t)
		}
		return local.TypeID(t)
	})
	if err != nil {
		// One type's relocations could not be computed at all: the load fails.
		res.OK = false
		res.Problems = append(res.Problems, Problem{Type: failedType(err, relocs), Message: err.Error()})
		return res
	}
	absent := map[string]bool{}
	var poisoned []Problem
	var keys []string
	for i, f := range fixups {
		r := relocs[i]
		ins := r.ins
		if err := f.Apply(&ins); err != nil {
			poisoned = append(poisoned, Problem{Kind: r.kind, Type: r.typ, Field: r.field, Message: fmt.Sprintf("apply %s: %v", f.String(), err)})
			keys = append(keys, r.key)
			continue
		}
		switch {
		case isPoisoned(ins):
			poisoned = append(poisoned, Problem{Kind: r.kind, Type: r.typ, Field: r.field, Message: missing(r, target)})
			keys = append(keys, r.key)
		case strings.HasSuffix(r.kind, "_exists") || r.kind == "type_matches":
			if ins.Constant == 0 {
				absent[r.key] = true
			}
		}
	}
	for i, pr := range poisoned {
		pr.Guarded = absent[keys[i]]
		if !pr.Guarded {
			res.OK = false
		}
		res.Problems = append(res.Problems, pr)
	}
	return res
}

// isPoisoned tells whether Apply replaced ins with CO-RE's invalid
// instruction: a call to, or a dword load into R10 of, the sentinel.
func isPoisoned(ins asm.Instruction) bool {
	if ins.Constant != btf.COREBadRelocationSentinel {
		return false
	}
	return ins.IsBuiltinCall() || (ins.OpCode.IsDWordLoad() && ins.Dst == asm.R10)
}

// missing says what the target lacks for r.
func missing(r relocation, target *btf.Spec) string {
	name := r.typ
	for _, prefix := range []string{"struct ", "union ", "enum "} {
		name = strings.TrimPrefix(name, prefix)
	}
	if _, err := target.AnyTypesByName(name); errors.Is(err, btf.ErrNotFound) {
		return fmt.Sprintf("the target has no type %s", r.typ)
	}
	switch {
	case r.field != "" && strings.HasPrefix(r.kind, "enumval"):
		return fmt.Sprintf("the target has no value %s in %s", r.field, r.typ)
	case r.field != "":
		return fmt.Sprintf("the target has no field %s in %s (or it changed kind)", r.field, r.typ)
	default:
		return fmt.Sprintf("the target has no compatible %s", r.typ)
	}
}

// failedType names the type of the relocation CORERelocate refused, from
// the error it returned ("relocate <type>: …").
func failedType(err error, relocs []relocation) string {
	msg := err.Error()
	for _, r := range relocs {
		if strings.Contains(msg, strings.TrimPrefix(strings.TrimPrefix(r.typ, "struct "), "union ")) {
			return r.typ
		}
	}
	return ""
}

// reloString is how btf.CORERelocation prints itself in cilium/ebpf v0.22:
// CORERelocation(<kind>, <type>[<accessor>], local_id=<id>). Its fields are
// not exported; the test of this package pins the format.
var reloString = regexp.MustCompile(`^CORERelocation\(([a-z_]+), (.*)\[([0-9:]+)\], local_id=([0-9]+)\)$`)

// describe decodes relo into its kind, type name and field path, resolved
// against the program's own BTF.
func describe(relo *btf.CORERelocation, local *btf.Spec) relocation {
	s := relo.String()
	r := relocation{relo: relo, key: s}
	m := reloString.FindStringSubmatch(s)
	if m == nil {
		r.typ = s
		return r
	}
	r.kind = m[1]
	r.key = m[3] + "@" + m[4]
	id, _ := strconv.ParseUint(m[4], 10, 32)
	var accessor []int
	for _, a := range strings.Split(m[3], ":") {
		n, _ := strconv.Atoi(a)
		accessor = append(accessor, n)
	}
	if local == nil {
		r.typ = m[2]
		return r
	}
	t, err := local.TypeByID(btf.TypeID(id))
	if err != nil {
		r.typ = m[2]
		return r
	}
	r.typ = typeName(t)
	r.field = fieldPath(r.kind, t, accessor)
	return r
}

// typeName is "struct task_struct", "union …", "enum …" or the type's name.
func typeName(t btf.Type) string {
	t = btf.UnderlyingType(t)
	name := t.TypeName()
	if name == "" {
		name = "(anonymous)"
	}
	switch t.(type) {
	case *btf.Struct:
		return "struct " + name
	case *btf.Union:
		return "union " + name
	case *btf.Enum:
		return "enum " + name
	}
	return name
}

// fieldKinds are the relocation kinds (as cilium/ebpf names them) whose
// accessor walks into the fields of a type.
var fieldKinds = map[string]bool{
	"byte_off": true, "byte_sz": true, "field_exists": true, "signed": true, "lshift_u64": true, "rshift_u64": true,
}

// fieldPath turns an accessor (the first index steps over the root as an
// array, each next one picks a member or an array element) into a path of
// member names, e.g. "real_parent" or "mm.arg_start".
func fieldPath(kind string, t btf.Type, accessor []int) string {
	if strings.HasPrefix(kind, "enumval") {
		if e, ok := btf.UnderlyingType(t).(*btf.Enum); ok && len(accessor) == 1 && accessor[0] < len(e.Values) {
			return e.Values[accessor[0]].Name
		}
		return ""
	}
	if !fieldKinds[kind] || len(accessor) < 2 {
		return ""
	}
	var parts []string
	cur := t
	for _, idx := range accessor[1:] {
		switch u := btf.UnderlyingType(cur).(type) {
		case *btf.Struct:
			if idx >= len(u.Members) {
				return strings.Join(parts, ".")
			}
			parts = append(parts, memberName(u.Members[idx], idx))
			cur = u.Members[idx].Type
		case *btf.Union:
			if idx >= len(u.Members) {
				return strings.Join(parts, ".")
			}
			parts = append(parts, memberName(u.Members[idx], idx))
			cur = u.Members[idx].Type
		case *btf.Array:
			if len(parts) == 0 {
				parts = append(parts, "")
			}
			parts[len(parts)-1] += "[" + strconv.Itoa(idx) + "]"
			cur = u.Type
		default:
			return strings.Join(parts, ".")
		}
	}
	return strings.Join(slices.DeleteFunc(parts, func(s string) bool { return s == "" }), ".")
}

func memberName(m btf.Member, idx int) string {
	if m.Name == "" {
		return "(anonymous #" + strconv.Itoa(idx) + ")"
	}
	return m.Name
}
