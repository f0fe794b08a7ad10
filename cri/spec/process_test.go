package spec

import (
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestProcessArgs(t *testing.T) {
	for _, tc := range []struct {
		name          string
		command, args []string
		entry, cmd    []string
		want          []string
		err           errKind
	}{
		{name: "image entrypoint and cmd", entry: []string{"/ep"}, cmd: []string{"a", "b"}, want: []string{"/ep", "a", "b"}},
		{name: "image cmd only", cmd: []string{"sh", "-c", "true"}, want: []string{"sh", "-c", "true"}},
		{name: "image entrypoint only", entry: []string{"/ep", "-x"}, want: []string{"/ep", "-x"}},
		{name: "args replace cmd, keep entrypoint", args: []string{"x"}, entry: []string{"/ep"}, cmd: []string{"a"}, want: []string{"/ep", "x"}},
		{name: "command replaces entrypoint and drops cmd", command: []string{"/bin/true"}, entry: []string{"/ep"}, cmd: []string{"a"}, want: []string{"/bin/true"}},
		{name: "command and args", command: []string{"/bin/echo"}, args: []string{"hi"}, entry: []string{"/ep"}, cmd: []string{"a"}, want: []string{"/bin/echo", "hi"}},
		{name: "empty-string entrypoint means none", entry: []string{""}, cmd: []string{"sh"}, want: []string{"sh"}},
		{name: "nothing at all", err: invalid},
		{name: "only an empty-string entrypoint", entry: []string{""}, err: invalid},
		{name: "NUL in an argument", command: []string{"/bin/echo", "a\x00b"}, err: invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := processArgs(tc.command, tc.args, ImageConfig{Entrypoint: tc.entry, Cmd: tc.cmd})
			checkErr(t, err, tc.err)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
		})
	}
}

func TestProcessEnvCwdTerminal(t *testing.T) {
	kv := func(k, v string) *criapi.KeyValue { return &criapi.KeyValue{Key: k, Value: []byte(v)} }
	for _, tc := range []struct {
		name    string
		mutate  func(*Input)
		wantEnv []string
		wantCwd string
		err     errKind
	}{
		{
			name:    "image PATH replaces the default in place, HOSTNAME from the pod",
			wantEnv: []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOSTNAME=web-0"},
			wantCwd: "/",
		},
		{
			name:    "default PATH when the image has none",
			mutate:  func(in *Input) { in.Image.Env = []string{"LANG=C"} },
			wantEnv: []string{defaultPath, "HOSTNAME=web-0", "LANG=C"},
			wantCwd: "/",
		},
		{
			name: "config overrides image, keeps order",
			mutate: func(in *Input) {
				in.Image.Env = []string{"A=1", "B=2"}
				in.Config.Envs = []*criapi.KeyValue{kv("B", "two"), kv("C", "3"), kv("PATH", "/bin"), kv("EMPTY", "")}
			},
			wantEnv: []string{"PATH=/bin", "HOSTNAME=web-0", "A=1", "B=two", "C=3", "EMPTY="},
			wantCwd: "/",
		},
		{
			name: "no HOSTNAME when the pod has no hostname",
			mutate: func(in *Input) {
				in.Sandbox.Hostname = ""
				in.Image.Env = nil
			},
			wantEnv: []string{defaultPath},
			wantCwd: "/",
		},
		{
			name:    "image working dir",
			mutate:  func(in *Input) { in.Image.WorkingDir = "/srv" },
			wantEnv: []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOSTNAME=web-0"},
			wantCwd: "/srv",
		},
		{
			name:    "relative image working dir is read from /",
			mutate:  func(in *Input) { in.Image.WorkingDir = "app" },
			wantEnv: []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOSTNAME=web-0"},
			wantCwd: "/app",
		},
		{
			name: "config working dir wins",
			mutate: func(in *Input) {
				in.Image.WorkingDir = "/srv"
				in.Config.WorkingDir = "/work"
			},
			wantEnv: []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOSTNAME=web-0"},
			wantCwd: "/work",
		},
		{name: "relative config working dir", mutate: func(in *Input) { in.Config.WorkingDir = "work" }, err: invalid},
		{name: "env name with =", mutate: func(in *Input) { in.Config.Envs = []*criapi.KeyValue{kv("A=B", "1")} }, err: invalid},
		{name: "empty env name", mutate: func(in *Input) { in.Config.Envs = []*criapi.KeyValue{kv("", "1")} }, err: invalid},
		{name: "NUL in env value", mutate: func(in *Input) { in.Config.Envs = []*criapi.KeyValue{kv("A", "x\x00")} }, err: invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput()
			if tc.mutate != nil {
				tc.mutate(&in)
			}
			s, err := Container(in)
			checkErr(t, err, tc.err)
			if err != nil {
				return
			}
			if diff := cmp.Diff(tc.wantEnv, s.Process.Env); diff != "" {
				t.Errorf("env (-want +got):\n%s", diff)
			}
			if s.Process.Cwd != tc.wantCwd {
				t.Errorf("cwd = %q, want %q", s.Process.Cwd, tc.wantCwd)
			}
		})
	}
}

func TestProcessFlags(t *testing.T) {
	in := baseInput()
	in.Config.Tty = true
	sc(&in).NoNewPrivs = true
	in.Config.Linux.Resources = &criapi.LinuxContainerResources{OomScoreAdj: 999}
	p := mustContainer(t, in).Process
	if !p.Terminal || !p.NoNewPrivileges || p.OOMScoreAdj == nil || *p.OOMScoreAdj != 999 {
		t.Errorf("terminal=%v noNewPrivileges=%v oomScoreAdj=%v, want true true 999", p.Terminal, p.NoNewPrivileges, p.OOMScoreAdj)
	}
	want := []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1048576, Soft: 1048576}}
	if diff := cmp.Diff(want, p.Rlimits); diff != "" {
		t.Errorf("rlimits (-want +got):\n%s", diff)
	}

	in = baseInput()
	if p := mustContainer(t, in).Process; p.Terminal || p.NoNewPrivileges || p.OOMScoreAdj != nil {
		t.Errorf("defaults: terminal=%v noNewPrivileges=%v oomScoreAdj=%v, want false false nil", p.Terminal, p.NoNewPrivileges, p.OOMScoreAdj)
	}
	in.Config.Linux.Resources = &criapi.LinuxContainerResources{OomScoreAdj: 1001}
	_, err := Container(in)
	checkErr(t, err, invalid, "oom_score_adj")
}

func TestStopSignal(t *testing.T) {
	for _, tc := range []struct {
		cfg  criapi.Signal
		img  string
		want syscall.Signal
		err  errKind
	}{
		{want: syscall.SIGTERM},
		{img: "SIGQUIT", want: syscall.SIGQUIT},
		{img: "quit", want: syscall.SIGQUIT},
		{img: "9", want: syscall.SIGKILL},
		{img: "SIGRTMIN+3", want: 37},
		{img: "RTMAX-1", want: 63},
		{img: "SIGRTMAX", want: 64},
		{img: "SIGCLD", want: syscall.SIGCHLD},
		{img: "SIGFOO", err: invalid},
		{img: "0", err: invalid},
		{img: "65", err: invalid},
		{img: "SIGRTMIN+31", err: invalid},
		{cfg: criapi.Signal_SIGNAL_SIGUSR1, img: "SIGQUIT", want: syscall.SIGUSR1},
		{cfg: criapi.Signal_SIGNAL_SIGRTMINPLUS1, want: 35},
		{cfg: criapi.Signal_SIGNAL_SIGRTMAXMINUS2, want: 62},
		{cfg: criapi.Signal(99), err: invalid},
	} {
		got, err := StopSignal(&criapi.ContainerConfig{StopSignal: tc.cfg}, ImageConfig{StopSignal: tc.img})
		checkErr(t, err, tc.err)
		if got != tc.want {
			t.Errorf("StopSignal(%v, %q) = %d, want %d", tc.cfg, tc.img, got, tc.want)
		}
	}
}
