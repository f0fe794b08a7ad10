package cri

import (
	"errors"

	"golang.org/x/sys/unix"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// runtimeHandlers is what Status reports per runtime handler. The kubelet
// reads these features to decide whether it may ask for recursive
// read-only mounts and user namespaces (critest skips its specs for a
// feature not advertised); crib has one runtime: the default handler ("")
// and the named ones configured, which are aliases of it. User namespaces
// are advertised where the daemon's probe at start made one and an
// idmapped mount with it (cmd/crib).
func runtimeHandlers(rro, userns bool, named []string) []*criapi.RuntimeHandler {
	var out []*criapi.RuntimeHandler
	for _, name := range append([]string{""}, named...) {
		out = append(out, &criapi.RuntimeHandler{Name: name,
			Features: &criapi.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: rro, UserNamespaces: userns}})
	}
	return out
}

// probeMountSetattr reports whether this kernel has mount_setattr(2)
// (Linux 5.12), which the init needs for recursive read-only mounts. An
// empty attribute set is a no-op the kernel answers with success after
// checking only the caller's right to mount; ENOSYS (an older kernel) or
// EPERM (a seccomp filter, no CAP_SYS_ADMIN) mean the init could not use it
// either. The daemon and the inits it starts share the kernel and, run as
// root, the right to mount, so one probe at start-up answers for all.
func probeMountSetattr() bool {
	err := unix.MountSetattr(-1, "", unix.AT_EMPTY_PATH, &unix.MountAttr{})
	return err == nil || errors.Is(err, unix.EBADF)
}
