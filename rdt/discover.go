package rdt

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/crib-runtime/crib/internal/mountinfo"
)

// Mount is the resctrl mount found in mountinfo.
type Mount struct {
	// Path is the mount point, usually /sys/fs/resctrl.
	Path string `json:"path"`
	// CDP is the "cdp" mount option: L3 code and data are allocated
	// separately (L3CODE and L3DATA schemata lines).
	CDP bool `json:"cdp,omitempty"`
	// CDPL2 is the "cdpl2" mount option, the same for L2.
	CDPL2 bool `json:"cdpl2,omitempty"`
	// MBAMBps is the "mba_MBps" mount option: MB values are MBps, not
	// percentages.
	MBAMBps bool `json:"mbaMBps,omitempty"`
}

// CacheInfo is one cache allocation resource under info/ (L3, L3CODE,
// L3DATA, L2, L2CODE or L2DATA).
type CacheInfo struct {
	Name string `json:"name"`
	// CBMMask is the full capacity bitmask (info/<name>/cbm_mask).
	CBMMask uint64 `json:"cbmMask"`
	// MinCBMBits is the fewest consecutive bits a mask may set.
	MinCBMBits int `json:"minCbmBits"`
	// NumCLOSIDs bounds the number of control groups, the root included.
	NumCLOSIDs int `json:"numClosids"`
	// ShareableBits are bits other agents (GPU, I/O) may also use.
	ShareableBits uint64 `json:"shareableBits"`
	// SparseMasks is set where the CPU accepts non-contiguous masks
	// (info/<name>/sparse_masks, AMD).
	SparseMasks bool `json:"sparseMasks,omitempty"`
	// Domains are the cache ids, from the root group's schemata.
	Domains []int `json:"domains"`
}

// MBInfo is memory bandwidth allocation (info/MB).
type MBInfo struct {
	BandwidthGran int  `json:"bandwidthGran"`
	MinBandwidth  int  `json:"minBandwidth"`
	DelayLinear   bool `json:"delayLinear"`
	NumCLOSIDs    int  `json:"numClosids"`
	// MBps: values are MBps (mount option mba_MBps), else percentages.
	MBps    bool  `json:"mbps,omitempty"`
	Domains []int `json:"domains"`
}

// MonInfo is L3 monitoring (info/L3_MON).
type MonInfo struct {
	NumRMIDs int `json:"numRmids"`
	// Features are the mon_data files, e.g. llc_occupancy, mbm_total_bytes.
	Features []string `json:"features"`
}

// Info is what discovery found and what the controller configured, for the
// daemon's Status verbose info and its start-up log.
type Info struct {
	Available bool `json:"available"`
	// Reason says why RDT is not available.
	Reason string      `json:"reason,omitempty"`
	Mount  *Mount      `json:"mount,omitempty"`
	Caches []CacheInfo `json:"caches,omitempty"`
	MB     *MBInfo     `json:"mb,omitempty"`
	Mon    *MonInfo    `json:"mon,omitempty"`
	// Classes are the configured classes, RootClass included.
	Classes      []string `json:"classes,omitempty"`
	ConfigFile   string   `json:"configFile,omitempty"`
	DefaultClass string   `json:"defaultClass,omitempty"`
}

// cache returns the cache resource called name, or nil.
func (in *Info) cache(name string) *CacheInfo {
	for i := range in.Caches {
		if in.Caches[i].Name == name {
			return &in.Caches[i]
		}
	}
	return nil
}

// numCLOSIDs is the number of control groups the host allows: the smallest
// num_closids over the allocation resources, as the kernel uses it. 0 when
// nothing can be allocated.
func (in *Info) numCLOSIDs() int {
	n := 0
	for _, c := range in.Caches {
		if n == 0 || c.NumCLOSIDs < n {
			n = c.NumCLOSIDs
		}
	}
	if in.MB != nil && (n == 0 || in.MB.NumCLOSIDs < n) {
		n = in.MB.NumCLOSIDs
	}
	return n
}

// FindMount reads a mountinfo file (normally /proc/self/mountinfo) and
// returns the resctrl mount, or nil when resctrl is not mounted.
func FindMount(mountinfoPath string) (*Mount, error) {
	f, err := os.Open(mountinfoPath)
	if err != nil {
		return nil, fmt.Errorf("find resctrl mount: %w", err)
	}
	defer f.Close()
	m, err := ParseMountinfo(f)
	if err != nil {
		return nil, fmt.Errorf("find resctrl mount in %s: %w", mountinfoPath, err)
	}
	return m, nil
}

// ParseMountinfo returns the resctrl mount among proc(5) mountinfo lines,
// nil when there is none:
//
//	45 22 0:40 / /sys/fs/resctrl rw,relatime shared:25 - resctrl resctrl rw,cdp,mba_MBps
//
// resctrl's own options (cdp, cdpl2, mba_MBps) are super options, after the
// filesystem type.
func ParseMountinfo(r io.Reader) (*Mount, error) {
	var found *Mount
	err := mountinfo.Scan(r, []string{"resctrl"}, func(m mountinfo.Mount) bool {
		found = &Mount{Path: m.Mountpoint}
		for opt := range strings.SplitSeq(m.SuperOptions, ",") {
			switch opt {
			case "cdp":
				found.CDP = true
			case "cdpl2":
				found.CDPL2 = true
			case "mba_MBps":
				found.MBAMBps = true
			}
		}
		return false
	})
	if errors.Is(err, mountinfo.ErrMalformed) {
		return nil, invalidf("%s", err.Error())
	}
	if err != nil {
		return nil, err
	}
	return found, nil
}

// cacheResources are the cache allocation directories under info/, in the
// order their lines appear in schemata.
var cacheResources = []string{"L3", "L3CODE", "L3DATA", "L2", "L2CODE", "L2DATA"}

// discover reads info/ and the root schemata of a mounted resctrl.
func discover(f fsys, m *Mount) (*Info, error) {
	in := &Info{Available: true, Mount: m}
	root, err := f.ReadFile("schemata")
	if err != nil {
		return nil, fmt.Errorf("read root schemata: %w", err)
	}
	lines, err := parseSchemata(string(root))
	if err != nil {
		return nil, fmt.Errorf("parse root schemata: %w", err)
	}
	domains := map[string][]int{}
	for _, l := range lines {
		for _, d := range l.Domains {
			domains[l.Resource] = append(domains[l.Resource], d.ID)
		}
	}
	for _, name := range cacheResources {
		c, err := readCacheInfo(f, name)
		if err != nil {
			return nil, err
		}
		if c != nil {
			c.Domains = domains[name]
			in.Caches = append(in.Caches, *c)
		}
	}
	if in.MB, err = readMBInfo(f); err != nil {
		return nil, err
	}
	if in.MB != nil {
		in.MB.MBps = m.MBAMBps
		in.MB.Domains = domains["MB"]
	}
	if in.Mon, err = readMonInfo(f); err != nil {
		return nil, err
	}
	return in, nil
}

// infoReader reads the small files of one info/ directory, keeping the
// first error so a caller checks once.
type infoReader struct {
	f   fsys
	dir string
	err error
}

func (r *infoReader) str(name string) string {
	if r.err != nil {
		return ""
	}
	b, err := r.f.ReadFile(r.dir + "/" + name)
	if err != nil {
		r.err = fmt.Errorf("read %s/%s: %w", r.dir, name, err)
	}
	return strings.TrimSpace(string(b))
}

// optional reads a file that older kernels do not have.
func (r *infoReader) optional(name string) string {
	b, err := r.f.ReadFile(r.dir + "/" + name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (r *infoReader) num(name string, base int) uint64 {
	s := r.str(name)
	if r.err != nil {
		return 0
	}
	v, err := strconv.ParseUint(s, base, 64)
	if err != nil {
		r.err = fmt.Errorf("parse %s/%s %q: %w", r.dir, name, s, err)
	}
	return v
}

func dirExists(f fsys, name string) (bool, error) {
	_, err := f.ReadDir(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func readCacheInfo(f fsys, name string) (*CacheInfo, error) {
	dir := "info/" + name
	if ok, err := dirExists(f, dir); !ok {
		return nil, err
	}
	r := &infoReader{f: f, dir: dir}
	c := &CacheInfo{
		Name:          name,
		CBMMask:       r.num("cbm_mask", 16),
		MinCBMBits:    int(r.num("min_cbm_bits", 10)),
		NumCLOSIDs:    int(r.num("num_closids", 10)),
		ShareableBits: r.num("shareable_bits", 16),
		SparseMasks:   r.optional("sparse_masks") == "1",
	}
	if r.err != nil {
		return nil, r.err
	}
	if c.CBMMask == 0 || !contiguous(c.CBMMask) || c.CBMMask&1 == 0 {
		return nil, invalidf("%s/cbm_mask %x is not a contiguous mask from bit 0", dir, c.CBMMask)
	}
	return c, nil
}

func readMBInfo(f fsys) (*MBInfo, error) {
	if ok, err := dirExists(f, "info/MB"); !ok {
		return nil, err
	}
	r := &infoReader{f: f, dir: "info/MB"}
	mb := &MBInfo{
		BandwidthGran: int(r.num("bandwidth_gran", 10)),
		MinBandwidth:  int(r.num("min_bandwidth", 10)),
		DelayLinear:   r.str("delay_linear") == "1",
		NumCLOSIDs:    int(r.num("num_closids", 10)),
	}
	if r.err != nil {
		return nil, r.err
	}
	if mb.BandwidthGran < 1 {
		mb.BandwidthGran = 1
	}
	return mb, nil
}

func readMonInfo(f fsys) (*MonInfo, error) {
	if ok, err := dirExists(f, "info/L3_MON"); !ok {
		return nil, err
	}
	r := &infoReader{f: f, dir: "info/L3_MON"}
	mon := &MonInfo{NumRMIDs: int(r.num("num_rmids", 10))}
	feats := r.str("mon_features")
	if r.err != nil {
		return nil, r.err
	}
	mon.Features = strings.Fields(feats)
	slices.Sort(mon.Features)
	return mon, nil
}
