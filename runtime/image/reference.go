package image

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	digest "github.com/opencontainers/go-digest"
)

const (
	dockerHub     = "docker.io"
	dockerLibrary = "library/"
	defaultTag    = "latest"
)

// The grammar of distribution/reference: lower-case path components joined
// by single separators, and tags of at most 128 word characters. Compiled on
// first use: every crib process, "crib init" included, would pay for it at
// start otherwise.
var (
	componentRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	})
	tagRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`) })
)

// Reference is a normalised image reference, as the kubelet and crictl show
// them: "busybox" is docker.io/library/busybox:latest.
type Reference struct {
	// Domain is the registry host, e.g. "docker.io" or "127.0.0.1:5000".
	Domain string
	// Path is the repository path within the registry, e.g. "library/busybox".
	Path string
	// Tag is empty when the reference names only a digest.
	Tag string
	// Digest is "sha256:<hex>" when the reference pins one.
	Digest string
}

// Repository returns domain/path.
func (r Reference) Repository() string { return r.Domain + "/" + r.Path }

// String returns the canonical form: repository[:tag][@digest].
func (r Reference) String() string {
	s := r.Repository()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// TagRef is repository:tag, or "" for digest-only references.
func (r Reference) TagRef() string {
	if r.Tag == "" {
		return ""
	}
	return r.Repository() + ":" + r.Tag
}

// ParseReference normalises s the way docker does: a first component with a
// dot or a colon, or "localhost", is a registry; otherwise the registry is
// docker.io, whose one-component names live under library/. A reference
// without tag or digest gets the tag "latest".
func ParseReference(s string) (Reference, error) {
	if s == "" {
		return Reference{}, fmt.Errorf("image reference is empty: %w", errdefs.ErrInvalidArgument)
	}
	rest := s
	var ref Reference
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		d, err := digest.Parse(rest[at+1:])
		if err != nil {
			return Reference{}, fmt.Errorf("image reference %q: digest: %v: %w", s, err, errdefs.ErrInvalidArgument)
		}
		ref.Digest = d.String()
		rest = rest[:at]
	}
	if slash, colon := strings.LastIndex(rest, "/"), strings.LastIndex(rest, ":"); colon > slash {
		ref.Tag = rest[colon+1:]
		rest = rest[:colon]
		if !tagRE().MatchString(ref.Tag) {
			return Reference{}, fmt.Errorf("image reference %q: invalid tag %q: %w", s, ref.Tag, errdefs.ErrInvalidArgument)
		}
	}
	domain, path, found := strings.Cut(rest, "/")
	if !found || (!strings.ContainsAny(domain, ".:") && domain != "localhost" && strings.ToLower(domain) == domain) {
		domain, path = dockerHub, rest
	}
	if domain == "index.docker.io" {
		domain = dockerHub
	}
	if domain == dockerHub && !strings.Contains(path, "/") {
		path = dockerLibrary + path
	}
	ref.Domain, ref.Path = domain, path
	for _, comp := range strings.Split(path, "/") {
		if !componentRE().MatchString(comp) {
			return Reference{}, fmt.Errorf("image reference %q: invalid repository path component %q: %w", s, comp, errdefs.ErrInvalidArgument)
		}
	}
	if ref.Tag == "" && ref.Digest == "" {
		ref.Tag = defaultTag
	}
	// go-containerregistry's strict parser checks the grammar of every part.
	if _, err := name.ParseReference(ref.String(), name.StrictValidation); err != nil {
		return Reference{}, fmt.Errorf("image reference %q: %v: %w", s, err, errdefs.ErrInvalidArgument)
	}
	return ref, nil
}

// looksLikeID reports whether s is an image ID ("sha256:<64 hex>" or 64 hex).
func looksLikeID(s string) (string, bool) {
	hex := strings.TrimPrefix(s, "sha256:")
	if len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return "", false
	}
	return "sha256:" + hex, true
}
