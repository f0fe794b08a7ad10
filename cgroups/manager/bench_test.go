package manager_test

import (
	"strconv"
	"testing"
)

// BenchmarkStats100 is one full stats collection of 100 container cgroups
// on the real host, what ContainerStats for a busy node costs each second.
func BenchmarkStats100(b *testing.B) {
	m := openHost(b)
	root := testRoot(b, m)
	paths := make([]string, 100)
	for i := range paths {
		paths[i] = root + "/pod/c" + strconv.Itoa(i)
		if err := m.Create(paths[i], nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range paths {
			if _, err := m.Stats(p); err != nil {
				b.Fatal(err)
			}
		}
	}
}
