package initproc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/ocihook"
	"github.com/crib-runtime/crib/runtime/initmsg"
)

// beforePivot is the hooks' part of the init between the mounts and
// pivot_root, in runc's order: the launcher's prestart and createRuntime
// hooks (the init waits for them), then the createContainer hooks, run by
// the init in the container's namespaces with the host's filesystem still
// reachable, from the rootfs as working directory.
func beforePivot(pipe *os.File, hooks *initmsg.Hooks, rootPath string) error {
	if hooks == nil {
		return nil
	}
	if hooks.Runtime {
		if err := awaitRuntimeHooks(pipe); err != nil {
			return err
		}
	}
	return runHooks(ocihook.CreateContainer, hooks.CreateContainer, hooks.State, specs.StateCreating, rootPath)
}

// awaitRuntimeHooks tells the launcher that the mounts are made and waits
// until its hooks have run. A failed hook makes the launcher kill the init
// rather than answer.
func awaitRuntimeHooks(pipe *os.File) error {
	if err := initmsg.Write(pipe, initmsg.Message{Type: initmsg.TypeHooks}); err != nil {
		return fail(stepHooks, "", err)
	}
	var m initmsg.Message
	err := initmsg.Read(pipe, &m)
	switch {
	case errors.Is(err, io.EOF):
		return fail(stepHooks, "", errors.New("wait for the runtime's hooks: launcher closed the init socket"))
	case err != nil:
		return fail(stepHooks, "", fmt.Errorf("wait for the runtime's hooks: %w", err))
	case m.Type != initmsg.TypeResume:
		return fail(stepHooks, "", fmt.Errorf("wait for the runtime's hooks: unexpected message %q", m.Type))
	}
	return nil
}

// runHooks runs hooks of one kind in order with the state as the init
// sees it (its own pid, as runc passes it), and stops at the first that
// fails. The init runs with umask 0 for the modes of what it makes; a
// hook gets the usual 022.
func runHooks(kind string, hooks []specs.Hook, st specs.State, status specs.ContainerState, dir string) error {
	if len(hooks) == 0 {
		return nil
	}
	st.Status, st.Pid = status, unix.Getpid()
	state, err := json.Marshal(st)
	if err != nil {
		return fail(stepHooks, "", fmt.Errorf("encode %s hooks' state: %w", kind, err))
	}
	old := unix.Umask(0o022)
	defer unix.Umask(old)
	for i, h := range hooks {
		if err := ocihook.Run(context.Background(), h, state, ocihook.Options{Dir: dir}); err != nil {
			return fail(stepHooks, h.Path, fmt.Errorf("%s hook #%d: %w", kind, i, err))
		}
	}
	return nil
}
