package sandbox

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/sandbox/cni"
	"github.com/crib-runtime/crib/sandbox/nsfs"
)

// nsNetwork runs CNI from a thread in hostNS, the test's stand-in for the
// node's network namespace, so plugins put the bridge, the host ends of
// the veths and the addresses there and never touch the host.
type nsNetwork struct {
	hostNS string
	net    cni.Network
}

func (n nsNetwork) Setup(ctx context.Context, p cni.Pod) (res cni.Result, err error) {
	err = nsfs.Do(n.hostNS, nsfs.Net, func() error {
		res, err = n.net.Setup(ctx, p)
		return err
	})
	return res, err
}

func (n nsNetwork) Teardown(ctx context.Context, p cni.Pod) error {
	return nsfs.Do(n.hostNS, nsfs.Net, func() error { return n.net.Teardown(ctx, p) })
}

const failingPlugin = `#!/bin/sh
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}' ;;
ADD) cat >/dev/null; echo '{"cniVersion":"1.0.0","code":100,"msg":"crib-test-failure: no addresses"}'; exit 1 ;;
*) cat >/dev/null ;;
esac
`

// cniEnv replaces env's fake network with bridge + host-local + portmap
// (+ extra plugins) running in a network namespace of the test's own.
func cniEnv(t *testing.T, e *env, extra string) (hostNS, leases string) {
	t.Helper()
	for _, p := range []string{"bridge", "host-local", "portmap"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", p)); err != nil {
			testutil.SkipOrFail(t, "CNI plugin missing: "+err.Error())
		}
	}
	paths, err := nsfs.Pin(t.TempDir(), nsfs.Net)
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-registered first: remove the pods (their DEL must
	// run in this namespace) before the namespace goes.
	t.Cleanup(func() {
		for _, p := range e.m.Store.List(Filter{}) {
			if err := e.m.Remove(context.Background(), p.ID); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		if err := nsfs.Unpin(paths[nsfs.Net]); err != nil {
			t.Error(err)
		}
	})
	id := newID(t)
	leases = filepath.Join(t.TempDir(), "ipam")
	bin, conf := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(bin, "crib-fail"), []byte(failingPlugin), 0o755)
	plugins := fmt.Sprintf(`{"type":"bridge","bridge":"cribm%s","isGateway":true,
		"ipam":{"type":"host-local","ranges":[[{"subnet":"10.89.%d.0/24"}]],"dataDir":%q}},
		{"type":"portmap","capabilities":{"portMappings":true}}%s`, id[:8], id[0], leases, extra)
	os.WriteFile(filepath.Join(conf, "10-test.conflist"),
		[]byte(`{"cniVersion":"1.0.0","name":"crib-mgr-test","plugins":[`+plugins+`]}`), 0o644)
	e.m.Network = nsNetwork{paths[nsfs.Net], cni.Network{ConfDir: conf, BinDirs: []string{bin, "/usr/lib/cni"}, CacheDir: t.TempDir()}}
	return paths[nsfs.Net], filepath.Join(leases, "crib-mgr-test")
}

func interfaces(t *testing.T, ns string) []string {
	t.Helper()
	var names []string
	if err := nsfs.Do(ns, nsfs.Net, func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return names
}

func countLeases(t *testing.T, dir string) int {
	ents, _ := os.ReadDir(dir)
	n := 0
	for _, e := range ents {
		if strings.Count(e.Name(), ".") == 3 {
			n++
		}
	}
	return n
}

func TestManagerCNI(t *testing.T) {
	e := newEnv(t)
	hostNS, leases := cniEnv(t, e, "")
	ctx := context.Background()
	p, err := e.m.Run(ctx, e.config(t))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(p.IPs) != 1 || !strings.HasPrefix(p.IPs[0], "10.89.") {
		t.Fatalf("pod IPs %v", p.IPs)
	}
	if got := interfaces(t, p.NetNS); strings.Join(got, ",") != "lo,eth0" {
		t.Errorf("pod interfaces %v, want lo and eth0", got)
	}
	if hosts := readFile(t, p.HostsPath); !strings.Contains(hosts, p.IPs[0]+"\tweb-0\n") {
		t.Errorf("hosts does not name the pod's IP:\n%s", hosts)
	}
	if countLeases(t, leases) != 1 {
		t.Errorf("leases: %d, want 1", countLeases(t, leases))
	}
	if err := e.m.Stop(ctx, p.ID); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if n := countLeases(t, leases); n != 0 {
		t.Errorf("leases after Stop: %d", n)
	}
	if err := e.m.Remove(ctx, p.ID); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	e.checkGone(t, p.ID)
	for _, name := range interfaces(t, hostNS) {
		if strings.HasPrefix(name, "veth") {
			t.Errorf("veth %s left in the test's host namespace", name)
		}
	}
}

func TestManagerCNIFailure(t *testing.T) {
	e := newEnv(t)
	hostNS, leases := cniEnv(t, e, `,{"type":"crib-fail"}`)
	c := e.config(t)
	_, err := e.m.Run(context.Background(), c)
	if err == nil || !strings.Contains(err.Error(), "crib-test-failure: no addresses") {
		t.Fatalf("Run = %v, want the plugin's message", err)
	}
	e.checkGone(t, c.ID)
	if n := countLeases(t, leases); n != 0 {
		t.Errorf("leases left: %d", n)
	}
	for _, name := range interfaces(t, hostNS) {
		if strings.HasPrefix(name, "veth") {
			t.Errorf("veth %s left in the test's host namespace", name)
		}
	}
}
