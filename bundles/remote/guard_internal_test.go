package remote

import (
	"net/http"
	"testing"
)

type recorder struct{ urls []string }

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.urls = append(r.urls, req.URL.String())
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: req}, nil
}

func TestSchemeGuard(t *testing.T) {
	tests := []struct {
		opts Options // client options
		url  string  // requested
		want string  // sent
	}{
		{url: "http://127.0.0.1:5000/v2/", want: "http://127.0.0.1:5000/v2/"},
		{url: "http://10.0.0.7:5000/v2/", want: "https://10.0.0.7:5000/v2/"},   // ggcr's RFC 1918 default refused
		{url: "http://registry.local/v2/", want: "https://registry.local/v2/"}, // ggcr's .local default refused
		{url: "https://10.0.0.7:5000/v2/", want: "https://10.0.0.7:5000/v2/"},
		{opts: Options{PlainHTTP: true, Insecure: true}, url: "http://10.0.0.7:5000/v2/", want: "http://10.0.0.7:5000/v2/"},
	}
	for _, tt := range tests {
		rec := &recorder{}
		req, err := http.NewRequest(http.MethodGet, tt.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := (schemeGuard{base: rec, opts: tt.opts}).RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		if len(rec.urls) != 1 || rec.urls[0] != tt.want {
			t.Errorf("%s with %+v sent %v, want %s", tt.url, tt.opts, rec.urls, tt.want)
		}
	}
}
