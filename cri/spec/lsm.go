package spec

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// LSM is what the host's Linux security modules offer, read by the daemon
// at start. The zero value is a host with neither AppArmor nor SELinux, on
// which every request for a profile or label is refused.
type LSM struct {
	AppArmor, SELinux bool
	// IgnoreSELinux: on a host without SELinux, SELinux options are
	// accepted and nothing is labelled, as containerd and CRI-O do
	// (config lsm.selinux_when_disabled = "ignore", which a cluster mixing
	// SELinux and other nodes may want); otherwise they are refused.
	IgnoreSELinux bool
	// AppArmorLoaded reports whether a profile of that name is loaded; it
	// is called only when AppArmor is on.
	AppArmorLoaded func(name string) (bool, error)
}

// DefaultAppArmorProfile is the profile AppArmor RuntimeDefault means. An
// operator loads it (contrib/apparmor/crib-default) with apparmor_parser;
// crib does not load profiles itself.
const DefaultAppArmorProfile = "crib-default"

// Profile names of the CRI's deprecated string fields.
const (
	appArmorRuntimeDefault = "runtime/default"
	appArmorUnconfined     = "unconfined"
	appArmorLocalhost      = "localhost/"
)

// SELinux defaults for a label part a container leaves out: the process
// type and the file type of container-selinux's policy, as containerd's
// and CRI-O's defaults (from the policy's lxc_contexts) are on Fedora and
// RHEL.
const (
	selinuxUser      = "system_u"
	selinuxRole      = "system_r"
	selinuxType      = "container_t"
	selinuxFileRole  = "object_r"
	selinuxFileType  = "container_file_t"
	selinuxLevel     = "s0"
	selinuxMaxLength = 4096
)

// lsm sets process.apparmorProfile, process.selinuxLabel and
// linux.mountLabel. A profile or label the host cannot apply is refused
// here (FailedPrecondition), never left out: the container would run
// unconfined while its pod says otherwise.
func lsm(in Input, s *specs.Spec) error {
	sc := in.Config.GetLinux().GetSecurityContext()
	profile, err := appArmorProfile(sc.GetApparmor(), sc.GetApparmorProfile(), sc.GetPrivileged(), in.LSM)
	if err != nil {
		return err
	}
	s.Process.ApparmorProfile = profile
	pod := in.Sandbox.GetLinux().GetSecurityContext().GetSelinuxOptions()
	s.Process.SelinuxLabel, s.Linux.MountLabel, err = selinuxLabels(sc.GetSelinuxOptions(), pod, in.LSM)
	return err
}

// appArmorProfile returns the profile a container runs under, "" for none.
// The SecurityProfile field wins over the deprecated string, as the CRI
// says. RuntimeDefault is no profile for a privileged container (as in
// Docker and containerd) and on a host without AppArmor, whose runtime
// default is to confine nothing; a Localhost profile must be loaded.
func appArmorProfile(sp *criapi.SecurityProfile, deprecated string, privileged bool, host LSM) (string, error) {
	typ, name := criapi.SecurityProfile_Unconfined, ""
	switch {
	case sp != nil:
		typ, name = sp.GetProfileType(), strings.TrimPrefix(sp.GetLocalhostRef(), appArmorLocalhost)
	case deprecated == "" || deprecated == appArmorUnconfined:
	case deprecated == appArmorRuntimeDefault:
		typ = criapi.SecurityProfile_RuntimeDefault
	case strings.HasPrefix(deprecated, appArmorLocalhost):
		typ, name = criapi.SecurityProfile_Localhost, strings.TrimPrefix(deprecated, appArmorLocalhost)
	default:
		return "", invalidf("apparmor profile %q: want %q, %q or %q<name>", deprecated, appArmorRuntimeDefault, appArmorUnconfined, appArmorLocalhost)
	}
	switch typ {
	case criapi.SecurityProfile_Unconfined:
		return "", nil
	case criapi.SecurityProfile_RuntimeDefault:
		if privileged || !host.AppArmor {
			return "", nil
		}
		name = DefaultAppArmorProfile
	case criapi.SecurityProfile_Localhost:
		if name == "" || strings.ContainsAny(name, "\x00\n") {
			return "", invalidf("apparmor profile %q: Localhost needs a profile name", name)
		}
		if !host.AppArmor {
			return "", fmt.Errorf("apparmor profile %q: AppArmor is not enabled on this host: %w", name, errdefs.ErrFailedPrecondition)
		}
	default:
		return "", invalidf("apparmor profile type %v is not known", typ)
	}
	if err := appArmorLoaded(name, host); err != nil {
		return "", err
	}
	return name, nil
}

func appArmorLoaded(name string, host LSM) error {
	if host.AppArmorLoaded == nil {
		return nil
	}
	ok, err := host.AppArmorLoaded(name)
	if err != nil {
		return fmt.Errorf("apparmor profile %q: %w", name, err)
	}
	if !ok {
		return fmt.Errorf("apparmor profile %q is not loaded on this host (load it with apparmor_parser): %w", name, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// selinuxLabels returns the process and mount labels of a container: each
// part of its SELinux options, else the pod's, else container-selinux's
// default; both "" when neither asks for anything. The mount label shares
// the process label's user and level (its categories), which is what lets
// the process reach the files. crib does not allocate a level per pod (the
// MCS categories containerd and CRI-O pick): a pod that wants isolation
// from other pods by level sets one.
func selinuxLabels(ctr, pod *criapi.SELinuxOption, host LSM) (process, mount string, err error) {
	part := func(get func(*criapi.SELinuxOption) string, def string) string {
		if v := get(ctr); v != "" {
			return v
		}
		if v := get(pod); v != "" {
			return v
		}
		return def
	}
	user := part((*criapi.SELinuxOption).GetUser, "")
	role := part((*criapi.SELinuxOption).GetRole, "")
	typ := part((*criapi.SELinuxOption).GetType, "")
	level := part((*criapi.SELinuxOption).GetLevel, "")
	if user == "" && role == "" && typ == "" && level == "" {
		return "", "", nil
	}
	asked := strings.Join([]string{user, role, typ, level}, ":")
	for _, p := range []string{user, role, typ} {
		if strings.ContainsAny(p, ":\x00\n ") {
			return "", "", invalidf("selinux options %q: user, role and type must not contain ':', spaces or control characters", asked)
		}
	}
	if strings.ContainsAny(level, "\x00\n ") || len(asked) > selinuxMaxLength {
		return "", "", invalidf("selinux options %q: bad level", asked)
	}
	if !host.SELinux {
		// Level s0 alone (Kubernetes' e2e pods ask for it) is the level
		// every process of a host without SELinux is at: it asks for no
		// isolation that host fails to give. A user, role, type or
		// categories would, and are refused.
		if user == "" && role == "" && typ == "" && level == selinuxLevel || host.IgnoreSELinux {
			return "", "", nil
		}
		return "", "", fmt.Errorf("selinux options %q: SELinux is not enabled on this host: %w", asked, errdefs.ErrFailedPrecondition)
	}
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	user, level = or(user, selinuxUser), or(level, selinuxLevel)
	process = strings.Join([]string{user, or(role, selinuxRole), or(typ, selinuxType), level}, ":")
	mount = strings.Join([]string{user, selinuxFileRole, selinuxFileType, level}, ":")
	return process, mount, nil
}

// PodLSM checks the pod's own AppArmor profile and SELinux options at
// RunPodSandbox, so that a pod the host cannot confine as asked fails
// there and not at its first container. The pod's SELinux options are the
// default of its containers' labels; its AppArmor profile is for the
// sandbox only (containers name their own, the kubelet fills them from the
// pod's), and crib's pause process, which runs nothing of the pod's, is
// confined by crib itself, not by that profile.
func PodLSM(sc *criapi.LinuxSandboxSecurityContext, host LSM) error {
	// RuntimeDefault names no profile the pod depends on: nothing to check
	// (crib-default need not be loaded for a pod none of whose containers
	// asks for it).
	if sp := sc.GetApparmor(); sp.GetProfileType() != criapi.SecurityProfile_RuntimeDefault {
		if _, err := appArmorProfile(sp, "", false, host); err != nil {
			return fmt.Errorf("pod: %w", err)
		}
	}
	if _, _, err := selinuxLabels(nil, sc.GetSelinuxOptions(), host); err != nil {
		return fmt.Errorf("pod: %w", err)
	}
	return nil
}
