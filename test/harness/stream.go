package harness

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/crib-runtime/crib/sandbox/nsfs"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
)

// Stream runs one exec or attach session on a streaming URL the way kubectl
// does (SPDY).
func Stream(ctx context.Context, rawURL string, opts remotecommand.StreamOptions) error {
	return StreamWith(ctx, &rest.Config{}, rawURL, opts)
}

// StreamWith is Stream with the client's config (TLS settings for a daemon
// that serves streams over HTTPS).
func StreamWith(ctx context.Context, cfg *rest.Config, rawURL string, opts remotecommand.StreamOptions) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	ex, err := remotecommand.NewSPDYExecutor(cfg, http.MethodPost, u)
	if err != nil {
		return err
	}
	return ex.StreamWithContext(ctx, opts)
}

// RelayInto returns a host loopback address whose connections are relayed
// to target inside the network namespace at nsPath: a daemon that runs in
// the test's netns serves streaming URLs only there. It stops with the
// test.
func RelayInto(t testing.TB, nsPath, target string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			go relay(client, nsPath, target)
		}
	}()
	return l.Addr().String()
}

func relay(client net.Conn, nsPath, target string) {
	defer client.Close()
	server, err := DialIn(nsPath, "tcp", target)
	if err != nil {
		return
	}
	defer server.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(server, client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, server); done <- struct{}{} }()
	<-done
}

// DialIn connects to addr from inside the network namespace pinned at
// nsPath: a socket belongs to the namespace of the thread that creates it.
func DialIn(nsPath, network, addr string) (c net.Conn, err error) {
	err = nsfs.Do(nsPath, nsfs.Net, func() error {
		c, err = net.Dial(network, addr)
		return err
	})
	return c, err
}

// Forward starts a forwarder to port on a port-forward URL as kubectl
// port-forward does, and returns its local port, a stop function (also run
// at the end of the test) and what its forwarding ends with.
func Forward(t testing.TB, rawURL string, port int32) (uint16, func(), <-chan error) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	tr, upgrader, err := spdy.RoundTripperFor(&rest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: tr}, http.MethodPost, u)
	stopc, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.New(dialer, []string{fmt.Sprintf("0:%d", port)}, stopc, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() { ended <- fw.ForwardPorts() }()
	stop := sync.OnceFunc(func() { close(stopc) })
	t.Cleanup(stop)
	select {
	case <-ready:
	case err := <-ended:
		t.Fatalf("port forward: %v", err)
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		t.Fatalf("ports %v, %v", ports, err)
	}
	return ports[0].Local, stop, ended
}
