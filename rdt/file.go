package rdt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// The class configuration file has goresctrl's format (goresctrl
// doc/rdt.md), so a file written for containerd or CRI-O works unchanged:
//
//	options:
//	  l3: {optional: true}
//	partitions:
//	  exclusive:
//	    l3Allocation: "60%"
//	    mbAllocation: ["100%"]
//	    classes:
//	      guaranteed:
//	        l3Allocation: "100%"
//	  shared:
//	    l3Allocation: {all: "40%", "2-3": {code: "20%", data: "30%"}}
//	    classes:
//	      besteffort: {l3Allocation: "50%", mbAllocation: ["50%", "1000MBps"]}
//
// Decoding is strict: an unknown field anywhere is an error naming it.

// classFile is the decoded file.
type classFile struct {
	Options    fileOptions               `json:"options"`
	Partitions map[string]*filePartition `json:"partitions"`
}

type fileOptions struct {
	L2 resourceOptions `json:"l2"`
	L3 resourceOptions `json:"l3"`
	MB resourceOptions `json:"mb"`
}

// resourceOptions.Optional, as in goresctrl: when false (the default) a
// file that allocates a resource the host lacks is rejected; when true that
// part of the file is ignored.
type resourceOptions struct {
	Optional bool `json:"optional"`
}

type filePartition struct {
	L2Allocation catConfig             `json:"l2Allocation"`
	L3Allocation catConfig             `json:"l3Allocation"`
	MBAllocation mbConfig              `json:"mbAllocation"`
	Classes      map[string]*fileClass `json:"classes"`
}

type fileClass struct {
	L2Allocation catConfig         `json:"l2Allocation"`
	L3Allocation catConfig         `json:"l3Allocation"`
	MBAllocation mbConfig          `json:"mbAllocation"`
	Kubernetes   kubernetesOptions `json:"kubernetes"`
}

// kubernetesOptions forbid picking a class through one kind of annotation.
type kubernetesOptions struct {
	DenyPodAnnotation       bool `json:"denyPodAnnotation"`
	DenyContainerAnnotation bool `json:"denyContainerAnnotation"`
}

// catConfig is a cache allocation: per cache-id set ("0,2", "4-7"), with
// "all" for the ids not named. nil means not configured.
type catConfig map[string]catIDConfig

// catIDConfig is the allocation for one set of cache ids. Code and Data
// apply when CDP is on and come together; Unified otherwise (and as their
// fallback).
type catIDConfig struct {
	Unified *proportion
	Code    *proportion
	Data    *proportion
}

// mbConfig is a memory bandwidth allocation per cache-id set.
type mbConfig map[string]mbValue

// mbValue holds the percentage and the MBps value of an allocation; which
// one applies depends on the mba_MBps mount option.
type mbValue struct {
	Pct     int
	HasPct  bool
	MBps    uint64
	HasMBps bool
}

// decodeStrict decodes a JSON object into v, rejecting unknown fields.
func decodeStrict(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// UnmarshalJSON accepts the short form "60%" (= {all: {unified: "60%"}})
// and the long form {ids: "60%" | {unified, code, data}}.
func (c *catConfig) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		*c = nil
		return nil
	}
	var short string
	if json.Unmarshal(data, &short) == nil {
		p, err := parseProportion(short)
		if err != nil {
			return err
		}
		*c = catConfig{"all": {Unified: &p}}
		return nil
	}
	var long map[string]json.RawMessage
	if err := json.Unmarshal(data, &long); err != nil {
		return fmt.Errorf("cache allocation must be a string or a map of cache ids: %s", data)
	}
	out := catConfig{}
	for ids, raw := range long {
		v, err := parseCatIDConfig(raw)
		if err != nil {
			return fmt.Errorf("cache ids %q: %w", ids, err)
		}
		out[ids] = v
	}
	*c = out
	return nil
}

func parseCatIDConfig(raw json.RawMessage) (catIDConfig, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		p, err := parseProportion(s)
		return catIDConfig{Unified: &p}, err
	}
	var obj struct {
		Unified *string `json:"unified"`
		Code    *string `json:"code"`
		Data    *string `json:"data"`
	}
	if err := decodeStrict(raw, &obj); err != nil {
		return catIDConfig{}, err
	}
	var out catIDConfig
	for _, f := range []struct {
		in  *string
		out **proportion
	}{{obj.Unified, &out.Unified}, {obj.Code, &out.Code}, {obj.Data, &out.Data}} {
		if f.in == nil {
			continue
		}
		p, err := parseProportion(*f.in)
		if err != nil {
			return catIDConfig{}, err
		}
		*f.out = &p
	}
	if (out.Code == nil) != (out.Data == nil) {
		return catIDConfig{}, fmt.Errorf("code and data must be given together")
	}
	if out.Unified == nil && out.Code == nil {
		return catIDConfig{}, fmt.Errorf("no unified, code or data allocation")
	}
	return out, nil
}

// UnmarshalJSON accepts the short form ["50%", "1000MBps"] (= {all: …})
// and the long form {ids: [...]}.
func (c *mbConfig) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		*c = nil
		return nil
	}
	var short []string
	if json.Unmarshal(data, &short) == nil {
		v, err := parseMBValue(short)
		if err != nil {
			return err
		}
		*c = mbConfig{"all": v}
		return nil
	}
	var long map[string][]string
	if err := json.Unmarshal(data, &long); err != nil {
		return fmt.Errorf("memory bandwidth allocation must be a list or a map of cache ids to lists: %s", data)
	}
	out := mbConfig{}
	for ids, vals := range long {
		v, err := parseMBValue(vals)
		if err != nil {
			return fmt.Errorf("cache ids %q: %w", ids, err)
		}
		out[ids] = v
	}
	*c = out
	return nil
}

func parseMBValue(vals []string) (mbValue, error) {
	var v mbValue
	if len(vals) == 0 {
		return v, fmt.Errorf("empty memory bandwidth allocation")
	}
	for _, s := range vals {
		s = strings.TrimSpace(s)
		switch {
		case strings.HasSuffix(s, "%") && !v.HasPct:
			p, err := parsePct(strings.TrimSuffix(s, "%"))
			if err != nil || p == 0 {
				return v, fmt.Errorf("memory bandwidth %q is not a percentage from 1 to 100", s)
			}
			v.Pct, v.HasPct = p, true
		case strings.HasSuffix(s, "MBps") && !v.HasMBps:
			n, err := strconv.ParseUint(strings.TrimSuffix(s, "MBps"), 10, 32)
			if err != nil || n == 0 {
				return v, fmt.Errorf("memory bandwidth %q is not a positive 32-bit MBps value", s)
			}
			v.MBps, v.HasMBps = n, true
		default:
			return v, fmt.Errorf("memory bandwidth %q: want one \"N%%\" and/or one \"NMBps\"", s)
		}
	}
	return v, nil
}

// loadClassFile reads and decodes the class configuration file.
func loadClassFile(path string) (*classFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rdt config %s: %w", path, err)
	}
	f, err := parseClassFile(data)
	if err != nil {
		return nil, fmt.Errorf("rdt config %s: %w", path, err)
	}
	return f, nil
}

// parseClassFile decodes a class file and checks what can be checked
// without the hardware: names, uniqueness, cache-id sets.
func parseClassFile(data []byte) (*classFile, error) {
	var f classFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, invalidf("%s", strings.TrimPrefix(err.Error(), "error unmarshaling JSON: while decoding JSON: "))
	}
	owner := map[string]string{} // class → partition
	for _, pname := range slices.Sorted(maps.Keys(f.Partitions)) {
		p := f.Partitions[pname]
		if pname == "" {
			return nil, invalidf("partition with an empty name")
		}
		if p == nil {
			return nil, invalidf("partition %s is empty", pname)
		}
		if err := checkAllocIDs(p.L2Allocation, p.L3Allocation, p.MBAllocation); err != nil {
			return nil, invalidf("partition %s: %s", pname, err)
		}
		for _, cname := range slices.Sorted(maps.Keys(p.Classes)) {
			name := canonicalClass(cname)
			if err := ValidateClassName(name); err != nil {
				return nil, fmt.Errorf("partition %s: %w", pname, err)
			}
			if other, dup := owner[name]; dup {
				return nil, invalidf("class %s is in partitions %s and %s", name, other, pname)
			}
			owner[name] = pname
			if c := p.Classes[cname]; c != nil {
				if err := checkAllocIDs(c.L2Allocation, c.L3Allocation, c.MBAllocation); err != nil {
					return nil, invalidf("class %s: %s", name, err)
				}
			}
		}
	}
	return &f, nil
}

// checkAllocIDs checks the cache-id keys of a partition's or class's
// allocations.
func checkAllocIDs(l2, l3 catConfig, mb mbConfig) error {
	for _, keys := range [][]string{slices.Collect(maps.Keys(l2)), slices.Collect(maps.Keys(l3)), slices.Collect(maps.Keys(mb))} {
		if err := checkIDSets(keys); err != nil {
			return err
		}
	}
	return nil
}

// checkIDSets checks that cache-id keys parse and do not overlap.
func checkIDSets(keys []string) error {
	seen := map[int]string{}
	for _, key := range keys {
		if key == "all" {
			continue
		}
		ids, err := parseIDList(key, maxDomainID)
		if err != nil {
			return fmt.Errorf("cache ids %q: %w", key, err)
		}
		for _, id := range ids {
			if other, dup := seen[id]; dup {
				return fmt.Errorf("cache id %d is in both %q and %q", id, other, key)
			}
			seen[id] = key
		}
	}
	return nil
}
