// Command egressproxy is the local cluster's way out (hack/local-cluster.sh):
// an HTTP proxy that listens on an address inside a network namespace and
// dials from the namespace it was started in. The cluster's network
// namespace has no route off the machine, so the runtime in it pulls images
// from real registries through this proxy (HTTPS_PROXY), and the host's
// network (addresses, routes, iptables) is left as it is. Only processes on
// that namespace's loopback reach it (pods behind the bridge do not, but
// host-network pods do), so it refuses to dial the host's own addresses:
// loopback, link-local (cloud metadata at 169.254.169.254), unspecified,
// multicast and its interfaces' addresses. Registries on the LAN stay
// reachable.
//
// It serves CONNECT (HTTPS) and absolute-URI requests (plain HTTP).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/crib-runtime/crib/sandbox/nsfs"
)

func main() {
	netns := flag.String("netns", "", "network namespace file to listen in (such as /run/netns/NAME); empty: this one")
	listen := flag.String("listen", "127.0.0.1:3128", "address to listen on, in -netns")
	flag.Parse()
	l, err := listenIn(*netns, *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: newProxy(false), ReadHeaderTimeout: 30 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Printf("egressproxy: serving %s in %q", l.Addr(), *netns)
	if err := srv.Serve(l); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

// listenIn listens on addr in the network namespace at path: a socket
// belongs to the namespace of the thread that made it, and stays there.
func listenIn(path, addr string) (l net.Listener, err error) {
	if path == "" {
		return net.Listen("tcp", addr)
	}
	err = nsfs.Do(path, nsfs.Net, func() (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, path, err)
	}
	return l, nil
}

// proxy forwards requests from the namespace it listens in.
type proxy struct {
	dialer *net.Dialer
	direct *http.Transport // fetches plain-HTTP requests, with dialer
}

// newProxy is a proxy that refuses host-local destinations unless
// allowLocal (its tests' origins are on loopback).
func newProxy(allowLocal bool) *proxy {
	d := &net.Dialer{Timeout: 30 * time.Second}
	if !allowLocal {
		// Control sees the address dialled, after name resolution: a
		// name that resolves to loopback is refused too.
		d.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if ip := net.ParseIP(host); ip == nil || hostLocal(ip) || ownAddress(ip) {
				return fmt.Errorf("egressproxy: %s is the host's own address: refused", host)
			}
			return nil
		}
	}
	return &proxy{dialer: d, direct: &http.Transport{DialContext: d.DialContext, ResponseHeaderTimeout: time.Minute}}
}

// ownAddress reports whether ip is one of this host's interface addresses
// (its LAN address, a bridge's): services bound to all addresses answer
// there too.
func ownAddress(ip net.IP) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true // cannot tell: refuse
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// hostLocal reports the addresses that reach the host itself or its link
// rather than a registry.
func hostLocal(ip net.IP) bool {
	return ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified()
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		p.connect(w, r)
		return
	}
	if !r.URL.IsAbs() {
		http.Error(w, "egressproxy: only CONNECT and absolute-URI requests", http.StatusBadRequest)
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.Header.Del("Proxy-Connection")
	out.Header.Del("Proxy-Authorization")
	resp, err := p.direct.RoundTrip(out)
	if err != nil {
		http.Error(w, fmt.Sprintf("egressproxy: %s %s: %v", r.Method, r.URL, err), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// connect dials the host:port of a CONNECT request and relays bytes both
// ways until either side closes.
func (p *proxy) connect(w http.ResponseWriter, r *http.Request) {
	upstream, err := p.dialer.DialContext(r.Context(), "tcp", r.Host)
	if err != nil {
		http.Error(w, fmt.Sprintf("egressproxy: dial %s: %v", r.Host, err), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		upstream.Close()
		http.Error(w, "egressproxy: connection cannot be hijacked", http.StatusInternalServerError)
		return
	}
	client, buf, err := hj.Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	if _, err := client.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		client.Close()
		upstream.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		// What the client sent after its request line is buffered already.
		_, _ = io.Copy(upstream, io.MultiReader(buf.Reader, client))
		closeWrite(upstream)
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(client, upstream)
		closeWrite(client)
		done <- struct{}{}
	}()
	<-done
	<-done
	client.Close()
	upstream.Close()
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	} else {
		_ = c.Close()
	}
}
