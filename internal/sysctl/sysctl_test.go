package sysctl

import (
	"errors"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name             string
		in               map[string]string
		hostNet, hostIPC bool
		want             map[string]string
		bad              bool
	}{
		{name: "none"},
		{name: "namespaced", in: map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shm_rmid_forced": "1", "kernel.sem": "250 32000 32 128", "fs.mqueue.msg_max": "64", "kernel.msgmax": "8192"},
			want: map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shm_rmid_forced": "1", "kernel.sem": "250 32000 32 128", "fs.mqueue.msg_max": "64", "kernel.msgmax": "8192"}},
		{name: "slashes", in: map[string]string{"net/ipv4/conf/eth0.100/forwarding": "1"}, want: map[string]string{"net.ipv4.conf.eth0/100.forwarding": "1"}},
		{name: "ipc with host network", hostNet: true, in: map[string]string{"kernel.shm_rmid_forced": "1"}, want: map[string]string{"kernel.shm_rmid_forced": "1"}},
		{name: "net with host network", hostNet: true, in: map[string]string{"net.ipv4.ip_forward": "1"}, bad: true},
		{name: "ipc with host ipc", hostIPC: true, in: map[string]string{"kernel.msgmax": "1"}, bad: true},
		{name: "mqueue with host ipc", hostIPC: true, in: map[string]string{"fs.mqueue.queues_max": "1"}, bad: true},
		{name: "not namespaced", in: map[string]string{"vm.overcommit_memory": "1"}, bad: true},
		{name: "uts", in: map[string]string{"kernel.hostname": "x"}, bad: true},
		{name: "dot-dot", in: map[string]string{"net.ipv4..conf": "1"}, bad: true},
		{name: "path escape", in: map[string]string{"net/../../kernel/core_pattern": "|/x"}, bad: true},
		{name: "dotted path escape", in: map[string]string{"net.//.//.kernel.core_pattern": "|/x"}, bad: true},
		{name: "empty component", in: map[string]string{"net.ipv4.": "1"}, bad: true},
		{name: "empty name", in: map[string]string{"": "1"}, bad: true},
		{name: "newline in value", in: map[string]string{"net.ipv4.ip_forward": "1\n"}, bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Validate(tc.in, tc.hostNet, tc.hostIPC)
			if tc.bad {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("Validate(%v) = %v, %v; want InvalidArgument", tc.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestPath(t *testing.T) {
	for name, want := range map[string]string{
		"net.ipv4.ip_forward":               "/proc/sys/net/ipv4/ip_forward",
		"net.ipv4.conf.eth0/100.forwarding": "/proc/sys/net/ipv4/conf/eth0.100/forwarding",
		"kernel.shm_rmid_forced":            "/proc/sys/kernel/shm_rmid_forced",
	} {
		if got, err := Path(name); err != nil || got != want {
			t.Errorf("Path(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	for _, bad := range []string{"", "net..ipv4", "net.//.x", "net./.x", ".net", "net."} {
		if p, err := Path(bad); err == nil {
			t.Errorf("Path(%q) = %q, want an error", bad, p)
		}
	}
}
