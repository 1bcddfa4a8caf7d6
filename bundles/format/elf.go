package format

import (
	"bytes"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/bundles"
)

// CheckProgram refuses a manifest program whose type, attach type, section
// or license differ from those of ps, the program as parsed from its ELF
// object. Trust policies and the operator read the manifest; the kernel
// loads the ELF: a manifest saying cgroup_skb over an ELF cgroup_device
// program would slip past every allow-list. Errors wrap
// bundles.ErrManifestMismatch and bundles.ErrBundleInvalid.
func CheckProgram(p *Program, ps *ebpf.ProgramSpec) error {
	if ps == nil {
		return fmt.Errorf("%w: %w: program %s is not in object %s", bundles.ErrBundleInvalid, bundles.ErrManifestMismatch, p.Name, p.Object)
	}
	typ, err := ProgramTypeName(ps.Type)
	if err != nil {
		return fmt.Errorf("%w: program %s: %w", bundles.ErrManifestMismatch, p.Name, err)
	}
	for _, f := range []struct{ field, manifest, elf string }{
		{"type", p.Type, typ},
		{"attach type", p.AttachType, AttachTypeName(ps.Type, ps.AttachType)},
		{"section", p.Section, ps.SectionName},
		{"license", p.License, ps.License},
	} {
		if f.manifest != f.elf {
			return fmt.Errorf("%w: %w: program %s: manifest %s %q, ELF object %s says %q",
				bundles.ErrBundleInvalid, bundles.ErrManifestMismatch, p.Name, f.field, f.manifest, p.Object, f.elf)
		}
	}
	return nil
}

// CheckObjects parses every ELF object of b and checks each manifest
// program against it (CheckProgram).
func (b *Bundle) CheckObjects() error {
	specs := make(map[string]*ebpf.CollectionSpec, len(b.objects))
	for i := range b.Manifest.Programs {
		p := &b.Manifest.Programs[i]
		cs, ok := specs[p.Object]
		if !ok {
			data, err := b.Object(p.Object)
			if err != nil {
				return err
			}
			if cs, err = ebpf.LoadCollectionSpecFromReader(bytes.NewReader(data)); err != nil {
				return fmt.Errorf("%w: parse ELF object %s: %w", bundles.ErrBundleInvalid, p.Object, err)
			}
			specs[p.Object] = cs
		}
		if err := CheckProgram(p, cs.Programs[p.Name]); err != nil {
			return err
		}
	}
	return nil
}
