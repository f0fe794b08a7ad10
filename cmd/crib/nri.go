package main

import (
	"time"

	"github.com/crib-runtime/crib/internal/config"
	"github.com/crib-runtime/crib/nri"
)

// newNRI makes the NRI adaptation, or nil (NRI off) when the config says
// so; serve starts it once the CRI server can answer its synchronisation.
func newNRI(c config.NRI) (*nri.NRI, error) {
	if c.Disable {
		return nil, nil
	}
	return nri.New(nri.Config{SocketPath: c.SocketPath, PluginPath: c.PluginPath, PluginConfigPath: c.PluginConfigPath,
		DisableConnections: c.DisableConnections, RegistrationTimeout: time.Duration(c.RegistrationTimeout),
		RequestTimeout: time.Duration(c.RequestTimeout)}, version)
}
