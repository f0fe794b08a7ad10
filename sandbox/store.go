package sandbox

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/internal/statefile"
	"github.com/crib-runtime/crib/sandbox/cni"
	"github.com/crib-runtime/crib/sandbox/nsfs"
)

// recordVersion is the version of the pod record file this code writes.
// Version 1 is read too (see recordV2).
const recordVersion = 2

// recordV1 is the persisted form of a Pod, version 1. It is its own type
// so that renaming a field of Pod cannot silently change the file format;
// a change of meaning gets a new version and a conversion.
type recordV1 struct {
	Version        int               `json:"version"`
	ID             string            `json:"id"`
	Name           string            `json:"name"`
	Namespace      string            `json:"namespace"`
	UID            string            `json:"uid"`
	Attempt        uint32            `json:"attempt"`
	Labels         map[string]string `json:"labels,omitempty"`
	Annotations    map[string]string `json:"annotations,omitempty"`
	CreatedAt      time.Time         `json:"created_at"`
	State          string            `json:"state"`
	Network        string            `json:"network"`
	Dir            string            `json:"dir"`
	NetNS          string            `json:"net_ns,omitempty"`
	IPCNS          string            `json:"ipc_ns,omitempty"`
	UTSNS          string            `json:"uts_ns,omitempty"`
	CgroupParent   string            `json:"cgroup_parent,omitempty"`
	Cgroup         string            `json:"cgroup,omitempty"`
	IPs            []string          `json:"ips,omitempty"`
	Hostname       string            `json:"hostname"`
	HostnamePath   string            `json:"hostname_path"`
	ResolvPath     string            `json:"resolv_path"`
	HostsPath      string            `json:"hosts_path"`
	ShmPath        string            `json:"shm_path,omitempty"`
	RuntimeHandler string            `json:"runtime_handler,omitempty"`
	LogDir         string            `json:"log_dir,omitempty"`
	// The CNI capability-argument JSON forms, a format of their own
	// defined by the CNI conventions.
	PortMappings []cni.PortMapping `json:"port_mappings,omitempty"`
	Bandwidth    *cni.Bandwidth    `json:"bandwidth,omitempty"`
	Sysctls      map[string]string `json:"sysctls,omitempty"`
	SharePID     bool              `json:"share_pid,omitempty"`
	PausePID     int               `json:"pause_pid,omitempty"`
	// CreatedCgroups: ancestors crib made for the pod's cgroup.
	CreatedCgroups []string `json:"created_cgroups,omitempty"`
}

// recordV2 is version 1 and the pod's security decisions, which
// CreateContainer must take from the record rather than from the request.
// A version 1 record loads as SecurityUnrecorded, since nothing in it says
// whether the pod was privileged or used the host's pid namespace.
type recordV2 struct {
	recordV1
	Privileged         bool `json:"privileged,omitempty"`
	HostPID            bool `json:"host_pid,omitempty"`
	SecurityUnrecorded bool `json:"security_unrecorded,omitempty"`
	// Seccomp was added within version 2: a record without it loads as
	// "" (no pod-level profile), which is what such pods ran with.
	Seccomp string `json:"seccomp,omitempty"`
	// SELinux was added within version 2: a record without it is a pod
	// that asked for no SELinux options (crib refused them then, on hosts
	// without SELinux, and ignored them elsewhere).
	SELinux *SELinuxOptions `json:"selinux,omitempty"`
	// UserNS and UserMaps were added within version 2: a record without
	// them is a pod in the host's user namespace, which is all crib
	// made before.
	UserNS   string         `json:"user_ns,omitempty"`
	UserMaps *nsfs.UserMaps `json:"user_maps,omitempty"`
	// Overhead and Resources were added within version 2: a record
	// without them is a pod that gave none, or one made before crib kept
	// them, which only NRI plugins read.
	Overhead  *specs.LinuxResources `json:"overhead,omitempty"`
	Resources *specs.LinuxResources `json:"resources,omitempty"`
}

func toRecord(p *Pod) recordV2 {
	r := recordV2{recordV1: toRecordV1(p), Privileged: p.Privileged, HostPID: p.HostPID, SecurityUnrecorded: p.SecurityUnrecorded, Seccomp: p.Seccomp,
		Overhead: p.Overhead, Resources: p.Resources}
	if p.SELinux != (SELinuxOptions{}) {
		se := p.SELinux
		r.SELinux = &se
	}
	if p.UserNS != "" {
		um := p.UserMaps
		r.UserNS, r.UserMaps = p.UserNS, &um
	}
	return r
}

func toRecordV1(p *Pod) recordV1 {
	return recordV1{
		Version: recordVersion, ID: p.ID, Name: p.Name, Namespace: p.Namespace, UID: p.UID,
		Attempt: p.Attempt, Labels: p.Labels, Annotations: p.Annotations, CreatedAt: p.CreatedAt,
		State: p.State.String(), Network: p.Network.String(), Dir: p.Dir,
		NetNS: p.NetNS, IPCNS: p.IPCNS, UTSNS: p.UTSNS, CgroupParent: p.CgroupParent, Cgroup: p.Cgroup,
		IPs: p.IPs, Hostname: p.Hostname, HostnamePath: p.HostnamePath, ResolvPath: p.ResolvPath,
		HostsPath: p.HostsPath, ShmPath: p.ShmPath, RuntimeHandler: p.RuntimeHandler, LogDir: p.LogDir,
		PortMappings: p.PortMappings, Bandwidth: p.Bandwidth, Sysctls: p.Sysctls,
		SharePID: p.SharePID, PausePID: p.PausePID, CreatedCgroups: p.CreatedCgroups,
	}
}

func fromRecord(r *recordV2) (*Pod, error) {
	p, err := fromRecordV1(&r.recordV1)
	if err != nil {
		return nil, err
	}
	p.Privileged, p.HostPID, p.SecurityUnrecorded = r.Privileged, r.HostPID, r.SecurityUnrecorded
	p.Seccomp = r.Seccomp
	p.Overhead, p.Resources = r.Overhead, r.Resources
	if r.SELinux != nil {
		p.SELinux = *r.SELinux
	}
	if r.UserMaps != nil {
		p.UserNS, p.UserMaps = r.UserNS, *r.UserMaps
	}
	return p, nil
}

func fromRecordV1(r *recordV1) (*Pod, error) {
	p := &Pod{
		ID: r.ID, Name: r.Name, Namespace: r.Namespace, UID: r.UID, Attempt: r.Attempt,
		Labels: r.Labels, Annotations: r.Annotations, CreatedAt: r.CreatedAt, Dir: r.Dir,
		NetNS: r.NetNS, IPCNS: r.IPCNS, UTSNS: r.UTSNS, CgroupParent: r.CgroupParent, Cgroup: r.Cgroup,
		IPs: r.IPs, Hostname: r.Hostname, HostnamePath: r.HostnamePath, ResolvPath: r.ResolvPath,
		HostsPath: r.HostsPath, ShmPath: r.ShmPath, RuntimeHandler: r.RuntimeHandler, LogDir: r.LogDir,
		PortMappings: r.PortMappings, Bandwidth: r.Bandwidth, Sysctls: r.Sysctls,
		SharePID: r.SharePID, PausePID: r.PausePID, CreatedCgroups: r.CreatedCgroups,
	}
	for s, n := range stateNames {
		if n == r.State {
			p.State = s
		}
	}
	for _, n := range []NetworkState{NetworkHost, NetworkAttached, NetworkDetached} {
		if n.String() == r.Network {
			p.Network = n
		}
	}
	if p.State == 0 || p.Network == 0 {
		return nil, fmt.Errorf("pod %s: unknown state %q or network state %q", r.ID, r.State, r.Network)
	}
	return p, nil
}

// Store keeps pod records: one JSON file per pod in a directory, written
// atomically, and an index in memory. It is safe for concurrent use.
type Store struct {
	dir string
	// mu guards pods, creating and writers. It is never held across file
	// I/O: a record's write is fsynced, and Get and List, which every RPC
	// makes, must not wait for another pod's disk.
	mu   sync.RWMutex
	pods map[string]*Pod
	// creating holds the pods whose first record is being written, so
	// that their id and name stay taken meanwhile.
	creating map[string]*Pod
	// writers serialises the writes of one pod's record (create, updates,
	// delete), so that the last write on disk is the one in pods; one
	// entry per stored or creating pod.
	writers map[string]*sync.Mutex
}

// writeRecord writes a pod's first record durably: the pod's setup that
// follows must be undone after a power loss too (its CNI address
// reservation outlives a reboot). Later records are written with
// statefile.UpdateJSON, whose rename need not be durable: after a reboot
// the pod is NOTREADY whichever version is found (Recover). A variable so
// that tests can hold a write.
var writeRecord = statefile.WriteJSON

// OpenStore loads every record in dir (created if missing). A record of a
// version this code does not know fails the open (statefile.ErrVersion):
// a downgraded daemon must not guess at its meaning.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open pod store: %w", err)
	}
	// A daemon killed while it wrote a record left its temp file.
	if err := statefile.RemoveTemps(dir); err != nil {
		return nil, fmt.Errorf("open pod store: %w", err)
	}
	s := &Store{dir: dir, pods: map[string]*Pod{}, creating: map[string]*Pod{}, writers: map[string]*sync.Mutex{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open pod store: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue // statefile's temp files start with a dot
		}
		p, err := load(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("open pod store: %w", err)
		}
		s.pods[p.ID] = p
		s.writers[p.ID] = &sync.Mutex{}
	}
	return s, nil
}

func load(path string) (*Pod, error) {
	var v struct {
		Version int `json:"version"`
	}
	if err := statefile.ReadJSON(path, &v); err != nil {
		return nil, err
	}
	var r recordV2
	switch v.Version {
	case 1:
		if err := statefile.ReadJSON(path, &r.recordV1); err != nil {
			return nil, err
		}
		r.SecurityUnrecorded = true
	case recordVersion:
		if err := statefile.ReadJSON(path, &r); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%s: version %d: %w", path, v.Version, statefile.ErrVersion)
	}
	if r.ID == "" || filepath.Base(path) != r.ID+".json" {
		return nil, fmt.Errorf("%s: record names pod %q", path, r.ID)
	}
	return fromRecord(&r)
}

func (s *Store) path(id string) string { return filepath.Join(s.dir, id+".json") }

// Create stores a new pod. A pod with the same id, or the same name,
// namespace, uid and attempt (the CRI's uniqueness rule), is AlreadyExists
// naming the existing pod.
func (s *Store) Create(p *Pod) error {
	if err := checkID(p.ID); err != nil {
		return err
	}
	s.mu.Lock()
	if _, ok := s.pods[p.ID]; ok {
		s.mu.Unlock()
		return existsf("pod %s", p.ID)
	}
	if _, ok := s.creating[p.ID]; ok {
		s.mu.Unlock()
		return existsf("pod %s", p.ID)
	}
	for _, others := range []map[string]*Pod{s.pods, s.creating} {
		for _, o := range others {
			if o.Name == p.Name && o.Namespace == p.Namespace && o.UID == p.UID && o.Attempt == p.Attempt {
				s.mu.Unlock()
				return existsf("pod %s/%s (uid %s, attempt %d) is pod %s", p.Namespace, p.Name, p.UID, p.Attempt, o.ID)
			}
		}
	}
	w := &sync.Mutex{}
	w.Lock()
	defer w.Unlock()
	s.creating[p.ID], s.writers[p.ID] = clonePod(p), w
	s.mu.Unlock()

	err := s.write(p, writeRecord)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.creating, p.ID)
	if err != nil {
		delete(s.writers, p.ID)
		return err
	}
	s.pods[p.ID] = clonePod(p)
	return nil
}

// Update replaces a stored pod's record. The state may only move as
// State.CanTransition allows.
func (s *Store) Update(p *Pod) error {
	w, err := s.lockWriter(p.ID)
	if err != nil {
		return err
	}
	defer w.Unlock()
	s.mu.RLock()
	old, ok := s.pods[p.ID]
	s.mu.RUnlock()
	if !ok {
		return notFoundf("pod %s", p.ID)
	}
	if !old.State.CanTransition(p.State) {
		return fmt.Errorf("pod %s: state %s cannot become %s", p.ID, old.State, p.State)
	}
	if err := s.write(p, statefile.UpdateJSON); err != nil {
		return err
	}
	s.mu.Lock()
	s.pods[p.ID] = clonePod(p)
	s.mu.Unlock()
	return nil
}

// lockWriter takes a stored pod's write lock; NotFound for a pod that is
// not stored. A pod still being created is waited for (its Create holds
// the lock).
func (s *Store) lockWriter(id string) (*sync.Mutex, error) {
	s.mu.RLock()
	w, ok := s.writers[id]
	s.mu.RUnlock()
	if !ok {
		return nil, notFoundf("pod %s", id)
	}
	w.Lock()
	s.mu.RLock()
	_, ok = s.pods[id]
	ok = ok && s.writers[id] == w
	s.mu.RUnlock()
	if !ok { // created and failed, or deleted (and maybe made again), while we waited
		w.Unlock()
		return nil, notFoundf("pod %s", id)
	}
	return w, nil
}

func checkID(id string) error {
	if id == "" || strings.ContainsAny(id, "/\x00") || id == "." || id == ".." {
		return invalidf("pod id %q", id)
	}
	return nil
}

// write writes p's record with w. Preconditions: p's writer lock is held,
// s.mu is not.
func (s *Store) write(p *Pod, w func(path string, v any) error) error {
	r := toRecord(p)
	if err := w(s.path(p.ID), &r); err != nil {
		return fmt.Errorf("store pod %s: %w", p.ID, err)
	}
	return nil
}

// Get returns the pod whose id is id, or the one pod whose id starts with
// it. None is NotFound; several are InvalidArgument.
func (s *Store) Get(id string) (*Pod, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if p, ok := s.pods[id]; ok {
		return clonePod(p), nil
	}
	var found *Pod
	if id != "" {
		for pid, p := range s.pods {
			if !strings.HasPrefix(pid, id) {
				continue
			}
			if found != nil {
				return nil, invalidf("pod id prefix %q is ambiguous", id)
			}
			found = p
		}
	}
	if found == nil {
		return nil, notFoundf("pod %s", id)
	}
	return clonePod(found), nil
}

// Filter selects pods for List; zero fields select all.
type Filter struct {
	// IDPrefix selects pods whose id starts with it.
	IDPrefix string
	// States selects pods in any of these states.
	States []State
	// Labels selects pods that carry every one of these labels.
	Labels map[string]string
}

func (f *Filter) match(p *Pod) bool {
	if !strings.HasPrefix(p.ID, f.IDPrefix) {
		return false
	}
	if len(f.States) > 0 && !slices.Contains(f.States, p.State) {
		return false
	}
	for k, v := range f.Labels {
		if got, ok := p.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// List returns copies of the pods f selects, oldest first.
func (s *Store) List(f Filter) []*Pod {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*Pod
	for _, p := range s.pods {
		if f.match(p) {
			out = append(out, clonePod(p))
		}
	}
	slices.SortFunc(out, func(a, b *Pod) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Delete removes a pod's record. A pod that is not there is not an error.
func (s *Store) Delete(id string) error {
	w, err := s.lockWriter(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer w.Unlock()
	if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete pod %s: %w", id, err)
	}
	if err := statefile.SyncDir(s.dir); err != nil {
		return fmt.Errorf("delete pod %s: %w", id, err)
	}
	s.mu.Lock()
	delete(s.pods, id)
	delete(s.writers, id)
	s.mu.Unlock()
	return nil
}

// clonePod copies p deeply enough that callers cannot change the store's
// copy through maps or slices.
func clonePod(p *Pod) *Pod {
	c := *p
	c.Labels = maps.Clone(p.Labels)
	c.Annotations = maps.Clone(p.Annotations)
	c.Sysctls = maps.Clone(p.Sysctls)
	c.IPs = slices.Clone(p.IPs)
	c.PortMappings = slices.Clone(p.PortMappings)
	c.UserMaps = nsfs.UserMaps{UIDs: slices.Clone(p.UserMaps.UIDs), GIDs: slices.Clone(p.UserMaps.GIDs)}
	if p.Bandwidth != nil {
		b := *p.Bandwidth
		c.Bandwidth = &b
	}
	return &c
}
