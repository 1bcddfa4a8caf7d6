package signing_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"oras.land/oras-go/v2"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/signing"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

var password = []byte("correct horse battery staple")

type keyPair struct{ priv, pub string }

func newKeys(t testing.TB) keyPair {
	t.Helper()
	priv, pub, err := signing.GenerateKeyPair(t.TempDir(), password)
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{priv: priv, pub: pub}
}

func readPEM(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var opts = remote.Options{Timeout: 10 * time.Second}

func TestSignVerify(t *testing.T) {
	reg := registry.Start(t, registry.Options{})
	ref, digest := testbundle.Push(t, reg, "ebpf/xdp", "v1", testbundle.Source{})
	repo := reg.Repository("ebpf/xdp")
	alice, bob, mallory := newKeys(t), newKeys(t), newKeys(t)
	ctx := context.Background()

	// Unsigned.
	_, err := signing.Verify(ctx, repo, digest, [][]byte{readPEM(t, alice.pub)}, opts)
	if !errors.Is(err, bundles.ErrUnsigned) {
		t.Fatalf("Verify(unsigned) = %v, want ErrUnsigned", err)
	}

	// Signed by tag with bob's key: verifies with bob, reports his index.
	if err := signing.Sign(ctx, ref, bob.priv, password, opts); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	idx, err := signing.Verify(ctx, repo, digest, [][]byte{readPEM(t, alice.pub), readPEM(t, bob.pub)}, opts)
	if err != nil || idx != 1 {
		t.Fatalf("Verify = %d, %v; want key 1", idx, err)
	}

	// Wrong key.
	_, err = signing.Verify(ctx, repo, digest, [][]byte{readPEM(t, mallory.pub)}, opts)
	if !errors.Is(err, bundles.ErrSignatureMismatch) {
		t.Fatalf("Verify(wrong key) = %v, want ErrSignatureMismatch", err)
	}

	// A second signer by digest keeps the first signature.
	if err := signing.Sign(ctx, reg.Ref("ebpf/xdp", digest), alice.priv, password, opts); err != nil {
		t.Fatal(err)
	}
	if n, err := signing.Count(ctx, repo, digest, opts); err != nil || n != 2 {
		t.Fatalf("Count = %d, %v; want 2", n, err)
	}
	// Signing again with the same key does not duplicate (cosign's dupe detector).
	if err := signing.Sign(ctx, ref, alice.priv, password, opts); err != nil {
		t.Fatal(err)
	}
	if n, _ := signing.Count(ctx, repo, digest, opts); n != 2 {
		t.Fatalf("Count after re-sign = %d, want 2", n)
	}
	for _, k := range []keyPair{alice, bob} {
		if _, err := signing.Verify(ctx, repo, digest, [][]byte{readPEM(t, k.pub)}, opts); err != nil {
			t.Fatalf("Verify(%s) = %v", k.pub, err)
		}
	}
}

func TestSignatureReplayedOntoAnotherDigestIsRefused(t *testing.T) {
	reg := registry.Start(t, registry.Options{})
	ref, signed := testbundle.Push(t, reg, "ebpf/xdp", "good", testbundle.Source{Return: 2})
	_, evil := testbundle.Push(t, reg, "ebpf/xdp", "evil", testbundle.Source{Return: 1})
	keys := newKeys(t)
	ctx := context.Background()
	if err := signing.Sign(ctx, ref, keys.priv, password, opts); err != nil {
		t.Fatal(err)
	}
	// Copy good's signature manifest to evil's signature tag, as an
	// attacker with push rights would.
	r, err := remote.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := remote.New(opts).Repository(r)
	if err != nil {
		t.Fatal(err)
	}
	sigTag := func(d string) string { return strings.Replace(d, ":", "-", 1) + ".sig" }
	if _, err := oras.Copy(ctx, repo, sigTag(signed), repo, sigTag(evil), oras.DefaultCopyOptions); err != nil {
		t.Fatalf("copy signature: %v", err)
	}
	_, err = signing.Verify(ctx, reg.Repository("ebpf/xdp"), evil, [][]byte{readPEM(t, keys.pub)}, opts)
	if !errors.Is(err, bundles.ErrSignatureMismatch) || !strings.Contains(err.Error(), "invalid or missing digest in claim") {
		t.Fatalf("Verify(replayed signature) = %v, want ErrSignatureMismatch about the claimed digest", err)
	}
	if _, err := signing.Verify(ctx, reg.Repository("ebpf/xdp"), signed, [][]byte{readPEM(t, keys.pub)}, opts); err != nil {
		t.Fatalf("Verify(original) = %v", err)
	}
}

func TestSignErrors(t *testing.T) {
	reg := registry.Start(t, registry.Options{})
	ref, digest := testbundle.Push(t, reg, "ebpf/xdp", "v1", testbundle.Source{})
	keys := newKeys(t)
	ctx := context.Background()

	if err := signing.Sign(ctx, ref, keys.priv, []byte("wrong"), opts); err == nil || !strings.Contains(err.Error(), "load key") {
		t.Errorf("Sign(wrong password) = %v, want a load key error", err)
	}
	if err := signing.Sign(ctx, reg.Ref("ebpf/xdp", "missing"), keys.priv, password, opts); !errors.Is(err, bundles.ErrNotFound) {
		t.Errorf("Sign(missing tag) = %v, want ErrNotFound", err)
	}
	if _, err := signing.Verify(ctx, reg.Repository("ebpf/xdp"), digest, [][]byte{[]byte("not a key")}, opts); !errors.Is(err, bundles.ErrBundleInvalid) {
		t.Errorf("Verify(garbage key) = %v, want ErrBundleInvalid", err)
	}
	if _, _, err := signing.GenerateKeyPair(filepath.Dir(keys.priv), password); err == nil {
		t.Errorf("GenerateKeyPair overwrote an existing key")
	}
	reg.Stop()
	start := time.Now()
	if _, err := signing.Verify(ctx, reg.Repository("ebpf/xdp"), digest, [][]byte{readPEM(t, keys.pub)}, opts); !errors.Is(err, bundles.ErrRegistryUnavailable) {
		t.Errorf("Verify(registry down) = %v, want ErrRegistryUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Verify(registry down) took %v", d)
	}
}

func TestFingerprint(t *testing.T) {
	keys := newKeys(t)
	fp, err := signing.Fingerprint(readPEM(t, keys.pub))
	if err != nil || !strings.HasPrefix(fp, "SHA256:") || len(fp) != len("SHA256:")+64 {
		t.Fatalf("Fingerprint = %q, %v", fp, err)
	}
	other, _ := signing.Fingerprint(readPEM(t, newKeys(t).pub))
	if other == fp {
		t.Fatal("two keys share a fingerprint")
	}
	if _, err := signing.Fingerprint([]byte("nope")); !errors.Is(err, bundles.ErrBundleInvalid) {
		t.Fatalf("Fingerprint(garbage) = %v", err)
	}
}

func TestSignVerifyWithCredentials(t *testing.T) {
	reg := registry.Start(t, registry.Options{Username: "ci", Password: "hunter2"})
	withCreds := remote.Options{Timeout: 10 * time.Second, DockerConfig: reg.DockerConfig(t, "ci", "hunter2")}
	ref, digest := testbundle.PushWith(t, reg, "ebpf/xdp", "v1", testbundle.Source{}, withCreds)
	keys := newKeys(t)
	ctx := context.Background()
	if err := signing.Sign(ctx, ref, keys.priv, password, withCreds); err != nil {
		t.Fatalf("Sign with credentials: %v", err)
	}
	if _, err := signing.Verify(ctx, reg.Repository("ebpf/xdp"), digest, [][]byte{readPEM(t, keys.pub)}, withCreds); err != nil {
		t.Fatalf("Verify with credentials: %v", err)
	}
	noCreds := remote.Options{Timeout: 10 * time.Second, DockerConfig: filepath.Join(t.TempDir(), "missing.json")}
	if _, err := signing.Verify(ctx, reg.Repository("ebpf/xdp"), digest, [][]byte{readPEM(t, keys.pub)}, noCreds); err == nil || errors.Is(err, bundles.ErrUnsigned) {
		t.Fatalf("Verify without credentials = %v, want an auth error (never 'unsigned')", err)
	}
}

// TestVerifyDoesNotLeakConnections: callers verify once per reconcile, each
// call with fresh clients; idle connections must be pooled, not piled up.
func TestVerifyDoesNotLeakConnections(t *testing.T) {
	reg := registry.Start(t, registry.Options{})
	ref, digest := testbundle.Push(t, reg, "ebpf/xdp", "v1", testbundle.Source{})
	keys := newKeys(t)
	ctx := context.Background()
	if err := signing.Sign(ctx, ref, keys.priv, password, opts); err != nil {
		t.Fatal(err)
	}
	pub := [][]byte{readPEM(t, keys.pub)}
	openFDs := func() int {
		entries, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(entries)
	}
	if _, err := signing.Verify(ctx, reg.Repository("ebpf/xdp"), digest, pub, opts); err != nil {
		t.Fatal(err)
	}
	before := openFDs()
	for range 100 {
		if _, err := signing.Verify(ctx, reg.Repository("ebpf/xdp"), digest, pub, opts); err != nil {
			t.Fatal(err)
		}
	}
	if after := openFDs(); after > before+10 {
		t.Fatalf("100 Verify calls left %d more open files (%d -> %d)", after-before, before, after)
	}
}

func TestVerifyAgainstHangingRegistryFailsWithinTimeout(t *testing.T) {
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
			defer conn.Close() // accept, never answer
		}
	}()
	keys := newKeys(t)
	digest := "sha256:" + strings.Repeat("a", 64)
	start := time.Now()
	_, err = signing.Verify(context.Background(), l.Addr().String()+"/ebpf/xdp", digest, [][]byte{readPEM(t, keys.pub)}, remote.Options{Timeout: 300 * time.Millisecond})
	if !errors.Is(err, bundles.ErrRegistryUnavailable) {
		t.Fatalf("Verify(hanging registry) = %v, want ErrRegistryUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Verify(hanging registry) took %v with a 300ms timeout", d)
	}
}
