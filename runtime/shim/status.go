package shim

import (
	"fmt"

	"github.com/crib-runtime/crib/runtime/shimapi"
)

// Status is where a container is in its life.
type Status uint8

// The statuses, in order.
const (
	StatusCreated Status = iota + 1
	StatusRunning
	StatusExited
)

func (s Status) String() string {
	switch s {
	case StatusCreated:
		return "created"
	case StatusRunning:
		return "running"
	case StatusExited:
		return "exited"
	}
	return "unknown"
}

// transitions is every allowed change of Status. A created container can
// exit without running: it was killed, or its init failed at Start.
var transitions = map[Status][]Status{
	StatusCreated: {StatusRunning, StatusExited},
	StatusRunning: {StatusExited},
}

func (s Status) canBecome(next Status) bool {
	for _, n := range transitions[s] {
		if n == next {
			return true
		}
	}
	return false
}

// MarshalText writes the status by name, so state files stay readable.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a status name.
func (s *Status) UnmarshalText(b []byte) error {
	for _, c := range []Status{StatusCreated, StatusRunning, StatusExited} {
		if c.String() == string(b) {
			*s = c
			return nil
		}
	}
	return fmt.Errorf("unknown container status %q", b)
}

func (s Status) proto() shimapi.Status {
	switch s {
	case StatusCreated:
		return shimapi.Status_CREATED
	case StatusRunning:
		return shimapi.Status_RUNNING
	case StatusExited:
		return shimapi.Status_EXITED
	}
	return shimapi.Status_UNKNOWN
}

// Exit reasons, as the CRI's ContainerStatus.reason spells them.
const (
	ReasonCompleted = "Completed"
	ReasonError     = "Error"
	ReasonOOMKilled = "OOMKilled"
	// ReasonUnknown: the shim restarted and could not see how the
	// container ended.
	ReasonUnknown = "Unknown"
)

// recordVersion is the version of record; bump it on an incompatible change.
const recordVersion = 1

// record is a container's persisted state, <dir>/containers/<id>.json,
// rewritten atomically on every transition.
type record struct {
	Version    int    `json:"version"`
	ID         string `json:"id"`
	Status     Status `json:"status"`
	Pid        int    `json:"pid,omitempty"`
	CreatedAt  int64  `json:"createdAt"` // Unix nanoseconds
	StartedAt  int64  `json:"startedAt,omitempty"`
	FinishedAt int64  `json:"finishedAt,omitempty"`
	ExitCode   int32  `json:"exitCode"`
	Reason     string `json:"reason,omitempty"`
	Message    string `json:"message,omitempty"`
	LogPath    string `json:"logPath,omitempty"`
	Cgroup     string `json:"cgroup"`
	RDTClass   string `json:"rdtClass,omitempty"`
}

func (r *record) proto() *shimapi.ContainerState {
	return &shimapi.ContainerState{
		Id: r.ID, Status: r.Status.proto(), Pid: int32(r.Pid), ExitCode: r.ExitCode,
		CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
		Reason: r.Reason, Message: r.Message, LogPath: r.LogPath,
	}
}
