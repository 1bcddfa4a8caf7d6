// Package testbundle makes real bundles for tests: it compiles a tiny eBPF C
// program with clang (gated with privileged.RequireCommand), writes a
// bundle.yaml next to it, builds the bundle into an OCI layout and pushes it
// to a test registry.
//
// Usage:
//
//	dir := testbundle.Dir(t, testbundle.Source{Return: 2})
//	layout, digest := testbundle.Build(t, dir, "v1")
//	ref, digest := testbundle.Push(t, reg, "ebpf/xdp", "v1", testbundle.Source{})
package testbundle

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/bpfleet/bpfleet/bundles/build"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/test/support/privileged"
	"github.com/bpfleet/bpfleet/test/support/registry"
)

// Source varies the compiled program so tests get distinct digests.
type Source struct {
	// Return is the XDP action xdp_pod_filter returns (2 = XDP_PASS).
	Return int
	// Version goes into bundle.yaml; empty means 0.1.0.
	Version string
}

// Program names and map names the test bundle carries.
const (
	XDPProgram        = "xdp_pod_filter"
	TracepointProgram = "trace_open"
	MetricMap         = "rule_hits"
	ObjectFile        = "testprog_bpfel.o"
)

const cSource = `#include <linux/bpf.h>
#define SEC(n) __attribute__((section(n), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} rule_hits SEC(".maps");
SEC("xdp") int xdp_pod_filter(struct xdp_md *ctx) { return %d; }
SEC("tracepoint/syscalls/sys_enter_openat") int trace_open(void *ctx) { return 0; }
char LICENSE[] SEC("license") = "GPL";
`

const specTemplate = `name: test-bundle
version: %s
description: Test bundle compiled by testbundle.
objects:
  - file: %s
programs:
  - name: xdp_pod_filter
    attach: xdp
  - name: trace_open
    attach: tracepoint
    target: syscalls/sys_enter_openat
metricMaps: [rule_hits]
minKernel: "6.1"
`

// Compile compiles the test program into dir/name with clang -target bpf.
func Compile(tb testing.TB, dir, name string, src Source) string {
	tb.Helper()
	clang := privileged.RequireCommand(tb, "clang")
	if src.Return == 0 {
		src.Return = 2
	}
	cPath := filepath.Join(dir, "testprog.c")
	if err := os.WriteFile(cPath, fmt.Appendf(nil, cSource, src.Return), 0o644); err != nil {
		tb.Fatalf("write C source: %v", err)
	}
	out := filepath.Join(dir, name)
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
	// Relative paths and a prefix map keep the temporary directory out of
	// the debug info, so equal sources give byte-identical objects.
	cmd := exec.Command(clang, "-O2", "-g", "-target", "bpfel", "-I/usr/include/"+arch+"-linux-gnu",
		"-fdebug-prefix-map="+dir+"=.", "-c", "testprog.c", "-o", name)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("clang: %v\n%s", err, b)
	}
	if err := os.Remove(cPath); err != nil {
		tb.Fatalf("remove C source: %v", err)
	}
	return out
}

// Dir returns a new directory holding the compiled test program and a
// bundle.yaml describing it.
func Dir(tb testing.TB, src Source) string {
	tb.Helper()
	dir := tb.TempDir()
	Compile(tb, dir, ObjectFile, src)
	if src.Version == "" {
		src.Version = "0.1.0"
	}
	spec := fmt.Sprintf(specTemplate, src.Version, ObjectFile)
	if err := os.WriteFile(filepath.Join(dir, build.SpecFile), []byte(spec), 0o644); err != nil {
		tb.Fatalf("write bundle.yaml: %v", err)
	}
	return dir
}

// Build builds dir into a new OCI layout tagged tag and returns the layout
// directory and the bundle digest.
func Build(tb testing.TB, dir, tag string) (layout, digest string) {
	tb.Helper()
	layout = tb.TempDir()
	res, err := build.Build(context.Background(), dir, build.Options{LayoutDir: layout, Tag: tag})
	if err != nil {
		tb.Fatalf("build %s: %v", dir, err)
	}
	return layout, res.Digest
}

// Push compiles, builds and pushes a test bundle to reg as path:tag and
// returns the reference by tag and the digest.
func Push(tb testing.TB, reg *registry.Registry, path, tag string, src Source) (ref, digest string) {
	tb.Helper()
	return PushWith(tb, reg, path, tag, src, remote.Options{})
}

// PushWith is Push with registry options (e.g. credentials).
func PushWith(tb testing.TB, reg *registry.Registry, path, tag string, src Source, opts remote.Options) (ref, digest string) {
	tb.Helper()
	layout, digest := Build(tb, Dir(tb, src), tag)
	ref = reg.Ref(path, tag)
	got, err := remote.New(opts).Push(context.Background(), layout, ref)
	if err != nil {
		tb.Fatalf("push %s: %v", ref, err)
	}
	if got != digest {
		tb.Fatalf("push %s: registry digest %s, built %s", ref, got, digest)
	}
	return ref, digest
}

// CopyWithVersion copies the bundle in srcDir (its bundle.yaml and ELF
// objects) into dstDir with the version set to version: the same programs
// under another digest, as a developer's next release.
func CopyWithVersion(srcDir, dstDir, version string) error {
	if err := os.MkdirAll(dstDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dstDir, err)
	}
	entries, err := os.ReadDir(srcDir)
	if err != nil {
		return fmt.Errorf("read bundle dir: %w", err)
	}
	for _, ent := range entries {
		if !strings.HasSuffix(ent.Name(), ".o") && ent.Name() != build.SpecFile {
			continue
		}
		data, err := os.ReadFile(filepath.Join(srcDir, ent.Name()))
		if err != nil {
			return fmt.Errorf("read bundle file: %w", err)
		}
		if ent.Name() == build.SpecFile {
			lines := strings.Split(string(data), "\n")
			found := false
			for i, l := range lines {
				if strings.HasPrefix(l, "version:") {
					lines[i], found = "version: "+version, true
				}
			}
			if !found {
				return fmt.Errorf("set version in %s: no version line", filepath.Join(srcDir, ent.Name()))
			}
			data = []byte(strings.Join(lines, "\n"))
		}
		if err := os.WriteFile(filepath.Join(dstDir, ent.Name()), data, 0o644); err != nil {
			return fmt.Errorf("write bundle file: %w", err)
		}
	}
	return nil
}
