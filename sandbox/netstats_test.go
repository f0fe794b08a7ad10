package sandbox

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseNetDev(t *testing.T) {
	data := []byte(`Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0
  eth0:    1296      16    1    3    0     0          0         0      866      11    2    4    0     0       0          0
`)
	got, err := parseNetDev(data)
	if err != nil {
		t.Fatal(err)
	}
	want := []InterfaceStats{{Name: "eth0", RxBytes: 1296, RxPackets: 16, RxErrors: 1, RxDropped: 3,
		TxBytes: 866, TxPackets: 11, TxErrors: 2, TxDropped: 4}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if _, err := parseNetDev([]byte("h\nh\neth0: 1 2\n")); err == nil {
		t.Fatal("short line accepted")
	}
}
