// Package config defines crib's daemon configuration: the TOML file format,
// its built-in defaults and its validation.
//
// Unknown keys are errors naming the key, the file and the line, so a typo never
// silently falls back to a default. It imports no crib package.
// Internal to crib; no API compatibility promised.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// DefaultPath is where the daemon looks for its configuration file.
const DefaultPath = "/etc/crib/crib.toml"

// Cgroup drivers crib understands (the kubelet's --cgroup-driver values).
const (
	CgroupDriverCgroupfs = "cgroupfs"
	CgroupDriverSystemd  = "systemd"
)

// handlerName is a DNS label (RFC 1123), what a RuntimeClass's handler is.
var handlerName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// DefaultHostKey names the registry entry that applies to every registry
// without an entry of its own (containerd's hosts.d "_default" directory).
const DefaultHostKey = "_default"

// Config is the daemon configuration.
type Config struct {
	// Socket is the CRI endpoint, unix://<path>.
	Socket string `toml:"socket" json:"socket"`
	// Root holds persistent data: images, container layers, records.
	Root string `toml:"root" json:"root"`
	// State holds runtime data lost at reboot: sockets, pinned namespaces.
	State string `toml:"state" json:"state"`
	// LogLevel is klog's verbosity (-v): 2 logs state changes, 4 steps, 6 bodies.
	LogLevel int `toml:"log_level" json:"logLevel"`
	// CgroupDriver is how crib places cgroups, reported to the kubelet by
	// RuntimeConfig (which must match its own --cgroup-driver):
	// "cgroupfs" writes the cgroup tree alone; "systemd" takes slice
	// names as pod parents and makes each container's cgroup a systemd
	// scope (cgroups/systemd), refused where systemd is not running.
	CgroupDriver string `toml:"cgroup_driver" json:"cgroupDriver"`
	// CgroupRoot is the cgroup parent of pods that come without one (what
	// crictl sends by default), and the base of relative parents. Under
	// the systemd driver it is a slice's path, the default "/crib" meaning
	// "/crib.slice" (checked when the daemon starts, by cgroups.Paths).
	CgroupRoot string `toml:"cgroup_root" json:"cgroupRoot"`
	// RuntimeHandlers name runtime handlers besides the default ("") that
	// RuntimeClass objects may name (the node e2e suite's "test-handler"):
	// crib has one runtime, so each runs pods as the default does.
	RuntimeHandlers []string  `toml:"runtime_handlers" json:"runtimeHandlers,omitempty"`
	CNI             CNI       `toml:"cni" json:"cni"`
	Registry        Registry  `toml:"registry" json:"registry"`
	Image           Image     `toml:"image" json:"image"`
	RDT             RDT       `toml:"rdt" json:"rdt"`
	BlockIO         BlockIO   `toml:"blockio" json:"blockio"`
	Streaming       Streaming `toml:"streaming" json:"streaming"`
	LSM             LSM       `toml:"lsm" json:"lsm"`
	Debug           Debug     `toml:"debug" json:"debug"`
	Metrics         Metrics   `toml:"metrics" json:"metrics"`
	Shim            Shim      `toml:"shim" json:"shim"`
	CDI             CDI       `toml:"cdi" json:"cdi"`
	NRI             NRI       `toml:"nri" json:"nri"`
}

// CDI configures Container Device Interface devices: the vendor spec files
// that CDI names (CRI cdi_devices, cdi.k8s.io/ annotations) resolve to.
type CDI struct {
	// SpecDirs are scanned in order, a later directory's device winning
	// over an earlier one's of the same name. Empty: every CDI request is
	// refused (FailedPrecondition naming the device).
	SpecDirs []string `toml:"spec_dirs" json:"specDirs"`
}

// DefaultCDISpecDirs are CDI's static and dynamic spec directories, as
// containerd and CRI-O scan them.
var DefaultCDISpecDirs = []string{"/etc/cdi", "/var/run/cdi"}

// NRI configures the Node Resource Interface: plugins that see and adjust
// pods and containers (docs/nri.md). A plugin is root-equivalent: it can
// add any mount or device to any container.
type NRI struct {
	// Disable turns NRI off: no socket, no plugins, no events.
	Disable bool `toml:"disable" json:"disable"`
	// SocketPath is where external plugins connect (mode 0600, root only).
	SocketPath string `toml:"socket_path" json:"socketPath"`
	// PluginPath holds pre-installed plugins, executables named NN-name,
	// which crib starts and connects itself.
	PluginPath string `toml:"plugin_path" json:"pluginPath"`
	// PluginConfigPath holds their configuration (NN-name.conf or name.conf).
	PluginConfigPath string `toml:"plugin_config_path" json:"pluginConfigPath"`
	// DisableConnections runs pre-installed plugins only: no socket.
	DisableConnections bool `toml:"disable_connections" json:"disableConnections"`
	// RegistrationTimeout bounds a plugin's registration, RequestTimeout
	// each call to a plugin: a plugin that does not answer in time is
	// dropped and the pod or container goes on without it.
	RegistrationTimeout Duration `toml:"plugin_registration_timeout" json:"pluginRegistrationTimeout"`
	RequestTimeout      Duration `toml:"plugin_request_timeout" json:"pluginRequestTimeout"`
}

// Defaults and bounds of the NRI settings: the paths containerd and CRI-O
// use, so plugins installed for them work; a request timeout below the
// kubelet's 2 minute runtime timeout.
const (
	DefaultNRISocketPath          = "/var/run/nri/nri.sock"
	DefaultNRIPluginPath          = "/opt/nri/plugins"
	DefaultNRIPluginConfigPath    = "/etc/nri/conf.d"
	DefaultNRIRegistrationTimeout = 5 * time.Second
	DefaultNRIRequestTimeout      = 2 * time.Second
	minNRITimeout                 = 100 * time.Millisecond
	maxNRIRegistrationTimeout     = 5 * time.Minute
	maxNRIRequestTimeout          = 2 * time.Minute
	maxSocketPathLen              = 107 // sockaddr_un's sun_path, less the NUL
)

// Duration is a time.Duration written as Go spells it ("5s", "1m30s").
type Duration time.Duration

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText spells the duration as Go does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Shim configures the shim processes that hold the pods' containers.
type Shim struct {
	// PodsPerShim is how many pods one shim process serves at most. A shim
	// process costs about 2.3 MB however many pods it serves, and a pod in
	// it 0.1 to 0.2 MB more (docs/benchmarks.md); a shim that crashes ends
	// the containers of every pod it serves, which the kubelet then
	// recreates. 1 gives each pod a process of its own.
	PodsPerShim int `toml:"pods_per_shim" json:"podsPerShim"`
}

// DefaultPodsPerShim is Shim.PodsPerShim's default: the fewest pods per
// process that keep an idle pod under 1 MiB of node memory (with 8 it
// costs 1.1 MiB, with 16 0.9; docs/benchmarks.md), so a crash ends at most
// 16 pods. MaxPodsPerShim bounds it (the kubelet's default node maximum
// is 110 pods).
const (
	DefaultPodsPerShim = 16
	MaxPodsPerShim     = 256
)

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	// Address is host:port serving /metrics over plain HTTP; empty turns
	// it off (the default). The host must be given: "127.0.0.1:9099" keeps
	// it on the node, "0.0.0.0:9099" opens it to every interface. Port 0
	// picks a free port, which a verbose Status shows.
	Address string `toml:"address" json:"address,omitempty"`
}

// LSM says what crib does with security module options the host cannot
// apply.
type LSM struct {
	// SELinuxWhenDisabled is what a pod's or container's SELinux options
	// mean on a host without SELinux: "refuse" (FailedPrecondition naming
	// them; level s0 alone, which asks for nothing, is accepted) or
	// "ignore" (accepted, nothing labelled, as containerd and CRI-O do:
	// for clusters that send SELinux options to every node).
	SELinuxWhenDisabled string `toml:"selinux_when_disabled" json:"selinuxWhenDisabled"`
}

// Streaming configures the server of exec and port-forward sessions.
type Streaming struct {
	// Address is host:port to listen on; port 0 picks a free one. The
	// kubelet proxies the sessions, so loopback is the safe default.
	Address string `toml:"address" json:"address"`
	// TLS serves the sessions over HTTPS: with TLSCertFile and TLSKeyFile,
	// or else a self-signed certificate made at start (as containerd's
	// enable_tls_streaming does), which the kubelet's proxy accepts.
	TLS         bool   `toml:"tls" json:"tls,omitempty"`
	TLSCertFile string `toml:"tls_cert_file" json:"tlsCertFile,omitempty"`
	TLSKeyFile  string `toml:"tls_key_file" json:"tlsKeyFile,omitempty"`
}

// Image bounds what one pulled layer may unpack to. A layer is untrusted
// and its compressed size says little of its unpacked size (gzip reaches
// 1000:1; an empty file is a 512-byte tar header that compresses to almost
// nothing), so each layer is held to these before its diff ID can be
// checked at the end. A pull past them fails with ResourceExhausted.
type Image struct {
	// MaxLayerBytes bounds the summed sizes of one layer's regular files.
	// The default, 64 GiB, is several times the largest layers seen in
	// practice (CUDA and ML framework layers of 10 to 20 GiB unpacked).
	MaxLayerBytes int64 `toml:"max_layer_bytes" json:"maxLayerBytes"`
	// MaxLayerEntries bounds one layer's tar entries (files, directories,
	// links, whiteouts). The default, 10 million, is twenty times a large
	// distribution or node_modules layer (about 500,000 files) and about
	// the inode count of a 160 GiB ext4 filesystem at its default ratio.
	MaxLayerEntries int64 `toml:"max_layer_entries" json:"maxLayerEntries"`
}

// Default layer limits; see Image.
const (
	DefaultMaxLayerBytes   = 64 << 30
	DefaultMaxLayerEntries = 10_000_000
)

// Debug configures the daemon's introspection endpoint.
type Debug struct {
	// Address is a unix socket path serving Go's pprof handlers under
	// /debug/pprof/ (goroutines, heap, CPU profiles); empty turns it off.
	Address string `toml:"address" json:"address,omitempty"`
}

// RDT configures classes of service (package rdt's Config; kept here as
// plain values so this leaf imports nothing from crib).
type RDT struct {
	// ConfigFile is the class configuration in goresctrl's YAML format;
	// SIGHUP reloads it.
	ConfigFile string `toml:"config_file" json:"configFile,omitempty"`
	// DefaultClass is the class of containers whose annotations ask for none.
	DefaultClass string `toml:"default_class" json:"defaultClass,omitempty"`
	// IgnoreUnavailable turns "class requested on a node without RDT" into a
	// logged warning instead of a failed CreateContainer.
	IgnoreUnavailable bool `toml:"ignore_unavailable" json:"ignoreUnavailable,omitempty"`
}

// BlockIO configures block I/O classes (package blockio), which NRI
// plugins give containers.
type BlockIO struct {
	// ConfigFile is the class configuration in goresctrl's blockio YAML
	// format; empty: no classes. SIGHUP reloads it.
	ConfigFile string `toml:"config_file" json:"configFile,omitempty"`
}

// CNI says where network configurations and plugins live.
type CNI struct {
	ConfDir string   `toml:"conf_dir" json:"confDir"`
	BinDirs []string `toml:"bin_dirs" json:"binDirs"`
}

// Registry configures how image references reach registries.
type Registry struct {
	// Hosts is keyed by registry host as it appears in normalised image
	// references ("docker.io", "registry.k8s.io", "127.0.0.1:5000"), or by
	// DefaultHostKey for every host without its own entry.
	Hosts map[string]Host `toml:"hosts" json:"hosts,omitempty"`
}

// Host configures one registry, with containerd hosts.toml semantics: the
// mirrors are tried in order for pulls, then the upstream server.
type Host struct {
	// Server replaces the upstream endpoint ("http://10.0.0.1:5000"). Empty
	// means the registry host itself over HTTPS.
	Server string `toml:"server" json:"server,omitempty"`
	// SkipServer stops the fallback to the upstream: only mirrors are used.
	SkipServer bool `toml:"skip_server" json:"skipServer,omitempty"`
	// PlainHTTP talks to the upstream over http.
	PlainHTTP bool `toml:"plain_http" json:"plainHTTP,omitempty"`
	// SkipVerify disables TLS verification of the upstream.
	SkipVerify bool     `toml:"skip_verify" json:"skipVerify,omitempty"`
	Mirrors    []Mirror `toml:"mirrors" json:"mirrors,omitempty"`
}

// Mirror is one endpoint that serves the same repositories as its registry.
type Mirror struct {
	// Endpoint is "host[:port]" (HTTPS) or a URL; the http scheme means plain HTTP.
	Endpoint   string `toml:"endpoint" json:"endpoint"`
	SkipVerify bool   `toml:"skip_verify" json:"skipVerify,omitempty"`
}

// Default returns the built-in configuration used when no file exists.
func Default() Config {
	return Config{
		Socket:       "unix:///run/crib/crib.sock",
		Root:         "/var/lib/crib",
		State:        "/run/crib",
		LogLevel:     2,
		CgroupDriver: CgroupDriverCgroupfs,
		CgroupRoot:   "/crib",
		LSM:          LSM{SELinuxWhenDisabled: "refuse"},
		Streaming:    Streaming{Address: "127.0.0.1:0"},
		Image:        Image{MaxLayerBytes: DefaultMaxLayerBytes, MaxLayerEntries: DefaultMaxLayerEntries},
		Shim:         Shim{PodsPerShim: DefaultPodsPerShim},
		CDI:          CDI{SpecDirs: slices.Clone(DefaultCDISpecDirs)},
		NRI: NRI{SocketPath: DefaultNRISocketPath, PluginPath: DefaultNRIPluginPath, PluginConfigPath: DefaultNRIPluginConfigPath,
			RegistrationTimeout: Duration(DefaultNRIRegistrationTimeout), RequestTimeout: Duration(DefaultNRIRequestTimeout)},
		CNI: CNI{
			ConfDir: "/etc/cni/net.d",
			BinDirs: []string{"/opt/cni/bin", "/usr/lib/cni"},
		},
	}
}

// Load reads the file at path over the defaults. A missing file yields the
// defaults, unless required is set (the user named the file explicitly).
func Load(path string, required bool) (Config, error) {
	cfg := Default()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !required {
		return cfg, nil
	}
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	if err := decode(path, data, &cfg); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func decode(path string, data []byte, cfg *Config) error {
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(cfg)
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		msgs := make([]string, 0, len(strict.Errors))
		for i := range strict.Errors {
			row, col := strict.Errors[i].Position()
			msgs = append(msgs, fmt.Sprintf("%s:%d:%d: unknown key %q", path, row, col, strings.Join(strict.Errors[i].Key(), ".")))
		}
		return fmt.Errorf("config: %s", strings.Join(msgs, "; "))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		key := strings.Join(de.Key(), ".")
		if key != "" {
			return fmt.Errorf("config: %s:%d:%d: key %q: %s", path, row, col, key, de.Error())
		}
		return fmt.Errorf("config: %s:%d:%d: %s", path, row, col, de.Error())
	}
	if err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	return nil
}

// Validate checks values that TOML types alone cannot.
func (c *Config) Validate() error {
	var errs []error
	if _, err := SocketPath(c.Socket); err != nil {
		errs = append(errs, err)
	}
	if c.RDT.ConfigFile != "" && !strings.HasPrefix(c.RDT.ConfigFile, "/") {
		errs = append(errs, fmt.Errorf("config: rdt.config_file %q must be an absolute path", c.RDT.ConfigFile))
	}
	if c.BlockIO.ConfigFile != "" && !strings.HasPrefix(c.BlockIO.ConfigFile, "/") {
		errs = append(errs, fmt.Errorf("config: blockio.config_file %q must be an absolute path", c.BlockIO.ConfigFile))
	}
	for key, val := range map[string]string{"root": c.Root, "state": c.State, "cni.conf_dir": c.CNI.ConfDir, "cgroup_root": c.CgroupRoot} {
		if !strings.HasPrefix(val, "/") {
			errs = append(errs, fmt.Errorf("config: %s %q must be an absolute path", key, val))
		}
	}
	if _, _, err := net.SplitHostPort(c.Streaming.Address); err != nil {
		errs = append(errs, fmt.Errorf("config: streaming.address %q: %w", c.Streaming.Address, err))
	}
	if (c.Streaming.TLSCertFile == "") != (c.Streaming.TLSKeyFile == "") {
		errs = append(errs, errors.New("config: streaming.tls_cert_file and streaming.tls_key_file go together: set both or neither"))
	} else if c.Streaming.TLSCertFile != "" && !c.Streaming.TLS {
		errs = append(errs, errors.New("config: streaming.tls_cert_file is set but streaming.tls is false"))
	}
	if err := validListenAddress(c.Metrics.Address); c.Metrics.Address != "" && err != nil {
		errs = append(errs, fmt.Errorf("config: metrics.address %q: %w", c.Metrics.Address, err))
	}
	if c.Debug.Address != "" && !strings.HasPrefix(c.Debug.Address, "/") {
		errs = append(errs, fmt.Errorf("config: debug.address %q must be an absolute socket path", c.Debug.Address))
	}
	if c.Root == c.State {
		errs = append(errs, fmt.Errorf("config: root and state must differ (both %q)", c.Root))
	}
	if c.LogLevel < 0 || c.LogLevel > 10 {
		errs = append(errs, fmt.Errorf("config: log_level %d out of range 0-10", c.LogLevel))
	}
	if c.CgroupRoot == "/" || path.Clean(c.CgroupRoot) != c.CgroupRoot {
		errs = append(errs, fmt.Errorf("config: cgroup_root %q must be a clean absolute cgroup path below /", c.CgroupRoot))
	}
	seen := map[string]bool{}
	for _, h := range c.RuntimeHandlers {
		// A RuntimeClass's handler is a DNS label.
		if !handlerName.MatchString(h) || seen[h] {
			errs = append(errs, fmt.Errorf("config: runtime_handlers: %q is not a DNS label (a-z, 0-9, '-', at most 63) or is named twice", h))
		}
		seen[h] = true
	}
	if w := c.LSM.SELinuxWhenDisabled; w != "refuse" && w != "ignore" {
		errs = append(errs, fmt.Errorf("config: lsm.selinux_when_disabled %q: want \"refuse\" or \"ignore\"", w))
	}
	if c.CgroupDriver != CgroupDriverCgroupfs && c.CgroupDriver != CgroupDriverSystemd {
		errs = append(errs, fmt.Errorf("config: cgroup_driver %q: want %q or %q", c.CgroupDriver, CgroupDriverCgroupfs, CgroupDriverSystemd))
	}
	if c.Image.MaxLayerBytes <= 0 {
		errs = append(errs, fmt.Errorf("config: image.max_layer_bytes %d must be positive", c.Image.MaxLayerBytes))
	}
	if c.Image.MaxLayerEntries <= 0 {
		errs = append(errs, fmt.Errorf("config: image.max_layer_entries %d must be positive", c.Image.MaxLayerEntries))
	}
	if n := c.Shim.PodsPerShim; n < 1 || n > MaxPodsPerShim {
		errs = append(errs, fmt.Errorf("config: shim.pods_per_shim %d out of range 1-%d", n, MaxPodsPerShim))
	}
	for name, h := range c.Registry.Hosts {
		errs = append(errs, h.validate(name))
	}
	for i, d := range c.CDI.SpecDirs {
		switch {
		case !path.IsAbs(d) || path.Clean(d) != d:
			errs = append(errs, fmt.Errorf("config: cdi.spec_dirs[%d] %q must be a clean absolute path", i, d))
		case slices.Contains(c.CDI.SpecDirs[:i], d):
			errs = append(errs, fmt.Errorf("config: cdi.spec_dirs[%d] %q is named twice", i, d))
		}
	}
	errs = append(errs, c.validateNRI())
	return errors.Join(errs...)
}

func (c *Config) validateNRI() error {
	n := c.NRI
	if n.Disable {
		return nil
	}
	var errs []error
	for key, val := range map[string]string{"socket_path": n.SocketPath, "plugin_path": n.PluginPath, "plugin_config_path": n.PluginConfigPath} {
		if !strings.HasPrefix(val, "/") || path.Clean(val) != val {
			errs = append(errs, fmt.Errorf("config: nri.%s %q must be a clean absolute path", key, val))
		}
	}
	if len(n.SocketPath) > maxSocketPathLen {
		errs = append(errs, fmt.Errorf("config: nri.socket_path %q is longer than a unix socket path may be (%d bytes)", n.SocketPath, maxSocketPathLen))
	}
	if sock, err := SocketPath(c.Socket); err == nil && sock == n.SocketPath {
		errs = append(errs, fmt.Errorf("config: nri.socket_path %q is the CRI socket", n.SocketPath))
	}
	for _, d := range []struct {
		key      string
		val, max time.Duration
	}{{"plugin_registration_timeout", time.Duration(n.RegistrationTimeout), maxNRIRegistrationTimeout},
		{"plugin_request_timeout", time.Duration(n.RequestTimeout), maxNRIRequestTimeout}} {
		if d.val < minNRITimeout || d.val > d.max {
			errs = append(errs, fmt.Errorf("config: nri.%s %s out of range %s-%s", d.key, d.val, minNRITimeout, d.max))
		}
	}
	return errors.Join(errs...)
}

// validListenAddress checks a TCP host:port to listen on. The host must be
// there: an empty one (":9099") would listen on every interface, which is
// what "0.0.0.0" says plainly.
func validListenAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("want host:port with a host (127.0.0.1 for this node only, 0.0.0.0 for every interface)")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

func (h Host) validate(name string) error {
	var errs []error
	if name == "" || strings.ContainsAny(name, "/ ") {
		errs = append(errs, fmt.Errorf("config: registry.hosts key %q is not a registry host", name))
	}
	if h.Server != "" {
		if _, err := ParseEndpoint(h.Server); err != nil {
			errs = append(errs, fmt.Errorf("config: registry.hosts.%q.server: %w", name, err))
		}
	}
	if h.SkipServer && len(h.Mirrors) == 0 {
		errs = append(errs, fmt.Errorf("config: registry.hosts.%q: skip_server needs at least one mirror", name))
	}
	for i, m := range h.Mirrors {
		if _, err := ParseEndpoint(m.Endpoint); err != nil {
			errs = append(errs, fmt.Errorf("config: registry.hosts.%q.mirrors[%d]: %w", name, i, err))
		}
	}
	return errors.Join(errs...)
}

// ParseEndpoint parses "host[:port]" or "http(s)://host[:port]" into a URL
// with a scheme; bare hosts are HTTPS.
func ParseEndpoint(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("empty endpoint")
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("endpoint %q: scheme must be http or https", s)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("endpoint %q: want scheme://host[:port] only", s)
	}
	return u, nil
}

// SocketPath returns the filesystem path of a unix:// endpoint.
func SocketPath(endpoint string) (string, error) {
	p, ok := strings.CutPrefix(endpoint, "unix://")
	if !ok || !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("config: socket %q: want unix:///absolute/path", endpoint)
	}
	return p, nil
}
