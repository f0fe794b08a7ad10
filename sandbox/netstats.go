package sandbox

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/crib-runtime/crib/sandbox/nsfs"
)

// InterfaceStats are one network interface's counters.
type InterfaceStats struct {
	Name                                 string
	RxBytes, RxErrors, TxBytes, TxErrors uint64
	// Packets and drops, which the metrics report beside the CRI stats.
	RxPackets, RxDropped, TxPackets, TxDropped uint64
}

// NetworkStats reads the interface counters of a pod's network namespace
// (/proc/net/dev as a thread inside it sees it), loopback left out.
func NetworkStats(netns string) ([]InterfaceStats, error) {
	var data []byte
	err := nsfs.Do(netns, nsfs.Net, func() (err error) {
		// thread-self: /proc/self/net would show the namespace of the
		// process's main thread, not of this one.
		data, err = os.ReadFile("/proc/thread-self/net/dev")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("network stats of %s: %w", netns, err)
	}
	return parseNetDev(data)
}

// parseNetDev reads /proc/net/dev: two header lines, then
// "iface: rx_bytes rx_packets rx_errs … (8 rx fields) tx_bytes tx_packets tx_errs …".
func parseNetDev(data []byte) ([]InterfaceStats, error) {
	var out []InterfaceStats
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 0; sc.Scan(); line++ {
		if line < 2 {
			continue
		}
		name, rest, ok := strings.Cut(sc.Text(), ":")
		f := strings.Fields(rest)
		if !ok || len(f) < 12 {
			return nil, fmt.Errorf("parse /proc/net/dev line %q", sc.Text())
		}
		name = strings.TrimSpace(name)
		if name == "lo" {
			continue
		}
		var v [8]uint64
		for i, idx := range []int{0, 1, 2, 3, 8, 9, 10, 11} {
			n, err := strconv.ParseUint(f[idx], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("parse /proc/net/dev line %q: %w", sc.Text(), err)
			}
			v[i] = n
		}
		out = append(out, InterfaceStats{Name: name, RxBytes: v[0], RxPackets: v[1], RxErrors: v[2], RxDropped: v[3],
			TxBytes: v[4], TxPackets: v[5], TxErrors: v[6], TxDropped: v[7]})
	}
	return out, sc.Err()
}
