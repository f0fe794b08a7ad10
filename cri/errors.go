package cri

import (
	"google.golang.org/grpc/status"

	"github.com/crib-runtime/crib/internal/errcode"
)

// toStatus converts a domain error to a gRPC status. It is called once per
// RPC, by the interceptors; handlers return plain wrapped errors.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err // already a status, e.g. from an Unimplemented method
	}
	return status.Error(errcode.Code(err), err.Error())
}
