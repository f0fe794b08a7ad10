package cri

import (
	"context"
	"strings"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/runtime"
)

// ListContainers lists containers matching the filter: id (or id prefix),
// state, pod id (or prefix) and every label of the selector.
func (s *Server) ListContainers(ctx context.Context, req *criapi.ListContainersRequest) (*criapi.ListContainersResponse, error) {
	all, err := s.containers.List(ctx)
	if err != nil {
		return nil, err
	}
	f := req.GetFilter()
	var out []*criapi.Container
	for _, st := range all {
		if matchContainer(st, f) {
			out = append(out, toCRIContainer(st))
		}
	}
	return &criapi.ListContainersResponse{Containers: out}, nil
}

func matchContainer(st runtime.State, f *criapi.ContainerFilter) bool {
	if f == nil {
		return true
	}
	if f.Id != "" && !strings.HasPrefix(st.ID, f.Id) {
		return false
	}
	if f.PodSandboxId != "" && !strings.HasPrefix(st.SandboxID, f.PodSandboxId) {
		return false
	}
	if f.State != nil && toCRIState(st.Status) != f.State.State {
		return false
	}
	return matchLabels(st.Labels, f.LabelSelector)
}

// matchLabels is the CRI label selector: every key=value given must be set.
func matchLabels(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
