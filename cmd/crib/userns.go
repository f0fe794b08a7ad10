package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/crib-runtime/crib/runtime"
	"github.com/crib-runtime/crib/sandbox/nsfs"
)

// probeUserNamespaces does at start what a hostUsers: false pod needs: it
// pins a user namespace (with the holder the pods use) and makes an
// idmapped bind of the image store with it. The answer is what Status
// advertises; the error says why not.
func probeUserNamespaces(holder []string, root, state string) (retErr error) {
	dir, err := os.MkdirTemp(state, "userns-probe-")
	if err != nil {
		return err
	}
	defer func() {
		if err := os.RemoveAll(dir); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()
	// A range no pod gets from the kubelet (it hands out multiples of
	// 65536 from 65536 up, far below this).
	m := []nsfs.IDMap{{ContainerID: 0, HostID: 1 << 31, Length: 65536}}
	paths, err := nsfs.PinUser(filepath.Join(dir, "ns"), holder, nsfs.UserMaps{UIDs: m, GIDs: m})
	if err != nil {
		return err
	}
	defer func() {
		if err := nsfs.Unpin(paths[nsfs.User]); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()
	if err := runtime.ProbeIDMap(filepath.Join(root, "images"), filepath.Join(dir, "mnt"), paths[nsfs.User]); err != nil {
		return fmt.Errorf("idmapped mount of the image store: %w", err)
	}
	return nil
}
