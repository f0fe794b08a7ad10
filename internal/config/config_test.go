package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "crib.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMissingFileMeansDefaults(t *testing.T) {
	p := filepath.Join(t.TempDir(), "none.toml")
	cfg, err := Load(p, false)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Default(), cfg); diff != "" {
		t.Fatalf("defaults differ (-want +got):\n%s", diff)
	}
	if _, err := Load(p, true); err == nil || !strings.Contains(err.Error(), "none.toml") {
		t.Fatalf("required missing file: %v", err)
	}
}

func TestLoadFull(t *testing.T) {
	p := writeConfig(t, `
socket = "unix:///tmp/x/crib.sock"
root = "/tmp/x/root"
state = "/tmp/x/state"
log_level = 4
cgroup_driver = "cgroupfs"
cgroup_root = "/crib-test"

[cni]
conf_dir = "/tmp/x/net.d"
bin_dirs = ["/tmp/x/bin"]

[registry.hosts."docker.io"]
skip_server = true
[[registry.hosts."docker.io".mirrors]]
endpoint = "http://127.0.0.1:5000"

[registry.hosts."10.0.0.1:5000"]
plain_http = true

[image]
max_layer_bytes = 1073741824
max_layer_entries = 1000

[rdt]
config_file = "/etc/crib/rdt.yaml"
default_class = "burstable"
ignore_unavailable = true

[blockio]
config_file = "/etc/crib/blockio.yaml"

[metrics]
address = "127.0.0.1:9099"

[shim]
pods_per_shim = 1

[cdi]
spec_dirs = ["/tmp/x/cdi"]
[nri]
socket_path = "/tmp/x/nri.sock"
plugin_path = "/tmp/x/plugins"
plugin_config_path = "/tmp/x/conf.d"
disable_connections = true
plugin_registration_timeout = "1s"
plugin_request_timeout = "10s"
`)
	cfg, err := Load(p, true)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Socket: "unix:///tmp/x/crib.sock", Root: "/tmp/x/root", State: "/tmp/x/state", LogLevel: 4,
		CgroupDriver: "cgroupfs", CgroupRoot: "/crib-test", CNI: CNI{ConfDir: "/tmp/x/net.d", BinDirs: []string{"/tmp/x/bin"}},
		Registry: Registry{Hosts: map[string]Host{
			"docker.io":     {SkipServer: true, Mirrors: []Mirror{{Endpoint: "http://127.0.0.1:5000"}}},
			"10.0.0.1:5000": {PlainHTTP: true},
		}},
		RDT:       RDT{ConfigFile: "/etc/crib/rdt.yaml", DefaultClass: "burstable", IgnoreUnavailable: true},
		BlockIO:   BlockIO{ConfigFile: "/etc/crib/blockio.yaml"},
		Streaming: Streaming{Address: "127.0.0.1:0"},
		LSM:       LSM{SELinuxWhenDisabled: "refuse"},
		Image:     Image{MaxLayerBytes: 1 << 30, MaxLayerEntries: 1000},
		Metrics:   Metrics{Address: "127.0.0.1:9099"},
		Shim:      Shim{PodsPerShim: 1},
		CDI:       CDI{SpecDirs: []string{"/tmp/x/cdi"}},
		NRI: NRI{SocketPath: "/tmp/x/nri.sock", PluginPath: "/tmp/x/plugins", PluginConfigPath: "/tmp/x/conf.d", DisableConnections: true,
			RegistrationTimeout: Duration(time.Second), RequestTimeout: Duration(10 * time.Second)},
	}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		words      []string
	}{
		{"unknown key", "root = \"/r\"\n\nsokcet = \"unix:///x\"\n", []string{":3:", `unknown key "sokcet"`}},
		{"unknown nested key", "[cni]\nconf_dir = \"/c\"\nbindirs = []\n", []string{":3:", `unknown key "cni.bindirs"`}},
		{"syntax", "root = \n", []string{":1:"}},
		{"wrong type", "log_level = \"high\"\n", []string{":1:", "log_level"}},
		{"bad driver", "cgroup_driver = \"cgroupsv3\"\n", []string{`cgroup_driver "cgroupsv3"`}},
		{"relative cgroup root", "cgroup_root = \"crib\"\n", []string{`cgroup_root "crib"`}},
		{"unclean cgroup root", "cgroup_root = \"/crib/../x\"\n", []string{`cgroup_root "/crib/../x"`}},
		{"relative root", "root = \"var/lib\"\n", []string{`root "var/lib"`, "absolute"}},
		{"bad socket", "socket = \"/run/x.sock\"\n", []string{`socket "/run/x.sock"`}},
		{"bad mirror", "[[registry.hosts.\"docker.io\".mirrors]]\nendpoint = \"ftp://x\"\n", []string{"docker.io", "mirrors[0]", "scheme"}},
		{"skip server alone", "[registry.hosts.\"q.io\"]\nskip_server = true\n", []string{"q.io", "skip_server"}},
		{"log level", "log_level = 99\n", []string{"log_level 99"}},
		{"relative rdt file", "[rdt]\nconfig_file = \"rdt.yaml\"\n", []string{`rdt.config_file "rdt.yaml"`}},
		{"relative blockio file", "[blockio]\nconfig_file = \"blockio.yaml\"\n", []string{`blockio.config_file "blockio.yaml" must be an absolute path`}},
		{"unknown blockio key", "[blockio]\nclasses = \"x\"\n", []string{`unknown key "blockio.classes"`}},
		{"unknown rdt key", "[rdt]\ndefault = \"x\"\n", []string{`unknown key "rdt.default"`}},
		{"bad stream address", "[streaming]\naddress = \"localhost\"\n", []string{`streaming.address "localhost"`}},
		{"cert without key", "[streaming]\ntls = true\ntls_cert_file = \"/c.crt\"\n", []string{"streaming.tls_key_file"}},
		{"cert without tls", "[streaming]\ntls_cert_file = \"/c.crt\"\ntls_key_file = \"/c.key\"\n", []string{"streaming.tls is false"}},
		{"zero layer bytes", "[image]\nmax_layer_bytes = 0\n", []string{"image.max_layer_bytes 0 must be positive"}},
		{"negative layer entries", "[image]\nmax_layer_entries = -1\n", []string{"image.max_layer_entries -1 must be positive"}},
		{"unknown image key", "[image]\nmax_layers = 1\n", []string{`unknown key "image.max_layers"`}},
		{"relative cdi dir", "[cdi]\nspec_dirs = [\"/etc/cdi\", \"cdi\"]\n", []string{`cdi.spec_dirs[1] "cdi"`, "absolute"}},
		{"unclean cdi dir", "[cdi]\nspec_dirs = [\"/etc/cdi/\"]\n", []string{`cdi.spec_dirs[0] "/etc/cdi/"`}},
		{"cdi dir twice", "[cdi]\nspec_dirs = [\"/etc/cdi\", \"/var/run/cdi\", \"/etc/cdi\"]\n", []string{`cdi.spec_dirs[2] "/etc/cdi" is named twice`}},
		{"unknown cdi key", "[cdi]\nspecdirs = []\n", []string{`unknown key "cdi.specdirs"`}},
		{"relative debug socket", "[debug]\naddress = \"debug.sock\"\n", []string{`debug.address "debug.sock"`}},
		{"metrics address without port", "[metrics]\naddress = \"127.0.0.1\"\n", []string{`metrics.address "127.0.0.1"`, "missing port"}},
		{"metrics address without host", "[metrics]\naddress = \":9099\"\n", []string{`metrics.address ":9099"`, "with a host"}},
		{"metrics port out of range", "[metrics]\naddress = \"127.0.0.1:70000\"\n", []string{`metrics.address "127.0.0.1:70000"`, `port "70000"`}},
		{"metrics named port", "[metrics]\naddress = \"127.0.0.1:http\"\n", []string{`port "http"`}},
		{"unknown metrics key", "[metrics]\nlisten = \"127.0.0.1:9099\"\n", []string{`unknown key "metrics.listen"`}},
		{"bad handler", "runtime_handlers = [\"Test_Handler\"]\n", []string{`runtime_handlers: "Test_Handler"`}},
		{"handler twice", "runtime_handlers = [\"a\", \"a\"]\n", []string{`runtime_handlers: "a"`}},
		{"empty handler", "runtime_handlers = [\"\"]\n", []string{`runtime_handlers: ""`}},
		{"no pods per shim", "[shim]\npods_per_shim = 0\n", []string{"shim.pods_per_shim 0 out of range 1-256"}},
		{"too many pods per shim", "[shim]\npods_per_shim = 1000\n", []string{"shim.pods_per_shim 1000 out of range"}},
		{"relative nri socket", "[nri]\nsocket_path = \"nri.sock\"\n", []string{`nri.socket_path "nri.sock" must be a clean absolute path`}},
		{"unclean nri plugin path", "[nri]\nplugin_path = \"/opt/../x\"\n", []string{`nri.plugin_path "/opt/../x"`}},
		{"relative nri config path", "[nri]\nplugin_config_path = \"conf.d\"\n", []string{`nri.plugin_config_path "conf.d"`}},
		{"long nri socket", "[nri]\nsocket_path = \"/" + strings.Repeat("x", 120) + "\"\n", []string{"nri.socket_path", "longer than a unix socket path"}},
		{"nri socket is the CRI socket", "socket = \"unix:///run/s.sock\"\n[nri]\nsocket_path = \"/run/s.sock\"\n", []string{`nri.socket_path "/run/s.sock" is the CRI socket`}},
		{"nri timeout syntax", "[nri]\nplugin_request_timeout = \"2\"\n", []string{"nri.plugin_request_timeout", "missing unit"}},
		{"nri timeout too short", "[nri]\nplugin_request_timeout = \"1ms\"\n", []string{"nri.plugin_request_timeout 1ms out of range 100ms-2m0s"}},
		{"nri registration too long", "[nri]\nplugin_registration_timeout = \"1h\"\n", []string{"nri.plugin_registration_timeout 1h0m0s out of range"}},
		{"unknown nri key", "[nri]\nenable = true\n", []string{`unknown key "nri.enable"`}},
		{"bad selinux choice", "[lsm]\nselinux_when_disabled = \"warn\"\n", []string{`lsm.selinux_when_disabled "warn"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConfig(t, tc.body)
			_, err := Load(p, true)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"mirror.example":          "https://mirror.example",
		"http://127.0.0.1:5000":   "http://127.0.0.1:5000",
		"https://m.example:8443/": "https://m.example:8443/",
	} {
		u, err := ParseEndpoint(in)
		if err != nil || u.String() != want {
			t.Errorf("ParseEndpoint(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	for _, bad := range []string{"", "ftp://x", "http://", "http://x/path", "http://u:p@x"} {
		if _, err := ParseEndpoint(bad); err == nil {
			t.Errorf("ParseEndpoint(%q) accepted", bad)
		}
	}
}

// An empty list is allowed and kept empty (not the defaults): it is how a
// node refuses CDI requests.
func TestCDINoSpecDirs(t *testing.T) {
	cfg, err := Load(writeConfig(t, "[cdi]\nspec_dirs = []\n"), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.CDI.SpecDirs) != 0 {
		t.Fatalf("spec_dirs = %q, want none", cfg.CDI.SpecDirs)
	}
	if cfg, err = Load(writeConfig(t, "log_level = 2\n"), true); err != nil || !slices.Equal(cfg.CDI.SpecDirs, []string{"/etc/cdi", "/var/run/cdi"}) {
		t.Fatalf("default spec_dirs = %q, %v", cfg.CDI.SpecDirs, err)
	}
}

// TestNRIDisabledSkipsChecks: with NRI off its other keys are not used, so
// a config that turns it off does not have to make them valid.
func TestNRIDisabledSkipsChecks(t *testing.T) {
	p := writeConfig(t, "[nri]\ndisable = true\nsocket_path = \"x\"\n")
	cfg, err := Load(p, true)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.NRI.Disable {
		t.Fatal("nri.disable not read")
	}
}

func TestDurationText(t *testing.T) {
	b, err := Duration(1500 * time.Millisecond).MarshalText()
	if err != nil || string(b) != "1.5s" {
		t.Fatalf("MarshalText = %q, %v", b, err)
	}
}
