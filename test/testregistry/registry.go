// Package testregistry serves OCI images from an in-process registry on
// 127.0.0.1 and builds the images crib's tests use, so no test reaches the
// internet. Faults (basic auth, corrupt, stalled or oversized blobs) are switchable per
// registry. Test-only code.
package testregistry

import (
	"bytes"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/crib-runtime/crib/sandbox/nsfs"
)

// Registry is a running in-process registry.
type Registry struct {
	// Host is "127.0.0.1:<port>", ready to prefix repository names.
	Host string
	srv  *httptest.Server

	mu       sync.Mutex // guards the fault switches below
	user     string
	password string
	corrupt  map[string]bool          // blob digests served with flipped bytes
	stall    map[string]chan struct{} // blob digests that stall halfway until the channel closes
	stalled  chan string              // reports each stalled request
	requests map[string]int           // blob GETs per digest
	pad      map[string]int64         // blob digests served with this many extra bytes after them
	sent     map[string]int64         // bytes written for padded blobs, summed over requests
}

// Start serves a registry until the test ends.
func Start(t testing.TB) *Registry {
	t.Helper()
	r := &Registry{corrupt: map[string]bool{}, stall: map[string]chan struct{}{},
		stalled: make(chan string, 16), requests: map[string]int{}, pad: map[string]int64{}, sent: map[string]int64{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.srv = httptest.NewUnstartedServer(r.wrap(registry.New(registry.Logger(log.New(io.Discard, "", 0)))))
	r.srv.Listener.Close()
	r.srv.Listener = l
	r.srv.Start()
	r.Host = l.Addr().String()
	t.Cleanup(func() {
		r.mu.Lock()
		for d, ch := range r.stall {
			close(ch)
			delete(r.stall, d)
		}
		r.mu.Unlock()
		r.srv.CloseClientConnections()
		r.srv.Close()
	})
	return r
}

// Close stops the registry now, making its host unreachable.
func (r *Registry) Close() { r.srv.CloseClientConnections(); r.srv.Close() }

// RequireAuth makes every request need HTTP basic auth with these credentials.
func (r *Registry) RequireAuth(user, password string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.user, r.password = user, password
}

// Corrupt makes GETs of the blob with this digest return altered bytes.
func (r *Registry) Corrupt(digest string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.corrupt[digest] = true
}

// Pad makes GETs of the blob with this digest send extra filler bytes after
// the blob, without a Content-Length: a blob larger than its manifest says.
// Sent tells how many bytes the client took before it hung up.
func (r *Registry) Pad(digest string, extra int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pad[digest] = extra
}

// Sent counts the bytes written so far for GETs of a padded blob.
func (r *Registry) Sent(digest string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent[digest]
}

// Stall makes GETs of the blob send half of it and then hang until release
// is called; Stalled reports when a request has reached that point.
func (r *Registry) Stall(digest string) (release func()) {
	ch := make(chan struct{})
	r.mu.Lock()
	r.stall[digest] = ch
	r.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			delete(r.stall, digest)
			r.mu.Unlock()
			close(ch)
		})
	}
}

// Stalled delivers the digest of each blob request that reached a stall.
func (r *Registry) Stalled() <-chan string { return r.stalled }

// BlobRequests counts the GETs of a blob so far.
func (r *Registry) BlobRequests(digest string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests[digest]
}

func (r *Registry) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		user, pass := r.user, r.password
		r.mu.Unlock()
		if user != "" {
			u, p, ok := req.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="testregistry"`)
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
		}
		_, digest, isBlob := strings.Cut(req.URL.Path, "/blobs/")
		if !isBlob || req.Method != http.MethodGet {
			next.ServeHTTP(w, req)
			return
		}
		r.mu.Lock()
		r.requests[digest]++
		corrupt, stall, pad := r.corrupt[digest], r.stall[digest], r.pad[digest]
		r.mu.Unlock()
		if pad > 0 {
			r.servePadded(w, req, next, digest, pad)
			return
		}
		if !corrupt && stall == nil {
			next.ServeHTTP(w, req)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, req)
		body := rec.Body.Bytes()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		if corrupt {
			body = bytes.Clone(body)
			body[len(body)/2] ^= 0xff
		}
		if stall == nil {
			_, _ = w.Write(body)
			return
		}
		_, _ = w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		select {
		case r.stalled <- digest:
		default:
		}
		select {
		case <-stall:
		case <-req.Context().Done():
			return
		}
		_, _ = w.Write(body[len(body)/2:])
	})
}

// servePadded sends the blob, then pad filler bytes, counting what the
// client took.
func (r *Registry) servePadded(w http.ResponseWriter, req *http.Request, next http.Handler, digest string, pad int64) {
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, req)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.Code)
	count := func(n int) {
		r.mu.Lock()
		r.sent[digest] += int64(n)
		r.mu.Unlock()
	}
	n, err := w.Write(rec.Body.Bytes())
	count(n)
	filler := bytes.Repeat([]byte{'x'}, 64<<10)
	for err == nil && pad > 0 {
		chunk := filler[:min(int64(len(filler)), pad)]
		n, err = w.Write(chunk)
		count(n)
		pad -= int64(n)
	}
}

// Push uploads img as repo:tag ("busybox:1" becomes 127.0.0.1:<port>/busybox:1)
// and returns the reference by tag and by digest.
func (r *Registry) Push(t testing.TB, repoTag string, img v1.Image) (byTag, byDigest string) {
	t.Helper()
	ref, err := name.ParseReference(r.Host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	user, pass := r.user, r.password
	r.mu.Unlock()
	opts := []remote.Option{}
	if user != "" {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: user, Password: pass}))
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref.String(), ref.Context().String() + "@" + d.String()
}

// PushIndex uploads a multi-platform index under repo:tag.
func (r *Registry) PushIndex(t testing.TB, repoTag string, idx v1.ImageIndex) string {
	t.Helper()
	ref, err := name.ParseReference(r.Host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("push index %s: %v", ref, err)
	}
	return ref.String()
}

// ListenIn serves the registry also inside the network namespace at nsPath
// (such as /run/netns/<name>), for a daemon that runs there, and returns the
// host:port it answers on in that namespace. Images pushed through Host are
// pulled through the returned host under the same repository names.
func (r *Registry) ListenIn(t testing.TB, nsPath string) string {
	t.Helper()
	return r.ListenInAt(t, nsPath, "127.0.0.1:0")
}

// ListenInAt is ListenIn on a given address, for a daemon configured with
// its mirror before the namespace existed.
func (r *Registry) ListenInAt(t testing.TB, nsPath, addr string) string {
	t.Helper()
	var l net.Listener
	err := nsfs.Do(nsPath, nsfs.Net, func() (err error) {
		// A socket belongs to the namespace of the thread that creates it.
		l, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: r.srv.Config.Handler}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}
