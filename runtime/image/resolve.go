package image

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/crib-runtime/crib/internal/config"
)

// Auth is the credential a pull presents, as the kubelet passes it.
type Auth struct {
	Username      string
	Password      string
	Auth          string // base64 of "username:password"
	ServerAddress string // the registry the credential belongs to; empty means the image's
	IdentityToken string
	RegistryToken string
}

func (a Auth) empty() bool {
	return a.Username == "" && a.Password == "" && a.Auth == "" && a.IdentityToken == "" && a.RegistryToken == ""
}

// endpoint is one place a registry's repositories can be fetched from.
type endpoint struct {
	host       string // host[:port]
	plainHTTP  bool
	skipVerify bool
	mirror     bool
}

// resolver turns references into go-containerregistry requests, following the
// registry configuration (mirrors first, then the upstream server).
type resolver struct {
	hosts    map[string]config.Host
	platform v1.Platform
	secure   http.RoundTripper
	insecure http.RoundTripper // TLS verification off, for skip_verify hosts
}

func newResolver(reg config.Registry, platform v1.Platform) *resolver {
	base := remote.DefaultTransport.(*http.Transport).Clone()
	skip := base.Clone()
	skip.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // only for hosts configured with skip_verify
	return &resolver{hosts: reg.Hosts, platform: platform, secure: base, insecure: skip}
}

// endpoints lists where to look for domain's repositories, in order.
func (r *resolver) endpoints(domain string) []endpoint {
	h, ok := r.hosts[domain]
	if !ok {
		h = r.hosts[config.DefaultHostKey]
	}
	var eps []endpoint
	for _, m := range h.Mirrors {
		u, _ := config.ParseEndpoint(m.Endpoint) // validated with the config
		eps = append(eps, endpoint{host: u.Host, plainHTTP: u.Scheme == "http", skipVerify: m.SkipVerify, mirror: true})
	}
	if h.SkipServer && len(eps) > 0 {
		return eps
	}
	up := endpoint{host: domain, plainHTTP: h.PlainHTTP, skipVerify: h.SkipVerify}
	if h.Server != "" {
		u, _ := config.ParseEndpoint(h.Server)
		up.host, up.plainHTTP = u.Host, u.Scheme == "http"
	}
	return append(eps, up)
}

// who names the endpoint in errors: a reader must tell a mirror from the
// registry itself.
func (ep endpoint) who() string {
	if ep.mirror {
		return "mirror " + ep.host
	}
	return "registry " + ep.host
}

// repository names ref's repository at endpoint ep.
func (ep endpoint) repository(ref Reference) (name.Repository, error) {
	var opts []name.Option
	if ep.plainHTTP {
		opts = append(opts, name.Insecure)
	}
	return name.NewRepository(ep.host+"/"+ref.Path, opts...)
}

// options builds the request options for one endpoint. Credentials go only to
// the registry they belong to: the upstream, or a mirror the kubelet named in
// ServerAddress, so a mirror never sees another registry's password.
func (r *resolver) options(ctx context.Context, ref Reference, ep endpoint, auth Auth) []remote.Option {
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(r.transport(ep)),
		remote.WithPlatform(r.platform),
		remote.WithUserAgent("crib"),
		remote.WithRetryBackoff(remote.Backoff{Duration: 250 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 3}),
	}
	if ep.sendsCredentials(ref, auth) {
		opts = append(opts, remote.WithAuth(ep.authenticator(ref, auth)))
	}
	return opts
}

func (ep endpoint) authenticator(ref Reference, auth Auth) authn.Authenticator {
	if !ep.sendsCredentials(ref, auth) {
		return authn.Anonymous
	}
	return authn.FromConfig(authn.AuthConfig{
		Username: auth.Username, Password: auth.Password, Auth: auth.Auth,
		IdentityToken: auth.IdentityToken, RegistryToken: auth.RegistryToken,
	})
}

func (r *resolver) transport(ep endpoint) http.RoundTripper {
	if ep.skipVerify {
		return r.insecure
	}
	return r.secure
}

// blobFetcher downloads blobs of one repository with one authenticated
// transport (one token exchange per pull, not per layer). It reads the body
// itself rather than through go-containerregistry's layer, whose verifying
// reader would hash every byte a second time.
type blobFetcher struct {
	repo   name.Repository
	who    string // the endpoint, as errors name it
	client *http.Client
}

func (r *resolver) blobFetcher(ctx context.Context, ref Reference, ep endpoint, auth Auth) (*blobFetcher, error) {
	repo, err := ep.repository(ref)
	if err != nil {
		return nil, fmt.Errorf("image reference %s at %s: %v: %w", ref, ep.host, err, errdefs.ErrInvalidArgument)
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, ep.authenticator(ref, auth), r.transport(ep),
		[]string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, classify(err, ep.who(), !auth.empty())
	}
	return &blobFetcher{repo: repo, who: ep.who(), client: &http.Client{Transport: rt}}, nil
}

// open starts the download of a blob; the caller checks size and digest.
func (f *blobFetcher) open(ctx context.Context, dgst string) (io.ReadCloser, error) {
	u := url.URL{Scheme: f.repo.Scheme(), Host: f.repo.RegistryStr(), Path: "/v2/" + f.repo.RepositoryStr() + "/blobs/" + dgst}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, classify(err, f.who, false)
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		resp.Body.Close()
		return nil, classify(err, f.who, false)
	}
	return resp.Body, nil
}

func (ep endpoint) sendsCredentials(ref Reference, auth Auth) bool {
	if auth.empty() {
		return false
	}
	server := serverHost(auth.ServerAddress)
	if server == "index.docker.io" {
		server = dockerHub
	}
	if ep.mirror {
		return server == ep.host
	}
	return server == "" || server == ref.Domain || server == ep.host
}

// serverHost reduces "https://index.docker.io/v1/" and friends to a host.
func serverHost(addr string) string {
	if addr == "" {
		return ""
	}
	if strings.Contains(addr, "://") {
		if u, err := url.Parse(addr); err == nil {
			return u.Host
		}
	}
	host, _, _ := strings.Cut(addr, "/")
	return host
}

// resolve fetches the descriptor ref names, trying each endpoint in turn.
func (r *resolver) resolve(ctx context.Context, ref Reference, auth Auth) (*remote.Descriptor, endpoint, error) {
	var tried []attempt
	for _, ep := range r.endpoints(ref.Domain) {
		repo, err := ep.repository(ref)
		if err != nil {
			return nil, ep, fmt.Errorf("image reference %s at %s: %v: %w", ref, ep.host, err, errdefs.ErrInvalidArgument)
		}
		var nref name.Reference = repo.Tag(ref.Tag)
		if ref.Digest != "" {
			nref = repo.Digest(ref.Digest)
		}
		desc, err := remote.Get(nref, r.options(ctx, ref, ep, auth)...)
		if err == nil {
			return desc, ep, nil
		}
		if ctx.Err() != nil {
			return nil, ep, ctx.Err()
		}
		var terr *transport.Error
		tried = append(tried, attempt{err: classify(err, ep.who(), !auth.empty()), answered: errors.As(err, &terr)})
	}
	return nil, endpoint{}, decisive(tried)
}

// attempt is how one endpoint failed a resolve.
type attempt struct {
	err      error // classified
	answered bool  // the endpoint sent an HTTP response
}

// weight ranks an attempt for decisive: a registry's definite answer (not
// found, credentials, access, a bad manifest) over an answer that decides
// nothing (5xx, 429, an odd status) over no answer at all (DNS, refused,
// timed out).
func (a attempt) weight() int {
	switch {
	case errdefs.IsNotFound(a.err), errdefs.IsUnauthorized(a.err), errdefs.IsPermissionDenied(a.err),
		errdefs.IsInvalidArgument(a.err), errdefs.IsDataLoss(a.err), errdefs.IsNotImplemented(a.err):
		return 2
	case a.answered:
		return 1
	}
	return 0
}

// decisive puts the failure that says most about why a pull failed first,
// and makes it the only one the result wraps (one cause, one kind): a
// mirror that said "manifest unknown" is why the pull failed, not the
// upstream whose name did not resolve. Among equals the later endpoint
// leads: the upstream (or the last mirror under skip_server) is the
// authority. The others follow as text, in the order they were tried.
func decisive(tried []attempt) error {
	lead := len(tried) - 1
	for i := len(tried) - 2; i >= 0; i-- {
		if tried[i].weight() > tried[lead].weight() {
			lead = i
		}
	}
	if len(tried) == 1 {
		return tried[lead].err
	}
	others := make([]string, 0, len(tried)-1)
	for i, a := range tried {
		if i != lead {
			others = append(others, a.err.Error())
		}
	}
	return fmt.Errorf("%w (also tried: %s)", tried[lead].err, strings.Join(others, "; "))
}

// classify attaches an errdefs kind to a registry error; who names the
// endpoint ("mirror host:port" or "registry host").
func classify(err error, who string, hadAuth bool) error {
	var terr *transport.Error
	if errors.As(err, &terr) {
		// go-containerregistry words the detail of a registry error as a Go
		// value (map[Tag:1]); say it in the registry's own terms.
		text := strings.Replace(err.Error(), terr.Error(), describe(terr), 1)
		for _, d := range terr.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return fmt.Errorf("%s: %s: %s: %w", who, codeWords(d.Code), text, errdefs.ErrNotFound)
			case transport.DeniedErrorCode:
				return fmt.Errorf("%s: access denied: %s: %w", who, text, errdefs.ErrPermissionDenied)
			}
		}
		switch code := terr.StatusCode; {
		case code == http.StatusUnauthorized && hadAuth:
			return fmt.Errorf("%s rejected the credentials: %s: %w", who, text, errdefs.ErrUnauthenticated)
		case code == http.StatusUnauthorized:
			return fmt.Errorf("%s requires credentials and none were given: %s: %w", who, text, errdefs.ErrUnauthenticated)
		case code == http.StatusForbidden:
			return fmt.Errorf("%s: access denied: %s: %w", who, text, errdefs.ErrPermissionDenied)
		case code == http.StatusNotFound:
			return fmt.Errorf("%s: not found: %s: %w", who, text, errdefs.ErrNotFound)
		case code == http.StatusTooManyRequests || code >= 500:
			return fmt.Errorf("%s unavailable: %s: %w", who, text, errdefs.ErrUnavailable)
		}
		return fmt.Errorf("%s: %s", who, text)
	}
	redactURL(err)
	var nerr net.Error
	var dnsErr *net.DNSError
	if errors.As(err, &nerr) || errors.As(err, &dnsErr) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return fmt.Errorf("%s unreachable: %v: %w", who, err, errdefs.ErrUnavailable)
	}
	return fmt.Errorf("%s: %w", who, err)
}

// redactURL drops the query and user info from the URL of a failed request
// in err: a registry's blob redirect may carry a signed URL whose query is
// a credential, and the error reaches the kubelet's events and logs.
func redactURL(err error) {
	var uerr *url.Error
	if !errors.As(err, &uerr) {
		return
	}
	if u, perr := url.Parse(uerr.URL); perr == nil && (u.RawQuery != "" || u.User != nil) {
		u.RawQuery, u.User = "", nil
		uerr.URL = u.String()
	}
}

// codeWords turns MANIFEST_UNKNOWN into "manifest unknown".
func codeWords(c transport.ErrorCode) string {
	return strings.ToLower(strings.ReplaceAll(string(c), "_", " "))
}

// describe words a registry's error response on one line: the request
// (without its query), the status and each diagnostic, its detail as JSON.
func describe(terr *transport.Error) string {
	var b strings.Builder
	if r := terr.Request; r != nil && r.URL != nil {
		u := *r.URL
		u.RawQuery, u.User = "", nil
		fmt.Fprintf(&b, "%s %s: ", r.Method, u.String())
	}
	fmt.Fprintf(&b, "%d", terr.StatusCode)
	if len(terr.Errors) == 0 {
		fmt.Fprintf(&b, " %s", http.StatusText(terr.StatusCode))
	}
	for i, d := range terr.Errors {
		if i > 0 {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " %s: %s", d.Code, d.Message)
		if d.Detail != nil {
			if j, err := json.Marshal(d.Detail); err == nil {
				fmt.Fprintf(&b, " (detail %s)", j)
			}
		}
	}
	return b.String()
}
