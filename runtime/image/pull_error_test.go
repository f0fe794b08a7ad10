package image

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/crib-runtime/crib/internal/config"
	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/test/testregistry"
)

// TestPullErrorLeadsWithDecisiveCause regresses issue 12 #10: a mirror that
// answered "manifest unknown" was reported after (and classified as) the
// DNS failure of an upstream that could not be reached, and the registry's
// error detail came out as Go map syntax.
func TestPullErrorLeadsWithDecisiveCause(t *testing.T) {
	testutil.RequireRoot(t)
	mirror := testregistry.Start(t)
	// The repository exists, the tag does not: MANIFEST_UNKNOWN.
	mirror.Push(t, "lib/img:2", testregistry.Random(t, 1, 16<<10, 11))
	dead := testregistry.Start(t)
	deadHost := dead.Host
	dead.Close()
	const unresolvable = "nosuch.invalid" // RFC 6761: never resolves

	for _, tc := range []struct {
		name      string
		ref       string
		hosts     map[string]config.Host
		kind      error
		lead      string   // what the message must start with after "pull image <ref>: "
		then      []string // what must follow, in this order
		notKind   error
		notInText string
	}{{
		name:  "mirror answers, upstream unresolvable",
		ref:   unresolvable + "/lib/img:1",
		hosts: map[string]config.Host{unresolvable: {Mirrors: []config.Mirror{{Endpoint: "http://" + mirror.Host}}}},
		kind:  errdefs.ErrNotFound, notKind: errdefs.ErrUnavailable,
		lead: "mirror " + mirror.Host + ": manifest unknown",
		then: []string{"also tried", "registry " + unresolvable + " unreachable"},
	}, {
		name:  "mirror unreachable, upstream answers",
		ref:   mirror.Host + "/lib/img:1",
		hosts: map[string]config.Host{mirror.Host: {Mirrors: []config.Mirror{{Endpoint: "http://" + deadHost}}}},
		kind:  errdefs.ErrNotFound, notKind: errdefs.ErrUnavailable,
		lead: "registry " + mirror.Host + ": manifest unknown",
		then: []string{"also tried", "mirror " + deadHost + " unreachable"},
	}, {
		name: "unknown repository",
		ref:  mirror.Host + "/nothing/here:1",
		kind: errdefs.ErrNotFound,
		lead: "registry " + mirror.Host + ": name unknown",
	}, {
		name:  "both unreachable",
		ref:   unresolvable + "/lib/img:1",
		hosts: map[string]config.Host{unresolvable: {Mirrors: []config.Mirror{{Endpoint: "http://" + deadHost}}}},
		kind:  errdefs.ErrUnavailable, notKind: errdefs.ErrNotFound,
		// Equally undecided: the upstream, the authority, leads.
		lead: "registry " + unresolvable + " unreachable",
		then: []string{"also tried", "mirror " + deadHost + " unreachable"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, t.TempDir(), config.Registry{Hosts: tc.hosts})
			_, err := s.Pull(context.Background(), tc.ref, Auth{})
			if err == nil {
				t.Fatal("pull succeeded")
			}
			msg := err.Error()
			t.Logf("error: %s", msg)
			if !errors.Is(err, tc.kind) {
				t.Errorf("error is not %v", tc.kind)
			}
			if tc.notKind != nil && errors.Is(err, tc.notKind) {
				t.Errorf("error is also %v: one cause decides the kind", tc.notKind)
			}
			prefix := "pull image " + tc.ref + ": "
			if !strings.HasPrefix(msg, prefix+tc.lead) {
				t.Errorf("error does not lead with %q", tc.lead)
			}
			rest := msg
			for _, w := range tc.then {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("error lacks %q (in this order: %q)", w, tc.then)
					break
				}
				rest = rest[i+len(w):]
			}
			for _, bad := range []string{"map[", "\n"} {
				if strings.Contains(msg, bad) {
					t.Errorf("error contains %q", bad)
				}
			}
			if len(s.List()) != 0 {
				t.Fatal("an image was committed")
			}
		})
	}
}

// TestRegistryErrorDetail checks how a registry's error body is worded:
// distribution sends a detail object, which go-containerregistry prints
// as a Go map.
func TestRegistryErrorDetail(t *testing.T) {
	u, _ := url.Parse("https://registry.example/v2/lib/img/manifests/1?ns=docker.io")
	resp := &http.Response{
		StatusCode: http.StatusNotFound,
		Request:    &http.Request{Method: http.MethodGet, URL: u},
		Body: io.NopCloser(strings.NewReader(
			`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"1","Name":"lib/img"}}]}`)),
	}
	terr := transport.CheckError(resp, http.StatusOK)
	if terr == nil {
		t.Fatal("CheckError accepted a 404")
	}
	err := classify(terr, "mirror registry.example", false)
	want := `mirror registry.example: manifest unknown: GET https://registry.example/v2/lib/img/manifests/1: ` +
		`404 MANIFEST_UNKNOWN: manifest unknown (detail {"Name":"lib/img","Tag":"1"}): not found`
	if err.Error() != want || !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

// TestPullErrorHidesURLQuery: a failed request's URL (a signed blob
// redirect, say) reaches the error without its query or user info.
func TestPullErrorHidesURLQuery(t *testing.T) {
	err := classify(&url.Error{Op: "Get",
		URL: "https://user:pw@blobs.example.invalid/b?X-Amz-Signature=secret&X-Amz-Credential=key",
		Err: &net.DNSError{Err: "no such host", Name: "blobs.example.invalid", IsNotFound: true}}, "registry example.invalid", false)
	if msg := err.Error(); strings.Contains(msg, "secret") || strings.Contains(msg, "pw") || !strings.Contains(msg, "blobs.example.invalid/b") {
		t.Errorf("error %q shows the URL's query or user info, or not the URL", msg)
	}
}
