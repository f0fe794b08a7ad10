package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
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
	e := newEnv(t)
	c := e.start().clients()
	ctx := context.Background()

	v, err := c.runtime.Version(ctx, "")
	if err != nil || v.RuntimeName != "crib" || v.RuntimeApiVersion != "v1" || v.RuntimeVersion == "" {
		t.Fatalf("Version = %v, %v", v, err)
	}
	cfg, err := c.runtime.RuntimeConfig(ctx)
	if err != nil || cfg.GetLinux().GetCgroupDriver() != criapi.CgroupDriver_CGROUPFS {
		t.Fatalf("RuntimeConfig = %v, %v", cfg, err)
	}

	// No CNI config yet: the network is not ready, and says why.
	st, err := c.runtime.Status(ctx, true)
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
	mustContain(t, nc.Message, "no network config found", e.cniConf)
	var eff map[string]any
	if err := json.Unmarshal([]byte(st.Info["config"]), &eff); err != nil || eff["root"] != e.root {
		t.Fatalf("verbose config %q: %v", st.Info["config"], err)
	}

	// A loadable config whose plugins exist makes it ready.
	conf := `{"cniVersion":"1.0.0","name":"e2e","plugins":[{"type":"loopback"}]}`
	if err := os.WriteFile(filepath.Join(e.cniConf, "10-e2e.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err = c.runtime.Status(ctx, false)
	if nc := condition(st.GetStatus(), criapi.NetworkReady); err != nil || nc == nil || !nc.Status {
		t.Fatalf("NetworkReady with config = %v, %v", nc, err)
	}

	// RPCs that later issues build answer Unimplemented, naming themselves.
	_, err = c.rawRt.RunPodSandbox(ctx, &criapi.RunPodSandboxRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	mustContain(t, status.Convert(err).Message(), "RunPodSandbox")
}

func TestDaemonRefusesBadConfig(t *testing.T) {
	e := newEnv(t)
	if err := os.WriteFile(e.confPath, []byte("root = \"/tmp/x\"\n\n[cni]\nconf_dri = \"/x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := e.spawn()
	if err := d.wait(10 * time.Second); err == nil {
		t.Fatal("daemon started with an unknown key")
	}
	mustContain(t, d.logs.String(), e.confPath+":4:", `unknown key "cni.conf_dri"`)

	d = e.spawn("--config", filepath.Join(e.dir, "absent.toml"))
	if err := d.wait(10 * time.Second); err == nil {
		t.Fatal("daemon started with a named config file that does not exist")
	}
	mustContain(t, d.logs.String(), "absent.toml")
	if _, err := os.Stat(e.sock); err == nil {
		t.Fatal("a refused start left a socket")
	}
}

func TestOneDaemonPerSocketAndRestartAfterCrash(t *testing.T) {
	e := newEnv(t)
	first := e.start()
	second := e.spawn()
	if err := second.wait(10 * time.Second); err == nil {
		t.Fatal("a second daemon started on the same socket")
	}
	mustContain(t, second.logs.String(), "in use")
	// The first one still serves.
	if _, err := first.clients().runtime.Version(context.Background(), ""); err != nil {
		t.Fatalf("first daemon after the refused second: %v", err)
	}
	// A crash leaves a stale socket that the next start replaces.
	first.kill()
	if _, err := os.Stat(e.sock); err != nil {
		t.Fatalf("expected a stale socket after SIGKILL: %v", err)
	}
	d := e.start()
	fi, err := os.Stat(e.sock)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket %v, %v; want mode 0660", fi, err)
	}
	d.stop()
	if _, err := os.Stat(e.sock); !os.IsNotExist(err) {
		t.Fatalf("socket left after a graceful stop: %v", err)
	}
}
