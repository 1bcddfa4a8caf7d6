package remote

import (
	"fmt"

	"oras.land/oras-go/v2/registry"

	"github.com/bpfleet/bpfleet/bundles"
)

// Reference is a parsed bundle reference.
type Reference struct {
	// Registry is the host[:port].
	Registry string
	// Repository is registry/path, the form trust policies and Fetch take.
	Repository string
	// Tag is set for registry/path:tag references.
	Tag string
	// Digest is set for registry/path@sha256:… references.
	Digest string
}

// ParseReference parses registry/path[:tag][@digest]. A reference without
// tag and digest gets tag "latest".
func ParseReference(ref string) (Reference, error) {
	r, err := registry.ParseReference(ref)
	if err != nil {
		return Reference{}, fmt.Errorf("%w: parse reference %q: %w", bundles.ErrBundleInvalid, ref, err)
	}
	out := Reference{Registry: r.Registry, Repository: r.Registry + "/" + r.Repository}
	if d, err := r.Digest(); err == nil {
		out.Digest = d.String()
	} else if r.Reference != "" {
		out.Tag = r.Reference
	} else {
		out.Tag = "latest"
	}
	return out, nil
}

// String returns the reference, by digest when known.
func (r Reference) String() string {
	if r.Digest != "" {
		return r.Repository + "@" + r.Digest
	}
	return r.Repository + ":" + r.Tag
}
