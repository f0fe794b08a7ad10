package systemd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// Bus is what Units needs of systemd's D-Bus API: the go-systemd calls it
// makes (*sd.Conn implements it), so that tests put a fake behind it.
// The job methods send the job's result ("done", "failed", …) on ch once
// systemd has removed the job.
type Bus interface {
	StartTransientUnitContext(ctx context.Context, name, mode string, props []sd.Property, ch chan<- string) (int, error)
	StopUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	ResetFailedUnitContext(ctx context.Context, name string) error
	SetUnitPropertiesContext(ctx context.Context, name string, runtime bool, props ...sd.Property) error
	GetUnitNameByPID(ctx context.Context, pid uint32) (string, error)
	GetManagerProperty(name string) (string, error)
	Connected() bool
	Close()
}

// Dialer connects to systemd. The connection lives as long as ctx does
// (godbus closes it when ctx ends), so Units passes one that never ends
// and bounds the wait itself.
type Dialer func(ctx context.Context) (Bus, error)

// DialSystemd connects through the system bus, and as root directly to
// systemd's private socket (/run/systemd/private) when there is no bus
// daemon: a node without dbus still has systemd.
func DialSystemd(ctx context.Context) (Bus, error) {
	c, err := sd.NewWithContext(ctx)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// conn is the one connection a Units shares, dialled on first use and
// again after systemd or the bus went away (a daemon-reexec, a restart of
// dbus): a call on a lost connection is retried once on a new one.
type conn struct {
	dial Dialer
	// mu guards bus and version.
	mu  sync.Mutex
	bus Bus
	// version is systemd's major version, 0 when it could not be read
	// (then only properties every systemd with cgroup delegation knows
	// are sent).
	version int
}

// get returns the connection, dialling one if there is none or it is lost.
func (c *conn) get(ctx context.Context) (Bus, int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bus != nil && c.bus.Connected() {
		return c.bus, c.version, nil
	}
	if c.bus != nil {
		c.bus.Close()
		c.bus = nil
	}
	b, err := within(ctx, func() (Bus, error) { return c.dial(context.Background()) }, Bus.Close)
	if err != nil {
		return nil, 0, fmt.Errorf("connect to systemd: %w: %w", err, errdefs.ErrUnavailable)
	}
	v, err := within(ctx, func() (string, error) { return b.GetManagerProperty("Version") }, nil)
	if err != nil {
		b.Close()
		return nil, 0, fmt.Errorf("read systemd's version: %w: %w", err, errdefs.ErrUnavailable)
	}
	c.bus, c.version = b, parseVersion(v)
	return b, c.version, nil
}

// drop forgets b, if it is still the connection, so that the next call
// dials again.
func (c *conn) drop(b Bus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bus == b {
		c.bus.Close()
		c.bus = nil
	}
}

func (c *conn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bus != nil {
		c.bus.Close()
		c.bus = nil
	}
}

// within runs f, which cannot be cancelled (a dial whose context must
// outlive it; a go-systemd call without one), until ctx ends; a result
// that comes later is handed to discard.
func within[T any](ctx context.Context, f func() (T, error), discard func(T)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.err == nil && discard != nil {
				discard(r.v)
			}
		}()
		var zero T
		return zero, ctx.Err()
	}
}

// parseVersion reads systemd's Version property, a GVariant string such as
// "\"252.33-1~deb12u1\"" or "\"v245.4-1.fc32\"", as its major number.
func parseVersion(v string) int {
	v = strings.TrimLeft(v, `"v`)
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// lost says whether err means the connection is gone, not the call refused.
func lost(b Bus, err error) bool {
	return errors.Is(err, dbus.ErrClosed) || !b.Connected()
}

// dbusError reports whether err is the D-Bus error name (systemd's
// "org.freedesktop.systemd1.NoSuchUnit", …).
func dbusError(err error, name string) bool {
	var de dbus.Error
	if errors.As(err, &de) {
		return de.Name == name
	}
	var pde *dbus.Error
	return errors.As(err, &pde) && pde.Name == name
}

const (
	errNoSuchUnit = "org.freedesktop.systemd1.NoSuchUnit"
	errUnitExists = "org.freedesktop.systemd1.UnitExists"
	resultDone    = "done"
	modeReplace   = "replace"
)

// classify gives a D-Bus call's failure its kind, once: an unknown unit is
// NotFound, no answer in time (or no connection: get's errors are
// Unavailable already) Unavailable, for the kubelet to try again; what
// systemd refused stays unclassified (Unknown).
func classify(err error) error {
	switch {
	case err == nil, errors.Is(err, errdefs.ErrUnavailable):
		return err
	case dbusError(err, errNoSuchUnit):
		return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("systemd did not answer in time: %w: %w", err, errdefs.ErrUnavailable)
	case errors.Is(err, dbus.ErrClosed):
		return fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
	}
	return err
}

// awaitJob waits for the result of the job whose channel is ch.
func awaitJob(ctx context.Context, ch <-chan string) error {
	select {
	case res := <-ch:
		if res != resultDone {
			return fmt.Errorf("systemd's job ended %q", res)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
