package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"time"

	streaming "k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/cri"
	"github.com/crib-runtime/crib/internal/config"
	"github.com/crib-runtime/crib/internal/listener"
)

// listenStreaming binds the streaming address at start: a port that is
// taken stops the daemon instead of leaving it without exec, and the port
// that "host:0" picks is known before the CRI server reports its config
// (crictl info) and hands out URLs.
func listenStreaming(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("streaming server: %w", err)
	}
	return l, nil
}

// startStreaming serves exec, attach and port-forward sessions on l, with
// single-use tokens that expire (k8s.io/cri-streaming), over HTTPS when
// tc is set. The library's own Start would listen again and learn the
// port only then, in its goroutine, racing the first URL it builds; its
// handler is served here instead, with URLs naming l's address. The
// function returned stops serving (sessions already upgraded run on, as
// with the library's Stop).
func startStreaming(logger klog.Logger, l net.Listener, tc *tls.Config, server *cri.Server) (streaming.Server, func(), error) {
	c := streaming.DefaultConfig
	c.Addr, c.TLSConfig = l.Addr().String(), tc
	c.BaseURL = &url.URL{Scheme: "http", Host: c.Addr}
	if tc != nil {
		c.BaseURL.Scheme = "https"
	}
	s, err := streaming.NewServer(c, server.StreamRuntime())
	if err != nil {
		return nil, nil, fmt.Errorf("streaming server: %w", err)
	}
	srv := &http.Server{Handler: s, TLSConfig: tc, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		var err error
		if tc != nil {
			err = srv.ServeTLS(l, "", "") // the certificate is in tc
		} else {
			err = srv.Serve(l)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			logger.Error(err, "Streaming server failed", "address", c.Addr)
		}
	}()
	return s, func() { _ = srv.Close() }, nil
}

// streamingTLS loads the configured key pair, or makes a self-signed one
// for this node: the kubelet's proxy does not verify the runtime's
// streaming certificate, so one made at start is enough to encrypt. Nil
// without streaming.tls.
func streamingTLS(cfg config.Streaming) (*tls.Config, error) {
	if !cfg.TLS {
		return nil, nil
	}
	var cert tls.Certificate
	var err error
	if cfg.TLSCertFile != "" {
		cert, err = tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("streaming TLS key pair %s, %s: %w", cfg.TLSCertFile, cfg.TLSKeyFile, err)
		}
	} else if cert, err = selfSigned(cfg.Address); err != nil {
		return nil, fmt.Errorf("streaming TLS: make a self-signed certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// selfSigned makes a one-year ECDSA certificate naming the node and the
// streaming address's host.
func selfSigned(addr string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	hostname, _ := os.Hostname()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "crib streaming " + hostname},
		NotBefore:    now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{hostname, "localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() && !ip.IsLoopback() {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// startDebug serves pprof on a unix socket only root can reach; the
// leak tests read the daemon's goroutine count there.
func startDebug(logger klog.Logger, path string) (func(), error) {
	l, err := listener.Listen(path, 0o600)
	if err != nil {
		return nil, fmt.Errorf("debug socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error(err, "Debug server failed", "address", path)
		}
	}()
	return func() { _ = srv.Close() }, nil
}
