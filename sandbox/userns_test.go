package sandbox

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/crib-runtime/crib/sandbox/nsfs"
)

// TestValidateUserMaps: the mappings crib takes are the kubelet's (one
// range per kind from container id 0); each other shape is refused with
// InvalidArgument naming what is wrong.
func TestValidateUserMaps(t *testing.T) {
	good := func() *Config {
		m := []nsfs.IDMap{{ContainerID: 0, HostID: 65536, Length: 65536}}
		return &Config{ID: strings.Repeat("a", 64), UserMaps: &nsfs.UserMaps{UIDs: m, GIDs: m}}
	}
	if err := validateUserMaps(good()); err != nil {
		t.Fatalf("kubelet's mapping refused: %v", err)
	}
	if err := validateUserMaps(&Config{}); err != nil {
		t.Fatalf("no user namespace refused: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string
	}{
		"two ranges":    {func(c *Config) { c.UserMaps.UIDs = append(c.UserMaps.UIDs, nsfs.IDMap{HostID: 1 << 20, Length: 1}) }, "exactly one uid"},
		"no gid":        {func(c *Config) { c.UserMaps.GIDs = nil }, "exactly one gid"},
		"root unmapped": {func(c *Config) { c.UserMaps.UIDs = []nsfs.IDMap{{ContainerID: 1, HostID: 65536, Length: 65536}} }, "container id 0"},
		"empty":         {func(c *Config) { c.UserMaps.GIDs = []nsfs.IDMap{{HostID: 65536}} }, "length 0"},
		"host root":     {func(c *Config) { c.UserMaps.UIDs = []nsfs.IDMap{{Length: 65536}} }, "host id 0"},
		"overflow":      {func(c *Config) { c.UserMaps.UIDs = []nsfs.IDMap{{HostID: 1<<32 - 10, Length: 65536}} }, "overflows"},
		"host network":  {func(c *Config) { c.HostNetwork = true }, "host's network"},
		"host pid":      {func(c *Config) { c.HostPID = true }, "host's network"},
	} {
		c := good()
		tc.edit(c)
		err := validateUserMaps(c)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want InvalidArgument saying %q", name, err, tc.want)
		}
	}
}
