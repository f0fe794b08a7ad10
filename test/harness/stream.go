package harness

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"

	"github.com/crib-runtime/crib/sandbox/nsfs"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
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
	var server net.Conn
	// A socket belongs to the namespace of the thread that creates it.
	if err := nsfs.Do(nsPath, nsfs.Net, func() (err error) {
		server, err = net.Dial("tcp", target)
		return err
	}); err != nil {
		return
	}
	defer server.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(server, client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, server); done <- struct{}{} }()
	<-done
}
