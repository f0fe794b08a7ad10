package rdt

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

const resolveFile = `
partitions:
  p:
    classes:
      gold:
      silver:
      bronze:
      podonly:
        kubernetes: {denyContainerAnnotation: true}
      ctronly:
        kubernetes: {denyPodAnnotation: true}
`

// The three annotation levels win in order, then the default.
func TestResolvePrecedence(t *testing.T) {
	h := newFakeHost(t, catOnlyHost())
	cfg := writeClassFile(t, resolveFile)
	c := h.open(t, cfg)
	ctr := map[string]string{ContainerAnnotation: "gold"}
	pod := map[string]string{PodContainerAnnotationPrefix + "app": "silver", PodAnnotation: "bronze", PodContainerAnnotationPrefix + "other": "ctronly"}
	for _, tc := range []struct {
		name     string
		pod, ctr map[string]string
		def      string
		want     string
	}{
		{"container annotation wins", pod, ctr, "", "gold"},
		{"pod annotation for the container", pod, nil, "", "silver"},
		{"pod annotation for the pod", map[string]string{PodAnnotation: "bronze"}, nil, "", "bronze"},
		{"empty value is absent", map[string]string{PodAnnotation: "bronze"}, map[string]string{ContainerAnnotation: ""}, "", "bronze"},
		{"default", nil, nil, "silver", "silver"},
		{"default root", nil, nil, "DEFAULT", RootClass},
		{"no default: leave it", nil, nil, "", ""},
		{"root by annotation", map[string]string{PodAnnotation: RootClass}, nil, "", RootClass},
		{"deny container annotation allows pod", map[string]string{PodAnnotation: "podonly"}, nil, "", "podonly"},
		{"deny pod annotation allows container", nil, map[string]string{ContainerAnnotation: "ctronly"}, "", "ctronly"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg.DefaultClass = tc.def
			if err := c.Reload(cfg); err != nil {
				t.Fatal(err)
			}
			got, warn, err := c.Resolve(tc.pod, tc.ctr, "app")
			if got != tc.want || warn != nil || err != nil {
				t.Errorf("Resolve = %q, %v, %v; want %q", got, warn, err, tc.want)
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	h := newFakeHost(t, catOnlyHost())
	c := h.open(t, writeClassFile(t, resolveFile))
	for _, tc := range []struct {
		name     string
		pod, ctr map[string]string
		want     string
	}{
		{"unknown", map[string]string{PodAnnotation: "platinum"}, nil, "rdt class platinum from pod annotation " + PodAnnotation + ": no such class"},
		{"slash", nil, map[string]string{ContainerAnnotation: "a/b"}, "contains '/'"},
		{"dotdot", nil, map[string]string{ContainerAnnotation: ".."}, "'..'"},
		{"space", nil, map[string]string{ContainerAnnotation: "a b"}, "space"},
		{"denied container annotation", nil, map[string]string{ContainerAnnotation: "podonly"}, "denies container annotations"},
		{"denied pod annotation", map[string]string{PodContainerAnnotationPrefix + "app": "ctronly"}, nil, "denies pod annotations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, warn, err := c.Resolve(tc.pod, tc.ctr, "app")
			if got != "" || warn != nil || !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Resolve = %q, %v, %v; want InvalidArgument containing %q", got, warn, err, tc.want)
			}
		})
	}
}

// Strict by default: a class asked for on a node without RDT fails; with
// IgnoreUnavailable it is a warning and the task stays where it is.
func TestResolveUnavailable(t *testing.T) {
	pod := map[string]string{PodAnnotation: "gold"}
	c, err := Open(writeMountinfo(t, "", ""), Config{DefaultClass: "gold"})
	if err != nil {
		t.Fatal(err)
	}
	class, warn, err := c.Resolve(pod, nil, "app")
	if class != "" || warn != nil || !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "rdt class gold") || !strings.Contains(err.Error(), "not mounted") {
		t.Errorf("strict: Resolve = %q, %v, %v; want FailedPrecondition naming the class and reason", class, warn, err)
	}
	if class, warn, err := c.Resolve(nil, nil, "app"); class != "" || warn != nil || err != nil {
		t.Errorf("default class without RDT: Resolve = %q, %v, %v; want nothing", class, warn, err)
	}
	if err := c.Reload(Config{IgnoreUnavailable: true}); err != nil {
		t.Fatal(err)
	}
	class, warn, err = c.Resolve(pod, nil, "app")
	if class != "" || err != nil || !errors.Is(warn, errdefs.ErrFailedPrecondition) {
		t.Errorf("warn mode: Resolve = %q, %v, %v; want a FailedPrecondition warning only", class, warn, err)
	}
	if _, err := c.Place("gold", "x", 1); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Place without RDT: %v, want FailedPrecondition", err)
	}
}

func TestValidateClassName(t *testing.T) {
	for name, ok := range map[string]bool{
		"gold": true, RootClass: true, "a.b-c_d": true, "": false, "/": false, "a/b": false,
		"..": false, "a..": false, ".": false, "a\tb": false, strings.Repeat("x", 201): false,
	} {
		if err := ValidateClassName(name); (err == nil) != ok {
			t.Errorf("ValidateClassName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

// TestCheck: a class named directly (an NRI adjustment) is checked as an
// annotation's is, without the annotation-deny rules.
func TestCheck(t *testing.T) {
	h := newFakeHost(t, catOnlyHost())
	c := h.open(t, writeClassFile(t, resolveFile))
	for _, class := range []string{"gold", "podonly", "ctronly"} {
		if got, warn, err := c.Check(class); got != class || warn != nil || err != nil {
			t.Errorf("Check(%q) = %q, %v, %v", class, got, warn, err)
		}
	}
	if got, _, err := c.Check("DEFAULT"); got != RootClass || err != nil {
		t.Errorf("Check(DEFAULT) = %q, %v; want the root class", got, err)
	}
	for _, bad := range []string{"platinum", "a/b", ".."} {
		if got, warn, err := c.Check(bad); got != "" || warn != nil || !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Check(%q) = %q, %v, %v; want InvalidArgument", bad, got, warn, err)
		}
	}
	off, err := Open(writeMountinfo(t, "", ""), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := off.Check("gold"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Check without RDT: %v, want FailedPrecondition", err)
	}
	if err := off.Reload(Config{IgnoreUnavailable: true}); err != nil {
		t.Fatal(err)
	}
	if got, warn, err := off.Check("gold"); got != "" || err != nil || !errors.Is(warn, errdefs.ErrFailedPrecondition) {
		t.Errorf("Check without RDT, ignore_unavailable: %q, %v, %v; want a warning only", got, warn, err)
	}
}
