package rdt

import (
	"fmt"
)

// Resolve picks the class of a container from its annotations, highest
// first: the container's ContainerAnnotation, the pod's
// PodContainerAnnotationPrefix+containerName, the pod's PodAnnotation; else
// the configured default. An empty class means "leave the task where it
// is". An annotation with an empty value counts as absent.
//
// Errors wrap ErrInvalidArgument (malformed or unknown class, or a class
// that denies the annotation used) or ErrFailedPrecondition (a class asked
// for on a node without RDT). With Config.IgnoreUnavailable the latter is
// returned as warning instead, with an empty class, for the caller to log.
func (c *Controller) Resolve(podAnnotations, containerAnnotations map[string]string, containerName string) (class string, warning, err error) {
	class, source := requested(podAnnotations, containerAnnotations, containerName)
	c.mu.RLock()
	defer c.mu.RUnlock()
	if class == "" {
		if c.cfg.DefaultClass == "" || !c.info.Available {
			return "", nil, nil
		}
		return c.cfg.DefaultClass, nil, nil
	}
	class = canonicalClass(class)
	if err := ValidateClassName(class); err != nil {
		return "", nil, fmt.Errorf("%s: %w", source, err)
	}
	if !c.info.Available {
		err := preconditionf("rdt class %s from %s: RDT is not available on this node: %s", class, source, c.info.Reason)
		if c.cfg.IgnoreUnavailable {
			return "", err, nil
		}
		return "", nil, err
	}
	p := c.classes[class]
	if p == nil {
		return "", nil, invalidf("rdt class %s from %s: no such class (configured: %v)", class, source, sortedKeys(c.classes))
	}
	if source != ContainerAnnotation && p.Kube.DenyPodAnnotation {
		return "", nil, invalidf("rdt class %s from %s: the class denies pod annotations", class, source)
	}
	if source == ContainerAnnotation && p.Kube.DenyContainerAnnotation {
		return "", nil, invalidf("rdt class %s from %s: the class denies container annotations", class, source)
	}
	return class, nil, nil
}

// requested returns the class the annotations ask for and the annotation
// that asked.
func requested(pod, ctr map[string]string, containerName string) (class, source string) {
	if v := ctr[ContainerAnnotation]; v != "" {
		return v, ContainerAnnotation
	}
	if containerName != "" {
		key := PodContainerAnnotationPrefix + containerName
		if v := pod[key]; v != "" {
			return v, "pod annotation " + key
		}
	}
	if v := pod[PodAnnotation]; v != "" {
		return v, "pod annotation " + PodAnnotation
	}
	return "", ""
}

// Check resolves a class named directly rather than by annotation (an NRI
// plugin's adjustment), with Resolve's checks: a malformed or unknown
// class is ErrInvalidArgument, a class on a node without RDT is
// ErrFailedPrecondition, or with Config.IgnoreUnavailable a warning and no
// class. The annotation-deny rules do not apply: no annotation asked.
func (c *Controller) Check(class string) (resolved string, warning, err error) {
	class = canonicalClass(class)
	if err := ValidateClassName(class); err != nil {
		return "", nil, err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.info.Available {
		err := preconditionf("rdt class %s: RDT is not available on this node: %s", class, c.info.Reason)
		if c.cfg.IgnoreUnavailable {
			return "", err, nil
		}
		return "", nil, err
	}
	if c.classes[class] == nil {
		return "", nil, invalidf("rdt class %s: no such class (configured: %v)", class, sortedKeys(c.classes))
	}
	return class, nil, nil
}
