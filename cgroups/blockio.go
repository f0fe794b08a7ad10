package cgroups

import (
	"fmt"
	"strconv"
)

// BlockIO is the io controller's part of Resources (v1: blkio). Weights
// are proportional shares that only some I/O schedulers (BFQ, and v2's
// iocost) implement; throttles are hard limits per device.
type BlockIO struct {
	// Weight is the cgroup's default weight, 10..1000 (blkio.weight,
	// io.bfq.weight; io.weight takes it scaled to 1..10000); 0 leaves it.
	Weight uint16
	// WeightDevices are per-device weights in the same unit.
	WeightDevices []DeviceWeight
	// Throttles are per-device limits (io.max; v1 the
	// blkio.throttle.*_device files).
	Throttles []DeviceThrottle
}

// DeviceWeight is a weight for one block device.
type DeviceWeight struct {
	Major, Minor int64
	Weight       uint16
}

// DeviceThrottle limits one block device. A nil field leaves that limit
// as it is; 0 removes it (v1's meaning of 0, written "max" on v2, whose
// io.max refuses 0).
type DeviceThrottle struct {
	Major, Minor                           int64
	ReadBps, WriteBps, ReadIOPS, WriteIOPS *uint64
}

// Dev is the device as interface files name it, "major:minor".
func (t DeviceThrottle) Dev() string { return devString(t.Major, t.Minor) }

// Dev is the device as interface files name it, "major:minor".
func (w DeviceWeight) Dev() string { return devString(w.Major, w.Minor) }

func devString(major, minor int64) string {
	return strconv.FormatInt(major, 10) + ":" + strconv.FormatInt(minor, 10)
}

// Weight bounds of blkio.weight and io.bfq.weight (block/bfq-cgroup.c:
// BFQ_MIN_WEIGHT, BFQ_MAX_WEIGHT).
const (
	MinBlkioWeight = 10
	MaxBlkioWeight = 1000
)

// HasWeights says whether b sets a weight of any kind.
func (b *BlockIO) HasWeights() bool { return b != nil && (b.Weight != 0 || len(b.WeightDevices) > 0) }

func (b *BlockIO) validate() error {
	if b == nil {
		return nil
	}
	if b.Weight != 0 && (b.Weight < MinBlkioWeight || b.Weight > MaxBlkioWeight) {
		return Invalidf("block I/O weight %d: want %d..%d", b.Weight, MinBlkioWeight, MaxBlkioWeight)
	}
	for _, w := range b.WeightDevices {
		if w.Major < 0 || w.Minor < 0 {
			return Invalidf("block I/O weight for device %s: not a device number", w.Dev())
		}
		if w.Weight < MinBlkioWeight || w.Weight > MaxBlkioWeight {
			return Invalidf("block I/O weight %d for device %s: want %d..%d", w.Weight, w.Dev(), MinBlkioWeight, MaxBlkioWeight)
		}
	}
	for _, t := range b.Throttles {
		if t.Major < 0 || t.Minor < 0 {
			return Invalidf("block I/O throttle for device %s: not a device number", t.Dev())
		}
	}
	return nil
}

// WeightFiles lists b's weights as files and values for a Skipped, in v1
// names: "blkio.weight=80", "blkio.weight_device=254:0 50".
func (b *BlockIO) WeightFiles(prefix string) []string {
	var out []string
	if b.Weight != 0 {
		out = append(out, fmt.Sprintf("%s.weight=%d", prefix, b.Weight))
	}
	for _, w := range b.WeightDevices {
		out = append(out, fmt.Sprintf("%s.weight_device=%s %d", prefix, w.Dev(), w.Weight))
	}
	return out
}

// WeightsSkipped is the Skipped for weights a cgroup has no file for. A
// host whose disks use the none, mq-deadline or kyber scheduler has no
// weight files at all (weights are BFQ's, or v2 iocost's): there a class's
// weight cannot mean anything, while its throttles still apply, so the
// weights are left out with a warning, as hugetlb limits are where the
// controller is missing. prefix is the controller's file prefix ("blkio",
// "io").
func WeightsSkipped(cgroup string, b *BlockIO, prefix string) Skipped {
	return Skipped{Controller: prefix + " weight", Cgroup: cgroup, Files: b.WeightFiles(prefix),
		Reason: "the cgroup has no " + prefix + ".weight or " + prefix + ".bfq.weight file: no block device uses an I/O scheduler with weights (BFQ" +
			map[string]string{"io": ", or iocost"}[prefix] + ")"}
}
