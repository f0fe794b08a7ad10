// Package rdtclass is the policy of crib's example NRI plugin
// (cmd/nri-rdt-class): it puts each new container in an RDT class chosen
// by its pod's namespace and QoS class, so a cluster operator sets cache
// and memory-bandwidth classes per tenant without annotating every pod.
// It gives a default, not a limit: a container whose pod asked for a class
// itself (the RDT annotations) keeps that one; an operator who must bound
// what tenants choose does it in the runtime's class configuration.
//
// The plugin only names a class; the runtime applies it with its own
// checks (crib refuses a class its rdt configuration does not have).
package rdtclass

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/crib-runtime/crib/rdt"
)

// QoS classes, as the kubelet places pods in its cgroup tree.
const (
	Guaranteed = "guaranteed"
	Burstable  = "burstable"
	BestEffort = "besteffort"
)

// Policy maps pods to RDT classes: the first rule that matches wins, else
// Default ("" leaves the container as the runtime made it).
type Policy struct {
	Rules   []Rule `json:"rules"`
	Default string `json:"default,omitempty"`
}

// Rule matches pods by namespace and QoS class; an empty field matches any.
type Rule struct {
	Namespace string `json:"namespace,omitempty"`
	QoS       string `json:"qos,omitempty"`
	Class     string `json:"class"`
}

// Parse reads a policy (YAML or JSON) and checks it.
func Parse(data []byte) (*Policy, error) {
	var p Policy
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		return nil, fmt.Errorf("rdt class policy: %w", err)
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("rdt class policy: %w", err)
	}
	return &p, nil
}

func (p *Policy) validate() error {
	var errs []error
	for i, r := range p.Rules {
		if err := checkClass(r.Class); err != nil {
			errs = append(errs, fmt.Errorf("rule %d: %w", i, err))
		}
		switch r.QoS {
		case "", Guaranteed, Burstable, BestEffort:
		default:
			errs = append(errs, fmt.Errorf("rule %d: qos %q is none of %s, %s, %s", i, r.QoS, Guaranteed, Burstable, BestEffort))
		}
	}
	if p.Default != "" {
		if err := checkClass(p.Default); err != nil {
			errs = append(errs, fmt.Errorf("default: %w", err))
		}
	}
	return errors.Join(errs...)
}

// checkClass refuses what crib would refuse as a class name; whether the
// node has the class is the runtime's to say.
func checkClass(c string) error { return rdt.ValidateClassName(c) }

// Class returns the class for a pod of namespace ns whose cgroup parent
// (the kubelet's pod cgroup) is cgroupParent, and "" for none.
func (p *Policy) Class(ns, cgroupParent string) string {
	qos := QoSOf(cgroupParent)
	for _, r := range p.Rules {
		if (r.Namespace == "" || r.Namespace == ns) && (r.QoS == "" || r.QoS == qos) {
			return r.Class
		}
	}
	return p.Default
}

// QoSOf reads a pod's QoS class from its cgroup, as the kubelet names it:
// .../kubepods/burstable/pod<uid> (cgroupfs) or
// kubepods-burstable-pod<uid>.slice (systemd); Guaranteed pods sit
// directly under kubepods. A cgroup outside kubepods (none given, another
// manager's) is "": no rule that names a QoS class matches it, rather than
// the best class by default.
func QoSOf(cgroupParent string) string {
	kubepods := false
	for _, seg := range strings.FieldsFunc(path.Clean(cgroupParent), func(r rune) bool { return r == '/' || r == '-' || r == '.' }) {
		switch seg {
		case Burstable:
			return Burstable
		case BestEffort:
			return BestEffort
		case "kubepods":
			kubepods = true
		}
	}
	if kubepods {
		return Guaranteed
	}
	return ""
}
