package rdt

import (
	"strings"
)

// RootClass names the resctrl root group, where every task starts and
// where it returns when its group is removed. goresctrl, containerd and
// CRI-O use the same name.
const RootClass = "system/default"

// groupPrefix marks the control groups crib creates, so crib never removes
// a group someone else made (another runtime, pqos, an operator).
const groupPrefix = "crib-"

// Annotations naming a class, highest precedence first (goresctrl
// pkg/kubernetes/annotations.go).
const (
	// ContainerAnnotation is the container's own annotation.
	ContainerAnnotation = "io.kubernetes.cri.rdt-class"
	// PodContainerAnnotationPrefix + container name is the pod annotation
	// for one container.
	PodContainerAnnotationPrefix = "rdt.resources.beta.kubernetes.io/container."
	// PodAnnotation is the pod annotation for all its containers.
	PodAnnotation = "rdt.resources.beta.kubernetes.io/pod"
)

// canonicalClass maps goresctrl's aliases of the root class ("" and
// "DEFAULT" in the class file) to RootClass.
func canonicalClass(name string) string {
	if name == "" || name == "DEFAULT" {
		return RootClass
	}
	return name
}

// maxClassName keeps "crib-" + name within NAME_MAX with room to spare.
const maxClassName = 200

// ValidateClassName rejects class names that could not be a resctrl group
// directory of their own: a path separator (other than RootClass), "." or
// "..", control characters or spaces. Errors wrap ErrInvalidArgument.
func ValidateClassName(name string) error {
	if name == RootClass {
		return nil
	}
	switch {
	case name == "":
		return invalidf("empty rdt class name")
	case len(name) > maxClassName:
		return invalidf("rdt class %.20s…: name longer than %d bytes", name, maxClassName)
	case strings.Contains(name, "/"):
		return invalidf("rdt class %q: name contains '/'", name)
	case name == "." || strings.Contains(name, ".."):
		return invalidf("rdt class %q: name contains '..'", name)
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f {
			return invalidf("rdt class %q: name contains a space or control character", name)
		}
	}
	return nil
}

// groupDir is the resctrl directory of a class, relative to the mount.
func groupDir(class string) string {
	if class == RootClass {
		return ""
	}
	return groupPrefix + class
}

// groupFile joins a group directory and a file name.
func groupFile(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}
