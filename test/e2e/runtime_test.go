package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
)

func condition(st *criapi.RuntimeStatus, typ string) *criapi.RuntimeCondition {
	for _, c := range st.GetConditions() {
		if c.Type == typ {
			return c
		}
	}
	return nil
}

func TestRuntimeBasics(t *testing.T) {
	e := harness.NewEnv(t)
	c := e.Start().Clients()
	ctx := context.Background()

	v, err := c.Runtime.Version(ctx, "")
	if err != nil || v.RuntimeName != "crib" || v.RuntimeApiVersion != "v1" || v.RuntimeVersion == "" {
		t.Fatalf("Version = %v, %v", v, err)
	}
	cfg, err := c.Runtime.RuntimeConfig(ctx)
	if err != nil || cfg.GetLinux().GetCgroupDriver() != criapi.CgroupDriver_CGROUPFS {
		t.Fatalf("RuntimeConfig = %v, %v", cfg, err)
	}

	// No CNI config yet: the network is not ready, and says why.
	st, err := c.Runtime.Status(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if rc := condition(st.Status, criapi.RuntimeReady); rc == nil || !rc.Status {
		t.Fatalf("RuntimeReady = %v", rc)
	}
	nc := condition(st.Status, criapi.NetworkReady)
	if nc == nil || nc.Status || nc.Reason != "NetworkPluginNotReady" {
		t.Fatalf("NetworkReady without config = %v", nc)
	}
	harness.MustContain(t, nc.Message, "no network config found", e.CNIConf)
	var eff map[string]any
	if err := json.Unmarshal([]byte(st.Info["config"]), &eff); err != nil || eff["root"] != e.Root {
		t.Fatalf("verbose config %q: %v", st.Info["config"], err)
	}
	// This host has no resctrl: reported, with the reason, not an error.
	var rdtInfo struct {
		Available bool
		Reason    string
	}
	if err := json.Unmarshal([]byte(st.Info["rdt"]), &rdtInfo); err != nil || rdtInfo.Available || rdtInfo.Reason == "" {
		t.Fatalf("verbose rdt %q: %v", st.Info["rdt"], err)
	}

	// A loadable config whose plugins exist makes it ready.
	conf := `{"cniVersion":"1.0.0","name":"e2e","plugins":[{"type":"loopback"}]}`
	if err := os.WriteFile(filepath.Join(e.CNIConf, "10-e2e.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err = c.Runtime.Status(ctx, false)
	if nc := condition(st.GetStatus(), criapi.NetworkReady); err != nil || nc == nil || !nc.Status {
		t.Fatalf("NetworkReady with config = %v, %v", nc, err)
	}

	// The streaming RPCs for a container or pod that does not exist name it.
	_, err = c.RawRt.Attach(ctx, &criapi.AttachRequest{ContainerId: "no-such-container", Stdout: true})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Attach: %v", err)
	}
	harness.MustContain(t, status.Convert(err).Message(), "no-such-container")
	_, err = c.RawRt.Exec(ctx, &criapi.ExecRequest{ContainerId: "no-such-container", Cmd: []string{"true"}, Stdout: true})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Exec: %v", err)
	}
	harness.MustContain(t, status.Convert(err).Message(), "no-such-container")
	_, err = c.RawRt.PortForward(ctx, &criapi.PortForwardRequest{PodSandboxId: "no-such-pod", Port: []int32{80}})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("PortForward: %v", err)
	}
	harness.MustContain(t, status.Convert(err).Message(), "no-such-pod")
}

// TestDaemonNeedsShimBinary: a daemon installed without crib-shim next to
// it refuses to start and says what is missing.
func TestDaemonNeedsShimBinary(t *testing.T) {
	e := harness.NewEnv(t)
	e.Bin = filepath.Join(e.Dir, "crib")
	data, err := os.ReadFile(harness.Binary())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.Bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	d := e.Spawn()
	if err := d.Wait(10 * time.Second); err == nil {
		t.Fatal("daemon started without crib-shim")
	}
	harness.MustContain(t, d.Logs.String(), filepath.Join(e.Dir, "crib-shim"), "make build")
	for _, left := range []string{e.Sock, e.Root, e.State} {
		if _, err := os.Stat(left); err == nil {
			t.Errorf("a daemon that refused to start left %s", left)
		}
	}
}

func TestDaemonRefusesBadConfig(t *testing.T) {
	e := harness.NewEnv(t)
	if err := os.WriteFile(e.ConfPath, []byte("root = \"/tmp/x\"\n\n[cni]\nconf_dri = \"/x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := e.Spawn()
	if err := d.Wait(10 * time.Second); err == nil {
		t.Fatal("daemon started with an unknown key")
	}
	harness.MustContain(t, d.Logs.String(), e.ConfPath+":4:", `unknown key "cni.conf_dri"`)

	// A class file that does not parse keeps the daemon from starting.
	bad := filepath.Join(e.Dir, "rdt.yaml")
	if err := os.WriteFile(bad, []byte("partitions:\n  p: {l3Alocation: 50%}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.WriteConfig("\n[rdt]\nconfig_file = \"" + bad + "\"\n")
	d = e.Spawn()
	if err := d.Wait(10 * time.Second); err == nil {
		t.Fatal("daemon started with a broken RDT class file")
	}
	harness.MustContain(t, d.Logs.String(), "rdt.yaml")

	d = e.Spawn("--config", filepath.Join(e.Dir, "absent.toml"))
	if err := d.Wait(10 * time.Second); err == nil {
		t.Fatal("daemon started with a named config file that does not exist")
	}
	harness.MustContain(t, d.Logs.String(), "absent.toml")
	if _, err := os.Stat(e.Sock); err == nil {
		t.Fatal("a refused start left a socket")
	}
}

func TestOneDaemonPerSocketAndRestartAfterCrash(t *testing.T) {
	e := harness.NewEnv(t)
	first := e.Start()
	second := e.Spawn()
	if err := second.Wait(10 * time.Second); err == nil {
		t.Fatal("a second daemon started on the same socket")
	}
	harness.MustContain(t, second.Logs.String(), "in use")
	// The first one still serves.
	if _, err := first.Clients().Runtime.Version(context.Background(), ""); err != nil {
		t.Fatalf("first daemon after the refused second: %v", err)
	}
	// A crash leaves a stale socket that the next start replaces.
	first.Kill()
	if _, err := os.Stat(e.Sock); err != nil {
		t.Fatalf("expected a stale socket after SIGKILL: %v", err)
	}
	d := e.Start()
	fi, err := os.Stat(e.Sock)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket %v, %v; want mode 0660", fi, err)
	}
	d.Stop()
	if _, err := os.Stat(e.Sock); !os.IsNotExist(err) {
		t.Fatalf("socket left after a graceful stop: %v", err)
	}
}

// TestSIGHUPReloadsRDT: the daemon re-reads its RDT class file on SIGHUP,
// keeps serving, and keeps the classes in use when the new file is bad.
func TestSIGHUPReloadsRDT(t *testing.T) {
	e := harness.NewEnv(t)
	classes := filepath.Join(e.Dir, "rdt.yaml")
	good := "partitions:\n  p:\n    l3Allocation: 100%\n    classes:\n      gold: {}\n"
	if err := os.WriteFile(classes, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	e.WriteConfig("\n[rdt]\nconfig_file = \"" + classes + "\"\n")
	d := e.Start()
	if err := os.WriteFile(classes, []byte("partitions: [not, a, map]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, d, "RDT reload failed; keeping the classes in use")
	if err := os.WriteFile(classes, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, d, "Reloaded RDT classes")
	if _, err := d.Clients().Runtime.Version(context.Background(), ""); err != nil {
		t.Fatalf("daemon after SIGHUP: %v", err)
	}
}

func waitForLog(t *testing.T, d *harness.Daemon, text string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.Logs.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the daemon log:\n%s", text, d.Logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
