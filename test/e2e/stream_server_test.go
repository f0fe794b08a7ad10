package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/test/harness"
)

// TestStreamingTLS: with streaming.tls the URLs are https, served with the
// configured key pair (a client that trusts it verifies the server, one
// that does not is refused), or with a certificate made at start.
func TestStreamingTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e := harness.NewEnv(t)
	certPEM, certFile, keyFile := writeKeyPair(t, e.Dir)
	e.WriteConfig("\n[streaming]\naddress = \"127.0.0.1:0\"\ntls = true\ntls_cert_file = \"" + certFile + "\"\ntls_key_file = \"" + keyFile + "\"\n")
	p := startHostPodIn(t, e, nil, "sleep", "3600")
	echo := func(cfg *rest.Config) (string, error) {
		resp, err := p.c.RawRt.Exec(ctx, &criapi.ExecRequest{ContainerId: p.id, Cmd: []string{"echo", "over tls"}, Stdout: true})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(resp.Url, "https://") {
			t.Fatalf("streaming URL %q with tls on", resp.Url)
		}
		var out strings.Builder
		err = harness.StreamWith(ctx, cfg, resp.Url, remotecommand.StreamOptions{Stdout: &out})
		return out.String(), err
	}
	out, err := echo(&rest.Config{TLSClientConfig: rest.TLSClientConfig{CAData: certPEM}})
	if err != nil || out != "over tls\n" {
		t.Fatalf("exec over TLS with the configured certificate: %q, %v", out, err)
	}
	if _, err := echo(&rest.Config{}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client that does not trust the certificate: %v", err)
	}

	// No key pair: a self-signed certificate, good for encryption only.
	e2 := harness.NewEnv(t)
	e2.WriteConfig("\n[streaming]\naddress = \"127.0.0.1:0\"\ntls = true\n")
	p = startHostPodIn(t, e2, nil, "sleep", "3600")
	if out, err := echo(&rest.Config{TLSClientConfig: rest.TLSClientConfig{Insecure: true}}); err != nil || out != "over tls\n" {
		t.Fatalf("exec over TLS with a self-signed certificate: %q, %v", out, err)
	}

	// Bad input: a key pair that cannot be read stops the daemon at start,
	// naming the file; a half-configured pair is a config error.
	e3 := harness.NewEnv(t)
	missing := filepath.Join(e3.Dir, "absent.crt")
	e3.WriteConfig("\n[streaming]\ntls = true\ntls_cert_file = \"" + missing + "\"\ntls_key_file = \"" + keyFile + "\"\n")
	d := e3.Spawn()
	if err := d.Wait(10 * time.Second); err == nil {
		t.Fatal("daemon started with a missing streaming certificate")
	}
	harness.MustContain(t, d.Logs.String(), missing)
	if n := testutil.MountsUnder(t, e3.Dir); n != 0 {
		t.Errorf("a daemon that refused its key pair left %d mounts", n)
	}
	e3.WriteConfig("\n[streaming]\ntls = true\ntls_cert_file = \"" + certFile + "\"\n")
	d = e3.Spawn()
	if err := d.Wait(10 * time.Second); err == nil {
		t.Fatal("daemon started with a certificate and no key")
	}
	harness.MustContain(t, d.Logs.String(), "streaming.tls_key_file")
	if _, err := os.Stat(e3.Sock); err == nil {
		t.Error("a daemon that refused to start left its socket")
	}
}

// writeKeyPair makes a self-signed certificate for 127.0.0.1 and returns
// it (PEM) and the paths of its certificate and key files.
func writeKeyPair(t *testing.T, dir string) ([]byte, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "crib e2e"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	certFile, keyFile := filepath.Join(dir, "stream.crt"), filepath.Join(dir, "stream.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPEM, certFile, keyFile
}

// TestStreamTokenExpiry: a streaming URL not used within a minute (the
// token lifetime of k8s.io/cri-streaming) is refused, and starts nothing.
// It waits that minute alongside the other tests.
func TestStreamTokenExpiry(t *testing.T) {
	t.Parallel()
	p := startHostPod(t, nil, "sleep", "3600")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	url := func(word string) string {
		resp, err := p.c.RawRt.Exec(ctx, &criapi.ExecRequest{ContainerId: p.id, Cmd: []string{"sh", "-c", "echo " + word + " > /tmp/ran"}, Stdout: true})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Url
	}
	stale := url("stale")
	time.Sleep(61 * time.Second)
	if err := harness.Stream(ctx, stale, remotecommand.StreamOptions{Stdout: io.Discard}); err == nil {
		t.Fatal("a streaming URL older than its token's lifetime was accepted")
	}
	// The server still serves fresh URLs, and the stale one ran nothing.
	if err := harness.Stream(ctx, url("fresh"), remotecommand.StreamOptions{Stdout: io.Discard}); err != nil {
		t.Fatalf("a fresh URL after the expired one: %v", err)
	}
	if out, _, err := execStream(ctx, p.c, p.id, "", "cat", "/tmp/ran"); err != nil || out != "fresh\n" {
		t.Fatalf("what ran: %q, %v", out, err)
	}
}

// TestRuntimeStatusShowsBoundStreamingAddress: with streaming.address
// "127.0.0.1:0" (the default: a free port) crictl info shows the port the
// daemon bound, the one its exec URLs point at, not ":0".
func TestRuntimeStatusShowsBoundStreamingAddress(t *testing.T) {
	c, _, id := hostPod(t, "sleep", "3600")
	ctx := context.Background()
	resp, err := c.Runtime.Status(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Streaming struct {
			Address string `json:"address"`
		} `json:"streaming"`
	}
	if err := json.Unmarshal([]byte(resp.GetInfo()["config"]), &cfg); err != nil {
		t.Fatalf("info.config: %v\n%s", err, resp.GetInfo()["config"])
	}
	host, port, err := net.SplitHostPort(cfg.Streaming.Address)
	if err != nil || host != "127.0.0.1" || port == "0" || port == "" {
		t.Fatalf("info.config.streaming.address = %q, want 127.0.0.1 and the port bound", cfg.Streaming.Address)
	}
	ex, err := c.RawRt.Exec(ctx, &criapi.ExecRequest{ContainerId: id, Cmd: []string{"true"}, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(ex.GetUrl())
	if err != nil || u.Host != cfg.Streaming.Address {
		t.Fatalf("exec URL %q, %v; want one at %s", ex.GetUrl(), err, cfg.Streaming.Address)
	}
	conn, err := net.Dial("tcp", cfg.Streaming.Address)
	if err != nil {
		t.Fatalf("dial the address crictl info shows: %v", err)
	}
	conn.Close()

	// A daemon whose streaming port is taken does not start (it used to
	// run on without exec); its error names the address.
	e := harness.NewEnv(t)
	e.WriteConfig("\n[streaming]\naddress = \"" + cfg.Streaming.Address + "\"\n")
	d := e.Spawn()
	if err := d.Wait(10 * time.Second); err == nil {
		t.Fatal("daemon started on a streaming address that is taken")
	}
	harness.MustContain(t, d.Logs.String(), cfg.Streaming.Address, "address already in use")
}
