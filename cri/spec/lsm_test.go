package spec

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeAppArmor is a host with AppArmor on and the named profiles loaded.
func fakeAppArmor(loaded ...string) LSM {
	return LSM{AppArmor: true, AppArmorLoaded: func(name string) (bool, error) {
		for _, l := range loaded {
			if l == name {
				return true, nil
			}
		}
		return false, nil
	}}
}

func TestAppArmor(t *testing.T) {
	none := LSM{}
	aa := fakeAppArmor(DefaultAppArmorProfile, "mine")
	rd := &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_RuntimeDefault}
	local := func(ref string) *criapi.SecurityProfile {
		return &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_Localhost, LocalhostRef: ref}
	}
	for _, tc := range []struct {
		name       string
		sp         *criapi.SecurityProfile
		deprecated string
		privileged bool
		host       LSM
		want       string
		err        error
		says       string
	}{
		{name: "nothing asked, no apparmor", host: none},
		{name: "nothing asked", host: aa},
		{name: "unconfined, no apparmor", sp: &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_Unconfined}, host: none},
		{name: "deprecated unconfined, no apparmor", deprecated: "unconfined", host: none},
		{name: "runtime default, no apparmor", sp: rd, host: none},
		{name: "deprecated runtime default, no apparmor", deprecated: "runtime/default", host: none},
		{name: "runtime default", sp: rd, host: aa, want: DefaultAppArmorProfile},
		{name: "deprecated runtime default", deprecated: "runtime/default", host: aa, want: DefaultAppArmorProfile},
		{name: "runtime default, privileged", sp: rd, privileged: true, host: aa},
		{name: "runtime default, not loaded", sp: rd, host: fakeAppArmor("mine"), err: errdefs.ErrFailedPrecondition, says: `"crib-default" is not loaded`},
		{name: "localhost", sp: local("mine"), host: aa, want: "mine"},
		{name: "localhost with prefix", sp: local("localhost/mine"), host: aa, want: "mine"},
		{name: "deprecated localhost", deprecated: "localhost/mine", host: aa, want: "mine"},
		{name: "localhost, privileged", sp: local("mine"), privileged: true, host: aa, want: "mine"},
		{name: "field wins over deprecated", sp: local("mine"), deprecated: "unconfined", host: aa, want: "mine"},
		{name: "localhost, no apparmor", sp: local("mine"), host: none, err: errdefs.ErrFailedPrecondition, says: `"mine": AppArmor is not enabled on this host`},
		{name: "deprecated localhost, no apparmor", deprecated: "localhost/mine", host: none, err: errdefs.ErrFailedPrecondition, says: "AppArmor is not enabled"},
		{name: "localhost, not loaded", sp: local("other"), host: aa, err: errdefs.ErrFailedPrecondition, says: `"other" is not loaded`},
		{name: "localhost without name", sp: local(""), host: aa, err: errdefs.ErrInvalidArgument, says: "needs a profile name"},
		{name: "localhost with newline", sp: local("a\nb"), host: aa, err: errdefs.ErrInvalidArgument},
		{name: "unknown deprecated", deprecated: "docker-default", host: aa, err: errdefs.ErrInvalidArgument, says: `"docker-default"`},
		{name: "unknown type", sp: &criapi.SecurityProfile{ProfileType: 7}, host: aa, err: errdefs.ErrInvalidArgument},
	} {
		got, err := appArmorProfile(tc.sp, tc.deprecated, tc.privileged, tc.host)
		if tc.err != nil {
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("%s: %q, %v; want %v saying %q", tc.name, got, err, tc.err, tc.says)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	lookupErr := LSM{AppArmor: true, AppArmorLoaded: func(string) (bool, error) { return false, errors.New("boom") }}
	if _, err := appArmorProfile(local("mine"), "", false, lookupErr); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("failed lookup: %v, want it reported", err)
	}
}

func TestSELinux(t *testing.T) {
	on := LSM{SELinux: true}
	opt := func(u, r, ty, l string) *criapi.SELinuxOption {
		return &criapi.SELinuxOption{User: u, Role: r, Type: ty, Level: l}
	}
	for _, tc := range []struct {
		name         string
		ctr, pod     *criapi.SELinuxOption
		host         LSM
		process, mnt string
		err          error
		says         string
	}{
		{name: "nothing, no selinux"},
		{name: "empty options, no selinux", ctr: opt("", "", "", ""), pod: opt("", "", "", "")},
		{name: "nothing", host: on},
		{name: "level only", ctr: opt("", "", "", "s0:c1,c2"), host: on,
			process: "system_u:system_r:container_t:s0:c1,c2", mnt: "system_u:object_r:container_file_t:s0:c1,c2"},
		{name: "all set", ctr: opt("u", "r", "t", "s0"), host: on, process: "u:r:t:s0", mnt: "u:object_r:container_file_t:s0"},
		{name: "pod's level, container's type", ctr: opt("", "", "spc_t", ""), pod: opt("", "", "", "s0:c5,c6"), host: on,
			process: "system_u:system_r:spc_t:s0:c5,c6", mnt: "system_u:object_r:container_file_t:s0:c5,c6"},
		{name: "container wins", ctr: opt("", "", "", "s0:c1"), pod: opt("", "", "", "s0:c2"), host: on,
			process: "system_u:system_r:container_t:s0:c1", mnt: "system_u:object_r:container_file_t:s0:c1"},
		{name: "asked, no selinux", ctr: opt("", "", "", "s0:c1,c2"), err: errdefs.ErrFailedPrecondition, says: `":::s0:c1,c2": SELinux is not enabled on this host`},
		{name: "pod asked, no selinux", pod: opt("", "", "container_t", ""), err: errdefs.ErrFailedPrecondition, says: "SELinux is not enabled"},
		{name: "level s0 alone, no selinux", ctr: opt("", "", "", "s0"), pod: opt("", "", "", "s0")},
		{name: "a type, no selinux, ignored by the operator's choice", ctr: opt("", "", "container_logreader_t", "s0:c1"), host: LSM{IgnoreSELinux: true}},
		{name: "level s0 and a type, no selinux", ctr: opt("", "", "spc_t", "s0"), err: errdefs.ErrFailedPrecondition, says: `"::spc_t:s0": SELinux is not enabled`},
		{name: "level s0 and a user, no selinux", pod: opt("system_u", "", "", "s0"), err: errdefs.ErrFailedPrecondition, says: "SELinux is not enabled"},
		{name: "colon in type", ctr: opt("", "", "a:b", ""), host: on, err: errdefs.ErrInvalidArgument},
		{name: "newline in level", ctr: opt("", "", "", "s0\nx"), host: on, err: errdefs.ErrInvalidArgument},
	} {
		p, m, err := selinuxLabels(tc.ctr, tc.pod, tc.host)
		if tc.err != nil {
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("%s: %q %q, %v; want %v saying %q", tc.name, p, m, err, tc.err, tc.says)
			}
			continue
		}
		if err != nil || p != tc.process || m != tc.mnt {
			t.Errorf("%s: %q %q, %v; want %q %q", tc.name, p, m, err, tc.process, tc.mnt)
		}
	}
}

// TestContainerLSM: the fields reach the spec, and a host without the LSM
// refuses a container that asks for a profile or label.
func TestContainerLSM(t *testing.T) {
	in := baseInput()
	in.LSM = fakeAppArmor("mine")
	in.LSM.SELinux = true
	sc := in.Config.Linux.SecurityContext
	sc.Apparmor = &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_Localhost, LocalhostRef: "mine"}
	in.Sandbox.Linux.SecurityContext.SelinuxOptions = &criapi.SELinuxOption{Level: "s0:c7,c8"}
	s, err := Container(in)
	if err != nil {
		t.Fatal(err)
	}
	if s.Process.ApparmorProfile != "mine" || s.Process.SelinuxLabel != "system_u:system_r:container_t:s0:c7,c8" ||
		s.Linux.MountLabel != "system_u:object_r:container_file_t:s0:c7,c8" {
		t.Errorf("apparmor %q, selinux %q, mount label %q", s.Process.ApparmorProfile, s.Process.SelinuxLabel, s.Linux.MountLabel)
	}
	in.LSM = LSM{}
	if _, err := Container(in); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "AppArmor is not enabled") {
		t.Errorf("no AppArmor: %v", err)
	}
	sc.Apparmor = nil
	if _, err := Container(in); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "SELinux is not enabled") {
		t.Errorf("no SELinux: %v", err)
	}
}

func TestPodLSM(t *testing.T) {
	for _, tc := range []struct {
		name string
		sc   *criapi.LinuxSandboxSecurityContext
		host LSM
		err  error
	}{
		{"nothing", nil, LSM{}, nil},
		{"runtime default, no apparmor", &criapi.LinuxSandboxSecurityContext{Apparmor: &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_RuntimeDefault}}, LSM{}, nil},
		{"localhost, no apparmor", &criapi.LinuxSandboxSecurityContext{Apparmor: &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_Localhost, LocalhostRef: "p"}}, LSM{}, errdefs.ErrFailedPrecondition},
		{"runtime default, not loaded", &criapi.LinuxSandboxSecurityContext{Apparmor: &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_RuntimeDefault}}, fakeAppArmor(), nil},
		{"localhost, not loaded", &criapi.LinuxSandboxSecurityContext{Apparmor: &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_Localhost, LocalhostRef: "p"}}, fakeAppArmor(), errdefs.ErrFailedPrecondition},
		{"localhost, loaded", &criapi.LinuxSandboxSecurityContext{Apparmor: &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_Localhost, LocalhostRef: "p"}}, fakeAppArmor("p"), nil},
		{"selinux, none", &criapi.LinuxSandboxSecurityContext{SelinuxOptions: &criapi.SELinuxOption{Type: "spc_t"}}, LSM{}, errdefs.ErrFailedPrecondition},
		{"selinux", &criapi.LinuxSandboxSecurityContext{SelinuxOptions: &criapi.SELinuxOption{Type: "spc_t"}}, LSM{SELinux: true}, nil},
	} {
		err := PodLSM(tc.sc, tc.host)
		if (tc.err == nil && err != nil) || (tc.err != nil && !errors.Is(err, tc.err)) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
	}
}
