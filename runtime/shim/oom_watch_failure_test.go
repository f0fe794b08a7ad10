package shim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2/ktesting"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/runtime/shimapi"
)

var errPlacement = errors.New("placement reached")

// noInotify is a cgroups manager on a host whose inotify instances are
// all taken: it serves create up to the placement, which ends the test.
type noInotify struct {
	cgroups.Manager // nil: what create does not reach before placement
	watched         []string
	removed         []string
}

func (f *noInotify) Create(string, *cgroups.Resources) error { return nil }
func (f *noInotify) OOMKills(string) (uint64, error)         { return 0, nil }
func (f *noInotify) Remove(p string) error                   { f.removed = append(f.removed, p); return nil }
func (f *noInotify) Placement(string) (*cgroups.Placement, error) {
	return nil, errPlacement
}

func (f *noInotify) WatchOOM(p string, _ func()) (func(), error) {
	f.watched = append(f.watched, p)
	return nil, fmt.Errorf("watch oom kills of %s: inotify: %w", p, unix.EMFILE)
}

// TestCreateWithoutOOMWatch: a container whose OOM watch cannot be set
// (EMFILE: the host's inotify instances are taken) is still made, its OOM
// kills read at its exit: the watch failing used to fail every container
// creation on the node.
func TestCreateWithoutOOMWatch(t *testing.T) {
	cg := &noInotify{}
	s := &service{shared: shared{cg: cg}, logger: ktesting.NewLogger(t, ktesting.DefaultConfig), dir: t.TempDir()}
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	scope := "/kubepods.slice/kubepods-pod1.slice/" + cgroups.ScopeName(id)
	spec := &specs.Spec{Process: &specs.Process{}, Root: &specs.Root{Path: "rootfs"}, Linux: &specs.Linux{CgroupsPath: scope}}
	_, err := s.create(context.Background(), &shimapi.CreateRequest{Id: id}, spec)
	if !errors.Is(err, errPlacement) {
		t.Fatalf("create = %v, want it to go on past the failed OOM watch", err)
	}
	if !slices.Equal(cg.watched, []string{scope}) || !slices.Equal(cg.removed, []string{scope}) {
		t.Errorf("watched %q, removed %q: want the scope watched once, then removed by the rollback", cg.watched, cg.removed)
	}
}
