package initproc

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/internal/lsm"
)

// applyLSM asks that the process init execs run under the spec's AppArmor
// profile and SELinux label. The kernel applies both at execve; init itself
// stays as it is until then. It runs while init is still root with every
// capability, in the container's mount namespace (its procfs), on the
// thread that will call execve: the attributes are per thread. A host
// without the module refuses the write, and init fails rather than run the
// process unconfined; the daemon refuses such a container before that.
func applyLSM(p *specs.Process, proc lsm.Proc) error {
	if p.ApparmorProfile != "" {
		if err := proc.SetAppArmorExec(p.ApparmorProfile); err != nil {
			return fail(stepAppArmor, "", fmt.Errorf("%w (is AppArmor enabled on this host, and the profile loaded?)", err))
		}
	}
	if p.SelinuxLabel != "" {
		if err := proc.SetSELinuxExec(p.SelinuxLabel); err != nil {
			return fail(stepSELinux, "", fmt.Errorf("%w (is SELinux enabled on this host?)", err))
		}
	}
	return nil
}

// withMountLabel adds the SELinux context= option to the data of a
// filesystem of type typ mounted for a spec with a mount label, so its
// files carry the label the container's process may use. proc, sysfs and
// mqueue keep their own labels (runc labels none of them this way;
// context= is refused by some and would relabel kernel state in others).
func withMountLabel(data []string, typ, label string) []string {
	switch {
	case label == "", typ == "proc", typ == "sysfs", typ == "mqueue", typ == "cgroup", typ == "cgroup2":
		return data
	}
	return append(data[:len(data):len(data)], "context=\""+label+"\"")
}
