package nri

import (
	"context"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
	"k8s.io/klog/v2"
)

// NRI v0.12.5 carries evictions on the wire (UpdateContainersRequest,
// and the answers to CreateContainer and UpdateContainer) but its
// adaptation drops them before a runtime sees them. crib reads them off
// the plugins' ttrpc connections instead: a server interceptor on the
// runtime service a plugin calls, a client interceptor on the plugin
// service crib calls.
const (
	updateContainersMethod = "/nri.pkg.api.v1alpha1.Runtime/UpdateContainers"
	createContainerMethod  = "/nri.pkg.api.v1alpha1.Plugin/CreateContainer"
	updateContainerMethod  = "/nri.pkg.api.v1alpha1.Plugin/UpdateContainer"
)

// evictTimeout bounds one eviction: a stop with no grace period.
const evictTimeout = 2 * time.Minute

func (n *NRI) serverInterceptor(ctx context.Context, unmarshal ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, method ttrpc.Method) (any, error) {
	if info.FullMethod != updateContainersMethod {
		return method(ctx, unmarshal)
	}
	var evict []*api.ContainerEviction
	resp, err := method(ctx, func(v any) error {
		if err := unmarshal(v); err != nil {
			return err
		}
		if req, ok := v.(*api.UpdateContainersRequest); ok {
			evict = req.GetEvict()
		}
		return nil
	})
	n.evict(evict)
	return resp, err
}

type evicting interface {
	proto.Message
	GetEvict() []*api.ContainerEviction
}

func (n *NRI) clientInterceptor(ctx context.Context, req *ttrpc.Request, resp *ttrpc.Response, info *ttrpc.UnaryClientInfo, invoker ttrpc.Invoker) error {
	if err := invoker(ctx, req, resp); err != nil {
		return err
	}
	var msg evicting
	switch info.FullMethod {
	case createContainerMethod:
		msg = &api.CreateContainerResponse{}
	case updateContainerMethod:
		msg = &api.UpdateContainerResponse{}
	default:
		return nil
	}
	// The library decodes the same bytes again; a payload it cannot
	// decode fails there.
	if err := proto.Unmarshal(resp.Payload, msg); err == nil {
		n.evict(msg.GetEvict())
	}
	return nil
}

// evict stops the containers plugins asked to evict, after the event that
// carried them: a stop sends NRI StopContainer, which would wait for the
// library's lock the event holds.
func (n *NRI) evict(evict []*api.ContainerEviction) {
	if len(evict) == 0 {
		return
	}
	go func() {
		for _, e := range evict {
			ctx, cancel := context.WithTimeout(context.Background(), evictTimeout)
			err := n.rt.Evict(ctx, e.GetContainerId(), e.GetReason())
			cancel()
			logger := klog.Background().WithName("nri")
			if err != nil {
				logger.Error(err, "Eviction asked for by an NRI plugin failed", "containerID", e.GetContainerId(), "reason", e.GetReason())
				continue
			}
			logger.Info("Evicted container as an NRI plugin asked", "containerID", e.GetContainerId(), "reason", e.GetReason())
		}
	}()
}
