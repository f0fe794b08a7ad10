package image

import (
	"context"
	"crypto/tls"
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
	host   string
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
		return nil, classify(err, ep.host, !auth.empty())
	}
	return &blobFetcher{repo: repo, host: ep.host, client: &http.Client{Transport: rt}}, nil
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
		return nil, classify(err, f.host, false)
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		resp.Body.Close()
		return nil, classify(err, f.host, false)
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
	var errs []error
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
		errs = append(errs, classify(err, ep.host, !auth.empty()))
	}
	// The last endpoint is the authority (the upstream unless skip_server):
	// its error decides the kind; earlier ones are context.
	last := errs[len(errs)-1]
	if len(errs) == 1 {
		return nil, endpoint{}, last
	}
	return nil, endpoint{}, fmt.Errorf("%w (mirrors tried first: %w)", last, errors.Join(errs[:len(errs)-1]...))
}

// classify attaches an errdefs kind to a registry error and names the host.
func classify(err error, host string, hadAuth bool) error {
	var terr *transport.Error
	if errors.As(err, &terr) {
		for _, d := range terr.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return fmt.Errorf("registry %s: not found: %v: %w", host, err, errdefs.ErrNotFound)
			case transport.DeniedErrorCode:
				return fmt.Errorf("registry %s: access denied: %v: %w", host, err, errdefs.ErrPermissionDenied)
			}
		}
		switch code := terr.StatusCode; {
		case code == http.StatusUnauthorized && hadAuth:
			return fmt.Errorf("registry %s rejected the credentials: %v: %w", host, err, errdefs.ErrUnauthenticated)
		case code == http.StatusUnauthorized:
			return fmt.Errorf("registry %s requires credentials and none were given: %v: %w", host, err, errdefs.ErrUnauthenticated)
		case code == http.StatusForbidden:
			return fmt.Errorf("registry %s: access denied: %v: %w", host, err, errdefs.ErrPermissionDenied)
		case code == http.StatusNotFound:
			return fmt.Errorf("registry %s: not found: %v: %w", host, err, errdefs.ErrNotFound)
		case code == http.StatusTooManyRequests || code >= 500:
			return fmt.Errorf("registry %s unavailable: %v: %w", host, err, errdefs.ErrUnavailable)
		}
		return fmt.Errorf("registry %s: %w", host, err)
	}
	var nerr net.Error
	var dnsErr *net.DNSError
	if errors.As(err, &nerr) || errors.As(err, &dnsErr) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return fmt.Errorf("registry %s unreachable: %v: %w", host, err, errdefs.ErrUnavailable)
	}
	return fmt.Errorf("registry %s: %w", host, err)
}
