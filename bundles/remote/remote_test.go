package remote_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"oras.land/oras-go/v2"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

func TestPushResolveFetch(t *testing.T) {
	for _, referrers := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain registry", true: "referrers registry"}[referrers], func(t *testing.T) {
			reg := registry.Start(t, registry.Options{Referrers: referrers})
			ref, digest := testbundle.Push(t, reg, "ebpf/xdp", "v1", testbundle.Source{})
			c := remote.New(remote.Options{Timeout: 5 * time.Second})
			ctx := context.Background()

			got, err := c.Resolve(ctx, ref)
			if err != nil || got != digest {
				t.Fatalf("Resolve(%s) = %s, %v; want %s", ref, got, err, digest)
			}
			got, err = c.Resolve(ctx, reg.Ref("ebpf/xdp", digest))
			if err != nil || got != digest {
				t.Fatalf("Resolve by digest = %s, %v", got, err)
			}
			b, err := c.Fetch(ctx, reg.Repository("ebpf/xdp"), digest)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if b.Digest != digest || b.Repository != reg.Repository("ebpf/xdp") || b.Manifest.Name != "test-bundle" {
				t.Fatalf("Fetch returned %s %s %q", b.Digest, b.Repository, b.Manifest.Name)
			}
			elf, err := b.Object(testbundle.ObjectFile)
			if err != nil || !bytes.HasPrefix(elf, []byte("\x7fELF")) {
				t.Fatalf("Object(%s) = %d bytes, %v", testbundle.ObjectFile, len(elf), err)
			}
			if _, err := b.Object("../etc/passwd"); !errors.Is(err, bundles.ErrNotFound) {
				t.Fatalf("Object(../etc/passwd) = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestFetchRefusesTamperedBlob(t *testing.T) {
	reg := registry.Start(t, registry.Options{})
	_, digest := testbundle.Push(t, reg, "ebpf/xdp", "v1", testbundle.Source{})
	c := remote.New(remote.Options{Timeout: 5 * time.Second})
	b, err := c.Fetch(context.Background(), reg.Repository("ebpf/xdp"), digest)
	if err != nil {
		t.Fatal(err)
	}
	elf, _ := b.Object(testbundle.ObjectFile)
	evil := bytes.Clone(elf)
	evil[len(evil)-1] ^= 0xff // same size, different content
	reg.TamperBlob(t, b.Manifest.Objects[0].Digest, evil)

	_, err = c.Fetch(context.Background(), reg.Repository("ebpf/xdp"), digest)
	if !errors.Is(err, bundles.ErrDigestMismatch) {
		t.Fatalf("Fetch of tampered layer = %v, want ErrDigestMismatch", err)
	}
	if !strings.Contains(err.Error(), "fetch layer "+b.Manifest.Objects[0].Digest) {
		t.Fatalf("error %q does not name the tampered layer", err)
	}

	reg.TamperBlob(t, b.Manifest.Objects[0].Digest, append(evil, 0)) // longer
	if _, err = c.Fetch(context.Background(), reg.Repository("ebpf/xdp"), digest); !errors.Is(err, bundles.ErrDigestMismatch) {
		t.Fatalf("Fetch of grown layer = %v, want ErrDigestMismatch", err)
	}
}

func TestFetchOldDigestAfterTagMoved(t *testing.T) {
	reg := registry.Start(t, registry.Options{})
	ref, oldDigest := testbundle.Push(t, reg, "ebpf/xdp", "stable", testbundle.Source{Return: 2})
	c := remote.New(remote.Options{Timeout: 5 * time.Second})
	resolved, err := c.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	_, newDigest := testbundle.Push(t, reg, "ebpf/xdp", "stable", testbundle.Source{Return: 1})
	if newDigest == oldDigest {
		t.Fatal("test bundles should differ")
	}
	if now, _ := c.Resolve(context.Background(), ref); now != newDigest {
		t.Fatalf("tag now resolves to %s, want %s", now, newDigest)
	}
	b, err := c.Fetch(context.Background(), reg.Repository("ebpf/xdp"), resolved)
	if err != nil || b.Digest != oldDigest {
		t.Fatalf("Fetch(old digest) = %v, %v; want the old bundle %s", b, err, oldDigest)
	}
}

func TestErrors(t *testing.T) {
	reg := registry.Start(t, registry.Options{})
	_, digest := testbundle.Push(t, reg, "ebpf/xdp", "v1", testbundle.Source{})
	c := remote.New(remote.Options{Timeout: 5 * time.Second})
	ctx := context.Background()

	if _, err := c.Resolve(ctx, reg.Ref("ebpf/xdp", "nope")); !errors.Is(err, bundles.ErrNotFound) {
		t.Errorf("Resolve(missing tag) = %v, want ErrNotFound", err)
	}
	other := "sha256:" + strings.Repeat("0", 64)
	if _, err := c.Fetch(ctx, reg.Repository("ebpf/xdp"), other); !errors.Is(err, bundles.ErrNotFound) {
		t.Errorf("Fetch(missing digest) = %v, want ErrNotFound", err)
	}
	if _, err := c.Resolve(ctx, "not a reference"); !errors.Is(err, bundles.ErrBundleInvalid) {
		t.Errorf("Resolve(garbage) = %v, want ErrBundleInvalid", err)
	}
	if _, err := c.Push(ctx, t.TempDir(), reg.Ref("ebpf/xdp", "v2")); !errors.Is(err, bundles.ErrNotFound) {
		t.Errorf("Push(empty layout) = %v, want ErrNotFound", err)
	}

	reg.Stop()
	start := time.Now()
	if _, err := c.Fetch(ctx, reg.Repository("ebpf/xdp"), digest); !errors.Is(err, bundles.ErrRegistryUnavailable) {
		t.Errorf("Fetch(registry down) = %v, want ErrRegistryUnavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Fetch(registry down) took %v, want fast failure", d)
	}
}

func TestRegistryHangsFailsWithinTimeout(t *testing.T) {
	// A registry that accepts connections and never answers.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	c := remote.New(remote.Options{Timeout: 300 * time.Millisecond})
	start := time.Now()
	_, err = c.Resolve(context.Background(), l.Addr().String()+"/ebpf/xdp:v1")
	if !errors.Is(err, bundles.ErrRegistryUnavailable) {
		t.Fatalf("Resolve(hanging registry) = %v, want ErrRegistryUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Resolve(hanging registry) took %v with a 300ms timeout", d)
	}
}

func TestUsePlainHTTP(t *testing.T) {
	tests := []struct {
		host  string         // registry host
		opts  remote.Options // client options
		plain bool           // want plain HTTP
		err   error          // want error
	}{
		{host: "127.0.0.1:5000", plain: true},
		{host: "localhost:5000", plain: true},
		{host: "[::1]:5000", plain: true},
		{host: "registry.example.com"},
		{host: "registry.example.com", opts: remote.Options{PlainHTTP: true}, err: remote.ErrPlainHTTPRefused},
		{host: "registry.example.com", opts: remote.Options{PlainHTTP: true, Insecure: true}, plain: true},
		{host: "registry.example.com", opts: remote.Options{Insecure: true}},
		{host: "127.0.0.1.example.com"},
	}
	for _, tt := range tests {
		plain, err := remote.UsePlainHTTP(tt.opts, tt.host)
		if plain != tt.plain || !errors.Is(err, tt.err) {
			t.Errorf("UsePlainHTTP(%+v, %s) = %v, %v; want %v, %v", tt.opts, tt.host, plain, err, tt.plain, tt.err)
		}
	}
}

func TestParseReference(t *testing.T) {
	d := "sha256:" + strings.Repeat("a", 64)
	tests := []struct {
		in   string           // reference
		want remote.Reference // parsed
	}{
		{in: "127.0.0.1:5000/ebpf/xdp:v1", want: remote.Reference{Registry: "127.0.0.1:5000", Repository: "127.0.0.1:5000/ebpf/xdp", Tag: "v1"}},
		{in: "r.example.com/xdp", want: remote.Reference{Registry: "r.example.com", Repository: "r.example.com/xdp", Tag: "latest"}},
		{in: "r.example.com/xdp@" + d, want: remote.Reference{Registry: "r.example.com", Repository: "r.example.com/xdp", Digest: d}},
	}
	for _, tt := range tests {
		got, err := remote.ParseReference(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseReference(%s) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestCredentialsFromDockerConfig(t *testing.T) {
	reg := registry.Start(t, registry.Options{Username: "ci", Password: "hunter2"})
	withCreds := remote.Options{Timeout: 5 * time.Second, DockerConfig: reg.DockerConfig(t, "ci", "hunter2")}
	ref, digest := testbundle.PushWith(t, reg, "ebpf/xdp", "v1", testbundle.Source{}, withCreds)

	if got, err := remote.New(withCreds).Resolve(context.Background(), ref); err != nil || got != digest {
		t.Fatalf("Resolve with credentials = %s, %v", got, err)
	}
	if _, err := remote.New(withCreds).Fetch(context.Background(), reg.Repository("ebpf/xdp"), digest); err != nil {
		t.Fatalf("Fetch with credentials: %v", err)
	}
	tests := []struct {
		name   string // case
		config string // docker config path
		want   string // text the error must contain
	}{
		{name: "no credentials", config: filepath.Join(t.TempDir(), "missing.json"), want: "basic credential not found"},
		{name: "wrong password", config: reg.DockerConfig(t, "ci", "wrong"), want: "401"},
	}
	for _, tt := range tests {
		_, err := remote.New(remote.Options{Timeout: 5 * time.Second, DockerConfig: tt.config}).Resolve(context.Background(), ref)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Resolve = %v, want an error mentioning %q", tt.name, err, tt.want)
		}
	}
}

func TestFetchRefusesOtherArtifacts(t *testing.T) {
	reg := registry.Start(t, registry.Options{})
	c := remote.New(remote.Options{Timeout: 5 * time.Second})
	ctx := context.Background()
	r, err := remote.ParseReference(reg.Ref("ebpf/other", "v1"))
	if err != nil {
		t.Fatal(err)
	}
	repo, err := c.Repository(r)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "application/vnd.example.other", oras.PackManifestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Tag(ctx, desc, "v1"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Fetch(ctx, r.Repository, desc.Digest.String())
	if !errors.Is(err, bundles.ErrBundleInvalid) || !strings.Contains(err.Error(), `artifact type "application/vnd.example.other"`) {
		t.Fatalf("Fetch(other artifact) = %v, want ErrBundleInvalid naming the artifact type", err)
	}
}
