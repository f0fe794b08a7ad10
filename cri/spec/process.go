package spec

import (
	"path"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultPath is the PATH a container gets when neither its image nor its
// config sets one (containerd's and Docker's default).
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// process builds the spec's process: what runs, as whom, with which
// environment and privileges.
func process(in Input) (*specs.Process, error) {
	args, err := processArgs(in.Config.GetCommand(), in.Config.GetArgs(), in.Image)
	if err != nil {
		return nil, err
	}
	env, err := processEnv(in)
	if err != nil {
		return nil, err
	}
	cwd, err := processCwd(in.Config.GetWorkingDir(), in.Image.WorkingDir)
	if err != nil {
		return nil, err
	}
	user, err := processUser(in)
	if err != nil {
		return nil, err
	}
	sc := in.Config.GetLinux().GetSecurityContext()
	caps, err := capabilities(sc, in.Capabilities)
	if err != nil {
		return nil, err
	}
	p := &specs.Process{
		Terminal:        in.Config.GetTty(),
		User:            user,
		Args:            args,
		Env:             env,
		Cwd:             cwd,
		Capabilities:    caps,
		NoNewPrivileges: sc.GetNoNewPrivs(),
	}
	if in.Nofile > 0 {
		p.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: in.Nofile, Soft: in.Nofile}}
	}
	if r := in.Config.GetLinux().GetResources(); r != nil {
		adj := r.GetOomScoreAdj()
		// oom_score_adj's range, proc(5); the kernel would refuse the write
		// only once the container is half started.
		if adj < -1000 || adj > 1000 {
			return nil, invalidf("oom_score_adj %d out of range [-1000, 1000]", adj)
		}
		v := int(adj)
		p.OOMScoreAdj = &v
	}
	return p, nil
}

// processArgs merges the CRI command and args with the image's entrypoint
// and cmd the way Docker does (moby daemon/commit.go, kept by containerd):
// Command replaces the entrypoint and drops the image's Cmd; Args replace
// Cmd; an entrypoint of [""] means "no entrypoint".
func processArgs(command, args []string, img ImageConfig) ([]string, error) {
	if len(command) == 0 {
		if len(args) == 0 {
			args = img.Cmd
		}
		if !(len(img.Entrypoint) == 1 && img.Entrypoint[0] == "") {
			command = img.Entrypoint
		}
	}
	out := make([]string, 0, len(command)+len(args))
	out = append(out, command...)
	out = append(out, args...)
	if len(out) == 0 {
		return nil, invalidf("no command specified: neither the container config nor the image sets one")
	}
	for _, a := range out {
		if strings.IndexByte(a, 0) >= 0 {
			return nil, invalidf("command argument %q contains a NUL byte", a)
		}
	}
	return out, nil
}

// processEnv returns PATH (default), HOSTNAME, then the image's variables,
// then the config's, each later one replacing an earlier one with the same
// name in place, as containerd's oci.WithEnv does.
func processEnv(in Input) ([]string, error) {
	var env envList
	env.set(defaultPath)
	if h := in.Sandbox.GetHostname(); h != "" {
		// With the host's network kubelet may leave the hostname empty;
		// containerd then asks the OS, which a pure function cannot. The
		// process still sees the node's name through uname(2).
		env.set("HOSTNAME=" + h)
	}
	for _, kv := range in.Image.Env {
		env.set(kv)
	}
	for _, kv := range in.Config.GetEnvs() {
		k := kv.GetKey()
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, invalidf("environment variable name %q is empty or contains '=' or NUL", k)
		}
		v := string(kv.GetValue())
		if strings.IndexByte(v, 0) >= 0 {
			return nil, invalidf("environment variable %q: value contains a NUL byte", k)
		}
		env.set(k + "=" + v)
	}
	return env.list, nil
}

// envList is an ordered environment where setting a name again replaces it.
type envList struct {
	list  []string
	index map[string]int
}

func (e *envList) set(kv string) {
	name, _, _ := strings.Cut(kv, "=")
	if e.index == nil {
		e.index = make(map[string]int)
	}
	if i, ok := e.index[name]; ok {
		e.list[i] = kv
		return
	}
	e.index[name] = len(e.list)
	e.list = append(e.list, kv)
}

// processCwd returns the CRI working dir, else the image's, else "/". The
// runtime spec requires an absolute cwd.
func processCwd(cfg, img string) (string, error) {
	switch {
	case cfg != "":
		if !path.IsAbs(cfg) {
			return "", invalidf("working dir %q must be an absolute path", cfg)
		}
		return cfg, nil
	case img != "":
		// Docker resolves a relative WORKDIR against "/" at build time;
		// images built otherwise get the same reading here.
		return path.Join("/", img), nil
	}
	return "/", nil
}
