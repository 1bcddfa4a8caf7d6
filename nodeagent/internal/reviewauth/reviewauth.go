// Package reviewauth guards an agent's HTTP endpoints the way the kubelet
// guards its own: the caller's bearer token is authenticated with a
// TokenReview and the request authorized with a SubjectAccessReview, both
// answered by the API server. Decisions are cached for a short while, so a
// scraper polling every few seconds costs the API server one review pair a
// minute.
package reviewauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ErrUnauthenticated and ErrForbidden are the two refusals.
var (
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrForbidden       = errors.New("forbidden")
)

// Reviewer asks the API server who a token is and what it may do.
type Reviewer struct {
	Client kubernetes.Interface
	// TTL is how long a decision is reused; zero means one minute.
	TTL time.Duration

	mu    sync.Mutex
	cache map[cacheKey]decision
}

type cacheKey struct {
	token string
	attrs authorizationv1.NonResourceAttributes
	res   authorizationv1.ResourceAttributes
}

type decision struct {
	user string
	err  error
	at   time.Time
}

// Allowed reviews token for the request described by either nonResource
// or res, and returns the user's name, or an error wrapping
// ErrUnauthenticated or ErrForbidden (or the API server's error).
func (r *Reviewer) Allowed(ctx context.Context, token string, nonResource *authorizationv1.NonResourceAttributes, res *authorizationv1.ResourceAttributes) (string, error) {
	if token == "" {
		return "", fmt.Errorf("%w: no bearer token", ErrUnauthenticated)
	}
	key := cacheKey{token: token}
	if nonResource != nil {
		key.attrs = *nonResource
	}
	if res != nil {
		key.res = *res
	}
	ttl := r.TTL
	if ttl == 0 {
		ttl = time.Minute
	}
	r.mu.Lock()
	if d, ok := r.cache[key]; ok && time.Since(d.at) < ttl {
		r.mu.Unlock()
		return d.user, d.err
	}
	r.mu.Unlock()

	user, err := r.review(ctx, token, nonResource, res)
	if err != nil && !errors.Is(err, ErrUnauthenticated) && !errors.Is(err, ErrForbidden) {
		return "", err // the API server did not answer: ask again next time
	}
	r.mu.Lock()
	if r.cache == nil || len(r.cache) > 4096 {
		r.cache = map[cacheKey]decision{}
	}
	r.cache[key] = decision{user: user, err: err, at: time.Now()}
	r.mu.Unlock()
	return user, err
}

func (r *Reviewer) review(ctx context.Context, token string, nonResource *authorizationv1.NonResourceAttributes, res *authorizationv1.ResourceAttributes) (string, error) {
	tr, err := r.Client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("review token: %w", err)
	}
	if !tr.Status.Authenticated {
		return "", fmt.Errorf("%w: %s", ErrUnauthenticated, tr.Status.Error)
	}
	u := tr.Status.User
	extra := make(map[string]authorizationv1.ExtraValue, len(u.Extra))
	for k, v := range u.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := r.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
			NonResourceAttributes: nonResource, ResourceAttributes: res,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return u.Username, fmt.Errorf("review access: %w", err)
	}
	if !sar.Status.Allowed {
		return u.Username, fmt.Errorf("%w: %s may not %s", ErrForbidden, u.Username, describe(nonResource, res))
	}
	return u.Username, nil
}

func describe(nonResource *authorizationv1.NonResourceAttributes, res *authorizationv1.ResourceAttributes) string {
	if nonResource != nil {
		return nonResource.Verb + " " + nonResource.Path
	}
	return fmt.Sprintf("%s %s.%s %s", res.Verb, res.Resource, res.Group, res.Name)
}

// BearerToken is the token of an "Authorization: Bearer …" header.
func BearerToken(req *http.Request) string {
	h := req.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// Wrap serves next only to callers allowed to get the request's path (a
// non-resource URL, as /metrics): 401 without a valid token, 403 without
// the right.
func (r *Reviewer) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, err := r.Allowed(req.Context(), BearerToken(req), &authorizationv1.NonResourceAttributes{Path: req.URL.Path, Verb: "get"}, nil)
		switch {
		case err == nil:
			next.ServeHTTP(w, req)
		case errors.Is(err, ErrUnauthenticated):
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
		case errors.Is(err, ErrForbidden):
			http.Error(w, err.Error(), http.StatusForbidden)
		default:
			http.Error(w, "review the request: "+err.Error(), http.StatusServiceUnavailable)
		}
	})
}
