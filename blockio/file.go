package blockio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"sigs.k8s.io/yaml"
)

// The class file has goresctrl's blockio format (goresctrl
// pkg/blockio/blockio.go), so a file written for containerd or CRI-O works
// unchanged:
//
//	Classes:
//	  LowPrioThrottled:
//	  - Weight: 80                # default weight, no Devices
//	  - Devices: ["/dev/vd[a-z]"] # globs; symlinks followed
//	    ThrottleReadBps: 50M
//	    ThrottleWriteBps: 10M
//	    ThrottleReadIOPS: 10k
//	    ThrottleWriteIOPS: 5k
//	    Weight: 50                # per-device weight
//	  HighPrioFullSpeed:
//	  - Weight: 400
//
// Entries of a class apply in order, a later one overriding an earlier one
// for the devices both name. Values are Kubernetes quantities ("50M",
// "1Mi", "10k", plain integers). Unlike goresctrl, which logs and goes on,
// everything that would be dropped is an error naming it: an unknown
// field, a bad number, a weight outside 10..1000, throttles without
// devices, a glob that matches nothing, a path that is not a block device
// or is a partition (the kernel throttles whole disks only).

// classFile is the decoded file.
type classFile struct {
	Classes map[string][]deviceParams `json:"Classes"`
}

// deviceParams is one entry of a class.
type deviceParams struct {
	Devices           []string `json:"Devices"`
	Weight            quantity `json:"Weight"`
	ThrottleReadBps   quantity `json:"ThrottleReadBps"`
	ThrottleWriteBps  quantity `json:"ThrottleWriteBps"`
	ThrottleReadIOPS  quantity `json:"ThrottleReadIOPS"`
	ThrottleWriteIOPS quantity `json:"ThrottleWriteIOPS"`
}

// quantity is a value as written: a YAML string ("50M") or number (80),
// "" when absent. goresctrl reads strings, but YAML makes `Weight: 80` a
// number, so both are taken.
type quantity string

func (q *quantity) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*q = quantity(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("want a number or a quantity such as \"50M\", got %s", b)
	}
	*q = quantity(n.String())
	return nil
}

// Weight bounds: blkio.weight and io.bfq.weight take 10..1000 (OCI's
// linux.resources.blockIO.weight is in these units too).
const (
	minWeight = 10
	maxWeight = 1000
)

var (
	quantityRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^\+?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|[eE][0-9]+)?$`)
	})
	binarySuffix  = map[string]int64{"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60}
	decimalSuffix = map[string]int{"k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
)

// parse reads q as a Kubernetes quantity (the subset a rate or weight
// uses: no negative values, no milli units) into a whole number; absent
// is ok false. A fraction that does not come out whole is an error, not
// rounded: "1.5" bytes per second cannot be meant.
func (q quantity) parse(field string) (v uint64, ok bool, err error) {
	s := strings.TrimSpace(string(q))
	if s == "" {
		return 0, false, nil
	}
	m := quantityRE().FindStringSubmatch(s)
	if m == nil {
		return 0, false, fmt.Errorf("%s %q: not a quantity (examples: 100, 50M, 1Mi, 10k)", field, s)
	}
	r, okr := new(big.Rat).SetString(m[1])
	if !okr {
		return 0, false, fmt.Errorf("%s %q: not a quantity", field, s)
	}
	switch suf := m[2]; {
	case suf == "":
	case binarySuffix[suf] != 0:
		r.Mul(r, new(big.Rat).SetInt64(binarySuffix[suf]))
	default:
		exp := decimalSuffix[suf]
		if suf[0] == 'e' || suf[0] == 'E' {
			if _, err := fmt.Sscanf(suf[1:], "%d", &exp); err != nil || exp > 18 {
				return 0, false, fmt.Errorf("%s %q: exponent out of range", field, s)
			}
		}
		r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(exp)), nil)))
	}
	if !r.IsInt() || !r.Num().IsUint64() {
		return 0, false, fmt.Errorf("%s %q: not a whole number below 2^64", field, s)
	}
	return r.Num().Uint64(), true, nil
}

// readFile decodes the class file at path strictly.
func readFile(path string) (*classFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read block I/O class file: %w", err)
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, invalidf("block I/O class file %s: %v", path, err)
	}
	var f classFile
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, invalidf("block I/O class file %s: %v", path, err)
	}
	return &f, nil
}

// classNameRE: a class name travels in annotations and logs; goresctrl
// sets no rule, so crib takes what a Kubernetes label value may hold.
var classNameRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)
})

// compile turns the decoded file into the OCI settings of each class,
// resolving devices on h. Every problem is reported, class by class.
func compile(f *classFile, h host) (map[string]*class, error) {
	out := map[string]*class{}
	var errs []string
	for _, name := range sortedKeys(f.Classes) {
		if !classNameRE().MatchString(name) {
			errs = append(errs, fmt.Sprintf("class %q: a name is 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", name))
			continue
		}
		c, err := compileClass(f.Classes[name], h)
		if err != nil {
			errs = append(errs, fmt.Sprintf("class %s: %v", name, err))
			continue
		}
		out[name] = c
	}
	if len(errs) > 0 {
		return nil, invalidf("%s", strings.Join(errs, "; "))
	}
	return out, nil
}

func compileClass(entries []deviceParams, h host) (*class, error) {
	c := &class{devices: map[devNum]*deviceSettings{}}
	var errs []string
	for i, e := range entries {
		if err := c.add(e, h); err != nil {
			errs = append(errs, fmt.Sprintf("entry %d: %v", i, err))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return c, nil
}

// add merges one entry into c.
func (c *class) add(e deviceParams, h host) error {
	var vals [5]*uint64
	var errs []string
	for i, q := range []struct {
		name string
		v    quantity
	}{{"Weight", e.Weight}, {"ThrottleReadBps", e.ThrottleReadBps}, {"ThrottleWriteBps", e.ThrottleWriteBps},
		{"ThrottleReadIOPS", e.ThrottleReadIOPS}, {"ThrottleWriteIOPS", e.ThrottleWriteIOPS}} {
		v, ok, err := q.v.parse(q.name)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if ok {
			vals[i] = &v
		}
	}
	if w := vals[0]; w != nil && (*w < minWeight || *w > maxWeight) {
		errs = append(errs, fmt.Sprintf("Weight %d: want %d..%d", *w, minWeight, maxWeight))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	if vals == [5]*uint64{} {
		return fmt.Errorf("sets nothing: want Weight or a Throttle* value")
	}
	if len(e.Devices) == 0 {
		if slices.ContainsFunc(vals[1:], func(v *uint64) bool { return v != nil }) {
			return fmt.Errorf("Throttle* values need Devices: the kernel throttles per device")
		}
		w := uint16(*vals[0])
		c.weight = &w
		return nil
	}
	devs, err := h.resolve(e.Devices)
	if err != nil {
		return err
	}
	for _, d := range devs {
		s := c.devices[d]
		if s == nil {
			s = &deviceSettings{}
			c.devices[d] = s
		}
		s.merge(vals)
	}
	return nil
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}
