package rdtclass

import (
	"context"
	"strings"
	"testing"

	"github.com/containerd/nri/pkg/api"
)

const policyYAML = `
rules:
- namespace: tenant-a
  qos: guaranteed
  class: gold
- namespace: tenant-a
  class: silver
- qos: besteffort
  class: bronze
default: system/default
`

func TestClassFirstRuleWins(t *testing.T) {
	p, err := Parse([]byte(policyYAML))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ ns, parent, want string }{
		{"tenant-a", "/kubepods/pod1234", "gold"},
		{"tenant-a", "/kubepods/burstable/pod1234", "silver"},
		{"tenant-a", "kubepods-besteffort-pod1234.slice", "silver"},
		{"tenant-b", "/kubepods/besteffort/pod1234", "bronze"},
		{"tenant-b", "kubepods-besteffort-pod1234.slice", "bronze"},
		{"tenant-b", "/kubepods/burstable/pod1234", "system/default"},
		{"tenant-b", "", "system/default"},
		{"tenant-a", "", "silver"}, // no QoS known: the rule without one
	} {
		if got := p.Class(tc.ns, tc.parent); got != tc.want {
			t.Errorf("Class(%q, %q) = %q, want %q", tc.ns, tc.parent, got, tc.want)
		}
	}
}

func TestQoSOf(t *testing.T) {
	for parent, want := range map[string]string{
		"/kubepods/burstable/pod1":  Burstable,
		"/kubepods/besteffort/pod1": BestEffort,
		"/kubepods/pod1":            Guaranteed,
		"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice": Burstable,
		"/kubepods/pod-burstable-looking-uid":                                   Burstable, // uids are hex and dashes: never a QoS word
	} {
		if got := QoSOf(parent); got != want {
			t.Errorf("QoSOf(%q) = %q, want %q", parent, got, want)
		}
	}
}

func TestParseRefusesBadPolicies(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"rules:\n- class: ''\n", "rule 0: "},
		{"rules:\n- class: ../x\n", `rule 0: `},
		{"rules:\n- class: gold\n  qos: platinum\n", `rule 0: qos "platinum"`},
		{"rules:\n- class: gold\n  tier: 1\n", "unknown field"},
		{"default: a/b\n", `default: `},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", tc.yaml, err, tc.want)
		}
	}
}

func TestPluginSetsClass(t *testing.T) {
	pl := New(nil)
	if _, err := pl.Configure(context.Background(), "", "crib", "v1"); err == nil {
		t.Fatal("Configure without any policy succeeded")
	}
	mask, err := pl.Configure(context.Background(), policyYAML, "crib", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if !mask.IsSet(api.Event_CREATE_CONTAINER) || mask.IsSet(api.Event_RUN_POD_SANDBOX) {
		t.Errorf("events %s, want CreateContainer only", mask.PrettyString())
	}
	pod := &api.PodSandbox{Namespace: "tenant-a", Linux: &api.LinuxPodSandbox{CgroupParent: "/kubepods/pod1"}}
	adj, upd, err := pl.CreateContainer(context.Background(), pod, &api.Container{})
	if err != nil || upd != nil {
		t.Fatalf("CreateContainer: %v, %v", upd, err)
	}
	if got := adj.GetLinux().GetResources().GetRdtClass().GetValue(); got != "gold" {
		t.Errorf("class %q, want gold", got)
	}
	// A class the pod asked for itself stays.
	asked := &api.Container{Linux: &api.LinuxContainer{Resources: &api.LinuxResources{RdtClass: api.String("platinum")}}}
	if adj, _, _ := pl.CreateContainer(context.Background(), pod, asked); adj != nil {
		t.Errorf("adjusted a container that has a class: %v", adj)
	}
	// As a runtime shows a class it applied: the CLOS of the OCI spec.
	placed := &api.Container{Linux: &api.LinuxContainer{Rdt: &api.LinuxRdt{ClosId: api.String("platinum")}}}
	if adj, _, _ := pl.CreateContainer(context.Background(), pod, placed); adj != nil {
		t.Errorf("adjusted a container placed in a class: %v", adj)
	}
	// No rule and no default: no adjustment.
	none := New(&Policy{Rules: []Rule{{Namespace: "x", Class: "gold"}}})
	if adj, _, _ := none.CreateContainer(context.Background(), &api.PodSandbox{Namespace: "y"}, &api.Container{}); adj != nil {
		t.Errorf("adjusted with no matching rule: %v", adj)
	}
}
