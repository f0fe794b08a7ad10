package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/sandbox/nsfs"
)

// serve runs a proxy that reaches loopback (the tests' origins are there)
// on l until the test ends and returns its URL.
func serve(t *testing.T, l net.Listener) *url.URL {
	return serveProxy(t, l, newProxy(true))
}

func serveProxy(t *testing.T, l net.Listener, p *proxy) *url.URL {
	t.Helper()
	srv := &http.Server{Handler: p}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &url.URL{Scheme: "http", Host: l.Addr().String()}
}

func get(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s through the proxy: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s through the proxy: %d %q %v", u, resp.StatusCode, b, err)
	}
	return string(b)
}

func TestProxy(t *testing.T) {
	l, err := listenIn("", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxyURL := serve(t, l)
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "hello %s", r.URL.Path) })
	tlsSrv := httptest.NewTLSServer(hello)
	defer tlsSrv.Close()
	plain := httptest.NewServer(hello)
	defer plain.Close()

	tr := tlsSrv.Client().Transport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyURL(proxyURL)
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	if got := get(t, c, tlsSrv.URL+"/v2/"); got != "hello /v2/" {
		t.Errorf("HTTPS through CONNECT: %q", got)
	}
	if got := get(t, c, plain.URL+"/plain"); got != "hello /plain" {
		t.Errorf("plain HTTP: %q", got)
	}
	resp, err := c.Get("https://127.0.0.1:1/")
	if err == nil {
		resp.Body.Close()
		t.Errorf("CONNECT to a closed port succeeded")
	}
}

// TestListenIn: the proxy listens inside another network namespace and
// dials from its own.
func TestListenIn(t *testing.T) {
	testutil.RequireRoot(t)
	name := fmt.Sprintf("crib-egress-%x", rand.Uint32())
	testutil.AddNetns(t, name)
	ns := "/run/netns/" + name
	l, err := listenIn(ns, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxyURL := serve(t, l)
	// The origin server is on the host's loopback, which the namespace
	// cannot reach but the proxy can.
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "from the host") }))
	defer origin.Close()
	inNS := func(network, addr string) (c net.Conn, err error) {
		err = nsfs.Do(ns, nsfs.Net, func() (err error) {
			c, err = net.DialTimeout(network, addr, 5*time.Second)
			return err
		})
		return c, err
	}
	if c, err := inNS("tcp", origin.Listener.Addr().String()); err == nil {
		c.Close()
		t.Fatalf("the namespace reaches the host's loopback: the test proves nothing")
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL),
		Dial: inNS}}
	if got := get(t, c, origin.URL); got != "from the host" {
		t.Errorf("through the proxy from the namespace: %q", got)
	}
}

// TestProxyRefusesHostLocal: the proxy as run never dials the host's own
// addresses, by CONNECT or by plain HTTP, by address or by a name that
// resolves to one.
func TestProxyRefusesHostLocal(t *testing.T) {
	l, err := listenIn("", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxyURL := serveProxy(t, l, newProxy(false))
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "host") }))
	defer origin.Close()
	_, port, _ := net.SplitHostPort(origin.Listener.Addr().String())
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	own := ""
	if addrs, _ := net.InterfaceAddrs(); len(addrs) > 0 {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
				own = "http://" + net.JoinHostPort(n.IP.String(), port)
			}
		}
	}
	for _, u := range []string{own, origin.URL, "http://localhost:" + port, "https://127.0.0.1:" + port, "http://169.254.169.254/latest/meta-data/", "http://[::1]:" + port} {
		if u == "" {
			continue
		}
		resp, err := c.Get(u)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Errorf("GET %s through the proxy: %d %q; want it refused", u, resp.StatusCode, b)
			}
		}
	}
}
