package cgroups

import (
	"maps"
	"slices"
	"strconv"
	"sync"
)

// Skipped is a part of Resources a Manager left unapplied because the host
// has no controller for it. The kubelet sends hugetlb limits (0 for every
// page size in /sys/kernel/mm/hugepages) on every container, also on hosts
// whose cgroups lack the hugetlb controller; containerd and CRI-O drop them
// there with a warning instead of refusing every container, and so does crib.
type Skipped struct {
	// Controller is the missing controller ("hugetlb").
	Controller string
	// Cgroup is the cgroup whose Create or Update skipped it.
	Cgroup string
	// Files are the interface files and values asked for, as
	// "hugetlb.2MB.max=0".
	Files []string
	// Reason says why the host cannot apply them.
	Reason string
}

// SkipNotifier passes a Skipped to its callback once per controller, so that
// a caller that logs it warns once per process, not once per container.
// The zero value and nil drop every notice.
type SkipNotifier struct {
	fn func(Skipped)
	// mu guards seen.
	mu   sync.Mutex
	seen map[string]bool
}

// NewSkipNotifier returns a notifier calling fn (nil: none).
func NewSkipNotifier(fn func(Skipped)) *SkipNotifier {
	return &SkipNotifier{fn: fn, seen: map[string]bool{}}
}

// Notify reports s unless its controller was reported before.
func (n *SkipNotifier) Notify(s Skipped) {
	if n == nil || n.fn == nil {
		return
	}
	n.mu.Lock()
	first := !n.seen[s.Controller]
	n.seen[s.Controller] = true
	n.mu.Unlock()
	if first {
		n.fn(s)
	}
}

// WithoutHugetlb returns r without its hugetlb limits and, when it had
// some, the Skipped that says so (reason: why the host lacks the
// controller). r itself is not changed.
func WithoutHugetlb(cgroup string, r *Resources, reason string) (*Resources, *Skipped) {
	if r == nil || len(r.HugetlbMaxBytes) == 0 {
		return r, nil
	}
	s := &Skipped{Controller: "hugetlb", Cgroup: cgroup, Reason: reason}
	for _, size := range slices.Sorted(maps.Keys(r.HugetlbMaxBytes)) {
		v := "max"
		if l := r.HugetlbMaxBytes[size]; l != Max {
			v = strconv.FormatInt(l, 10)
		}
		s.Files = append(s.Files, "hugetlb."+size+".max="+v)
	}
	out := *r
	out.HugetlbMaxBytes = nil
	return &out, s
}
