package bundles_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/sigstore/cosign/v2/pkg/cosign"

	"github.com/bpfleet/bpfleet/bundles/cache"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/signing"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

type benchFixture struct {
	repo, ref, digest, priv string
	pub                     [][]byte
	opts                    remote.Options
}

func setupBench(b *testing.B) benchFixture {
	b.Helper()
	reg := registry.Start(b, registry.Options{})
	ref, digest := testbundle.Push(b, reg, "ebpf/xdp", "v1", testbundle.Source{})
	password := []byte("bench")
	priv, pub, err := signing.GenerateKeyPair(b.TempDir(), password)
	if err != nil {
		b.Fatal(err)
	}
	opts := remote.Options{Timeout: 10 * time.Second}
	if err := signing.Sign(context.Background(), ref, priv, password, opts); err != nil {
		b.Fatal(err)
	}
	pem, err := os.ReadFile(pub)
	if err != nil {
		b.Fatal(err)
	}
	return benchFixture{repo: reg.Repository("ebpf/xdp"), ref: ref, digest: digest, priv: priv, pub: [][]byte{pem}, opts: opts}
}

// BenchmarkPullVerify measures what a node does per bundle: verify the
// signature (always against the registry) and get the bytes, from the node
// cache (hit: digests re-checked on disk) or from the registry.
func BenchmarkPullVerify(b *testing.B) {
	f := setupBench(b)
	ctx := context.Background()
	client := remote.New(f.opts)
	b.Run("cache", func(b *testing.B) {
		c, err := cache.Open(b.TempDir(), client)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Get(ctx, f.repo, f.digest); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := signing.Verify(ctx, f.repo, f.digest, f.pub, f.opts); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Get(ctx, f.repo, f.digest); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("registry", func(b *testing.B) {
		for b.Loop() {
			if _, err := signing.Verify(ctx, f.repo, f.digest, f.pub, f.opts); err != nil {
				b.Fatal(err)
			}
			if _, err := client.Fetch(ctx, f.repo, f.digest); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cache-only", func(b *testing.B) {
		c, err := cache.Open(b.TempDir(), client)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Get(ctx, f.repo, f.digest); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := c.Get(ctx, f.repo, f.digest); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify-only", func(b *testing.B) {
		for b.Loop() {
			if _, err := signing.Verify(ctx, f.repo, f.digest, f.pub, f.opts); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSign measures signing a bundle by digest, signature pushed:
// from the encrypted key file (scrypt decryption included, as in
// `bpfleet bundle sign`) and with a key already loaded.
func BenchmarkSign(b *testing.B) {
	f := setupBench(b)
	ref := f.repo + "@" + f.digest
	b.Run("key-file", func(b *testing.B) {
		for b.Loop() {
			if err := signing.Sign(context.Background(), ref, f.priv, []byte("bench"), f.opts); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("loaded-key", func(b *testing.B) {
		keyPEM, err := os.ReadFile(f.priv)
		if err != nil {
			b.Fatal(err)
		}
		sv, err := cosign.LoadPrivateKey(keyPEM, []byte("bench"), nil)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := signing.SignWith(context.Background(), ref, sv, f.opts); err != nil {
				b.Fatal(err)
			}
		}
	})
}
