package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/crib-runtime/crib/internal/config"
)

// daemonFlags are the command-line settings; each one that is given
// overrides the configuration file.
type daemonFlags struct {
	fs         *flag.FlagSet
	configPath string
	socket     string
	root       string
	state      string
	logLevel   int
	cniConf    string
	cniBin     string
	cgroup     string
	mirrors    listFlag
	insecure   listFlag
	mountinfo  string
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func newDaemonFlags() *daemonFlags {
	f := &daemonFlags{fs: flag.NewFlagSet("crib daemon", flag.ContinueOnError)}
	def := config.Default()
	f.fs.StringVar(&f.configPath, "config", config.DefaultPath, "configuration file (TOML); a missing default file means built-in defaults")
	f.fs.StringVar(&f.socket, "socket", def.Socket, "CRI endpoint, unix:///path")
	f.fs.StringVar(&f.root, "root", def.Root, "persistent data directory")
	f.fs.StringVar(&f.state, "state", def.State, "runtime state directory (lost at reboot)")
	f.fs.IntVar(&f.logLevel, "log-level", def.LogLevel, "klog verbosity: 2 state changes, 4 steps, 6 request bodies")
	f.fs.StringVar(&f.cniConf, "cni-conf-dir", def.CNI.ConfDir, "CNI network configuration directory")
	f.fs.StringVar(&f.cniBin, "cni-bin-dir", strings.Join(def.CNI.BinDirs, ","), "CNI plugin directories, comma separated")
	f.fs.StringVar(&f.cgroup, "cgroup-driver", def.CgroupDriver, "cgroup driver reported to the kubelet: cgroupfs or systemd")
	f.fs.Var(&f.mirrors, "registry-mirror", "registry=endpoint: try endpoint first for registry (repeatable; registry _default means every registry)")
	f.fs.Var(&f.insecure, "insecure-registry", "registry host to reach over plain HTTP (repeatable)")
	f.fs.StringVar(&f.mountinfo, "mountinfo", hostMountinfo, "where the daemon and its shims find the host's cgroup and resctrl mounts (for tests: a copy naming a fake resctrl tree)")
	return f
}

// load reads the configuration file and applies the flags that were set.
func (f *daemonFlags) load() (config.Config, error) {
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	cfg, err := config.Load(f.configPath, set["config"])
	if err != nil {
		return cfg, err
	}
	str := map[string]*string{"socket": &cfg.Socket, "root": &cfg.Root, "state": &cfg.State,
		"cni-conf-dir": &cfg.CNI.ConfDir, "cgroup-driver": &cfg.CgroupDriver}
	val := map[string]string{"socket": f.socket, "root": f.root, "state": f.state,
		"cni-conf-dir": f.cniConf, "cgroup-driver": f.cgroup}
	for name, dst := range str {
		if set[name] {
			*dst = val[name]
		}
	}
	if set["log-level"] {
		cfg.LogLevel = f.logLevel
	}
	if set["cni-bin-dir"] {
		cfg.CNI.BinDirs = strings.Split(f.cniBin, ",")
	}
	if err := f.applyRegistryFlags(&cfg); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func (f *daemonFlags) applyRegistryFlags(cfg *config.Config) error {
	if len(f.mirrors)+len(f.insecure) > 0 && cfg.Registry.Hosts == nil {
		cfg.Registry.Hosts = map[string]config.Host{}
	}
	for _, m := range f.mirrors {
		host, ep, ok := strings.Cut(m, "=")
		if !ok || host == "" || ep == "" {
			return fmt.Errorf("flag -registry-mirror %q: want registry=endpoint", m)
		}
		h := cfg.Registry.Hosts[host]
		h.Mirrors = append(h.Mirrors, config.Mirror{Endpoint: ep})
		cfg.Registry.Hosts[host] = h
	}
	for _, host := range f.insecure {
		h := cfg.Registry.Hosts[host]
		h.PlainHTTP = true
		cfg.Registry.Hosts[host] = h
	}
	return nil
}
