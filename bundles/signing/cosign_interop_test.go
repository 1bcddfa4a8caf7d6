package signing_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpfleet/bpfleet/bundles/signing"
	"github.com/bpfleet/bpfleet/test/support/privileged"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

// TestStockCosignInterop checks both directions against the cosign v2 CLI
// (go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5): keys made
// and signatures written by stock cosign verify here, and ours verify with
// `cosign verify --insecure-ignore-tlog`. Nothing leaves the machine: no
// tlog upload, and a fresh HOME and TUF_ROOT.
func TestStockCosignInterop(t *testing.T) {
	cosignBin := privileged.RequireCommand(t, "cosign")
	reg := registry.Start(t, registry.Options{})
	_, digest := testbundle.Push(t, reg, "ebpf/xdp", "v1", testbundle.Source{})
	byDigest := reg.Repository("ebpf/xdp") + "@" + digest
	home := t.TempDir()
	cosign := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(cosignBin, args...)
		cmd.Dir = home
		cmd.Env = []string{"HOME=" + home, "TUF_ROOT=" + filepath.Join(home, "tuf"), "COSIGN_PASSWORD=interop", "PATH=" + os.Getenv("PATH")}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("cosign %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	ctx := context.Background()

	// Stock cosign makes the keys and signs; we verify.
	cosign("generate-key-pair")
	cosign("sign", "--key", filepath.Join(home, "cosign.key"), "--tlog-upload=false", "--yes", byDigest)
	if _, err := signing.Verify(ctx, reg.Repository("ebpf/xdp"), digest, [][]byte{readPEM(t, filepath.Join(home, "cosign.pub"))}, opts); err != nil {
		t.Fatalf("Verify of a stock cosign signature: %v", err)
	}

	// We sign with cosign's key file (same encrypted format); stock cosign
	// verifies, with only our key, both signatures being present.
	ours := newKeys(t)
	if err := signing.Sign(ctx, byDigest, filepath.Join(home, "cosign.key"), []byte("interop"), opts); err != nil {
		t.Fatalf("Sign with a stock cosign key: %v", err)
	}
	if err := signing.Sign(ctx, byDigest, ours.priv, password, opts); err != nil {
		t.Fatal(err)
	}
	out := cosign("verify", "--key", ours.pub, "--insecure-ignore-tlog", byDigest)
	if !strings.Contains(out, `"docker-manifest-digest":"`+digest+`"`) {
		t.Fatalf("cosign verify output lacks the digest claim:\n%s", out)
	}
}
