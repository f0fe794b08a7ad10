package cni

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/sandbox/nsfs"
)

// Plugins run in the caller's network namespace, so every test here makes
// one of its own (hostNS) and calls Setup and Teardown from a thread that
// joined it (nsfs.Do): the bridge, the host ends of the veths, the portmap
// rules and every address live there and die with it. The host's own
// interfaces are never touched.

const systemCNIBin = "/usr/lib/cni"

type testNet struct {
	hostNS  string // the test's stand-in for the node's network namespace
	dataDir string // host-local's leases
	subnet  netip.Prefix
	net     Network
	name    string
}

func randHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// pinNet pins a fresh network namespace under a temp dir; cleanup unpins it.
func pinNet(t *testing.T) string {
	t.Helper()
	paths, err := nsfs.Pin(t.TempDir(), nsfs.Net)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nsfs.Unpin(paths[nsfs.Net]); err != nil {
			t.Error(err)
		}
	})
	return paths[nsfs.Net]
}

func requireCNI(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	for _, p := range []string{"bridge", "host-local", "portmap"} {
		if _, err := os.Stat(filepath.Join(systemCNIBin, p)); err != nil {
			testutil.SkipOrFail(t, "CNI plugin missing: "+err.Error())
		}
	}
}

// newTestNet writes a bridge + host-local + portmap config (plus extra
// plugins) to a test-only conf dir; the subnet is random so parallel
// packages never share one, though each test namespace is separate anyway.
func newTestNet(t *testing.T, extraBin string, extra ...string) *testNet {
	t.Helper()
	requireCNI(t)
	tn := &testNet{hostNS: pinNet(t), dataDir: filepath.Join(t.TempDir(), "ipam"), name: "crib-test-" + randHex(t, 3)}
	b := make([]byte, 1)
	rand.Read(b)
	tn.subnet = netip.MustParsePrefix(fmt.Sprintf("10.88.%d.0/24", b[0]))
	bridge := "cribt" + randHex(t, 4)
	plugins := []string{
		fmt.Sprintf(`{"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":false,
			"ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"dataDir":%q}}`, bridge, tn.subnet, tn.dataDir),
		`{"type":"portmap","capabilities":{"portMappings":true}}`,
	}
	plugins = append(plugins, extra...)
	conf := t.TempDir()
	body := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[%s]}`, tn.name, strings.Join(plugins, ","))
	write(t, conf, "10-test.conflist", body, 0o644)
	bins := []string{systemCNIBin}
	if extraBin != "" {
		bins = append([]string{extraBin}, bins...)
	}
	tn.net = Network{ConfDir: conf, BinDirs: bins, CacheDir: filepath.Join(t.TempDir(), "cache")}
	return tn
}

func (tn *testNet) setup(t *testing.T, pod Pod) (Result, error) {
	t.Helper()
	var res Result
	err := nsfs.Do(tn.hostNS, nsfs.Net, func() error {
		var err error
		res, err = tn.net.Setup(context.Background(), pod)
		return err
	})
	return res, err
}

func (tn *testNet) teardown(t *testing.T, pod Pod) error {
	t.Helper()
	return nsfs.Do(tn.hostNS, nsfs.Net, func() error {
		return tn.net.Teardown(context.Background(), pod)
	})
}

// leases lists host-local's allocated addresses.
func (tn *testNet) leases(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(tn.dataDir, tn.name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, e := range ents {
		if _, err := netip.ParseAddr(e.Name()); err == nil {
			ips = append(ips, e.Name())
		}
	}
	return ips
}

// links returns the interfaces of the namespace at path.
func links(t *testing.T, path string) map[string]net.Interface {
	t.Helper()
	out := map[string]net.Interface{}
	if err := nsfs.Do(path, nsfs.Net, func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			out[i.Name] = i
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// veths counts the host ends of veths in the test's host namespace, waiting
// a while for want: a veth whose peer namespace was destroyed goes away
// asynchronously.
func veths(t *testing.T, hostNS string, want int) int {
	t.Helper()
	var n int
	for deadline := time.Now().Add(5 * time.Second); ; {
		n = 0
		for name := range links(t, hostNS) {
			if strings.HasPrefix(name, "veth") {
				n++
			}
		}
		if n == want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// iptablesSave dumps the rules of the namespace at path.
func iptablesSave(t *testing.T, path string) string {
	t.Helper()
	var out []byte
	if err := nsfs.Do(path, nsfs.Net, func() error {
		var err error
		out, err = exec.Command("iptables-save").CombinedOutput()
		return err
	}); err != nil {
		t.Fatalf("iptables-save: %v: %s", err, out)
	}
	return string(out)
}

func testPod(t *testing.T) Pod {
	return Pod{
		ID: randHex(t, 32), Name: "web", Namespace: "default", UID: "uid-" + randHex(t, 4),
		NetNS:        pinNet(t),
		PortMappings: []PortMapping{{HostPort: 18080, ContainerPort: 80, Protocol: "tcp"}},
	}
}

func TestSetupTeardown(t *testing.T) {
	tn := newTestNet(t, "")
	obs := &observed{}
	tn.net.Observer = obs
	pod := testPod(t)
	res, err := tn.setup(t, pod)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() { tn.teardown(t, pod) })
	if len(res.IPs) != 1 || !tn.subnet.Contains(res.IPs[0]) {
		t.Fatalf("IPs = %v, want one in %s", res.IPs, tn.subnet)
	}
	if got := tn.leases(t); len(got) != 1 || got[0] != res.IPs[0].String() {
		t.Errorf("leases = %v, want [%s]", got, res.IPs[0])
	}
	eth0, ok := links(t, pod.NetNS)[IfName]
	if !ok {
		t.Fatalf("no %s in the pod's namespace", IfName)
	}
	var sandboxed bool
	for _, i := range res.Interfaces {
		sandboxed = sandboxed || (i.Name == IfName && i.Sandbox == pod.NetNS && i.MAC == eth0.HardwareAddr.String())
	}
	if !sandboxed {
		t.Errorf("result interfaces %+v do not name %s (%s) in %s", res.Interfaces, IfName, eth0.HardwareAddr, pod.NetNS)
	}
	if n := veths(t, tn.hostNS, 1); n != 1 {
		t.Errorf("veths in the test's host namespace = %d, want 1", n)
	}
	if rules := iptablesSave(t, tn.hostNS); !strings.Contains(rules, "18080") {
		t.Errorf("no hostPort 18080 rule from portmap in:\n%s", rules)
	}

	if err := tn.teardown(t, pod); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	if got := tn.leases(t); len(got) != 0 {
		t.Errorf("leases after Teardown = %v", got)
	}
	if rules := iptablesSave(t, tn.hostNS); strings.Contains(rules, "18080") {
		t.Errorf("hostPort rule left after Teardown:\n%s", rules)
	}
	if _, ok := links(t, pod.NetNS)[IfName]; ok {
		t.Errorf("%s left in the pod's namespace", IfName)
	}
	if n := veths(t, tn.hostNS, 0); n != 0 {
		t.Errorf("veths left: %d", n)
	}
	if err := tn.teardown(t, pod); err != nil {
		t.Errorf("second Teardown: %v", err)
	}
	if got := strings.Join(obs.ops, " "); got != "ADD:ok DEL:ok DEL:ok" {
		t.Errorf("observed %q, want one ADD and two DELs, timed", got)
	}
}

func TestTeardownVanishedNetNS(t *testing.T) {
	tn := newTestNet(t, "")
	pod := testPod(t)
	if _, err := tn.setup(t, pod); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() { tn.teardown(t, pod) })
	if err := nsfs.Unpin(pod.NetNS); err != nil {
		t.Fatal(err)
	}
	if err := tn.teardown(t, pod); err != nil {
		t.Fatalf("Teardown without the netns: %v", err)
	}
	if got := tn.leases(t); len(got) != 0 {
		t.Errorf("leases after Teardown = %v, want none", got)
	}
	if n := veths(t, tn.hostNS, 0); n != 0 {
		t.Errorf("veths left: %d", n)
	}
}

// failingPlugin answers VERSION, fails ADD with a CNI error document and
// succeeds on DEL, like a plugin whose backend refused the pod.
const failingPlugin = `#!/bin/sh
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}' ;;
ADD) cat >/dev/null; echo '{"cniVersion":"1.0.0","code":100,"msg":"crib-test-failure: quota exhausted","details":"try later"}'; exit 1 ;;
*) cat >/dev/null ;;
esac
`

func TestSetupPluginFailure(t *testing.T) {
	bin := t.TempDir()
	write(t, bin, "crib-fail", failingPlugin, 0o755)
	tn := newTestNet(t, bin, `{"type":"crib-fail"}`)
	obs := &observed{}
	tn.net.Observer = obs
	pod := testPod(t)
	_, err := tn.setup(t, pod)
	if err == nil {
		tn.teardown(t, pod)
		t.Fatal("Setup succeeded with a failing plugin")
	}
	// The failed ADD and the DEL that undid it, each timed.
	if got := strings.Join(obs.ops, " "); got != "ADD:error DEL:ok" {
		t.Errorf("observed %q, want the failed ADD and the DEL after it", got)
	}
	if !strings.Contains(err.Error(), "crib-test-failure: quota exhausted; try later") || !strings.Contains(err.Error(), pod.ID) {
		t.Errorf("error %q does not carry the plugin's message and the pod id", err)
	}
	if n := veths(t, tn.hostNS, 0); n != 0 {
		t.Errorf("veths left after a failed Setup: %d", n)
	}
	if _, ok := links(t, pod.NetNS)[IfName]; ok {
		t.Errorf("%s left in the pod's namespace", IfName)
	}
	if got := tn.leases(t); len(got) != 0 {
		t.Errorf("leases left after a failed Setup: %v", got)
	}
	if rules := iptablesSave(t, tn.hostNS); strings.Contains(rules, "18080") {
		t.Errorf("hostPort rule left after a failed Setup:\n%s", rules)
	}
}

func TestRuntimeConf(t *testing.T) {
	pod := Pod{ID: "abc", Name: "n", Namespace: "ns", UID: "u", NetNS: "/x",
		Bandwidth: &Bandwidth{IngressRate: 1000}, Annotations: map[string]string{"a": "b"}}
	rt := runtimeConf(pod, pod.NetNS)
	want := "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=n;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u"
	var kv []string
	for _, a := range rt.Args {
		kv = append(kv, a[0]+"="+a[1])
	}
	if got := strings.Join(kv, ";"); got != want {
		t.Errorf("CNI_ARGS = %s, want %s", got, want)
	}
	if rt.IfName != "eth0" || rt.ContainerID != "abc" || rt.NetNS != "/x" {
		t.Errorf("runtime conf %+v", rt)
	}
	if _, ok := rt.CapabilityArgs[capPortMappings]; ok {
		t.Error("portMappings passed without mappings")
	}
	if rt.CapabilityArgs[capBandwidth] != pod.Bandwidth || rt.CapabilityArgs[capPodAnnotations] == nil {
		t.Errorf("capability args %v", rt.CapabilityArgs)
	}
}

func TestSetupNoConfig(t *testing.T) {
	_, err := Network{ConfDir: t.TempDir()}.Setup(context.Background(), Pod{ID: "x"})
	if !errors.Is(err, ErrNoConfig) {
		t.Fatalf("Setup without config: %v", err)
	}
}

// observed records what Network reports to its Observer.
type observed struct{ ops []string }

func (o *observed) ObserveCNI(op string, took time.Duration, err error) {
	r := "ok"
	if err != nil {
		r = "error"
	}
	if took <= 0 {
		r += "(no time)"
	}
	o.ops = append(o.ops, op+":"+r)
}
