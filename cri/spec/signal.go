package spec

import (
	"strconv"
	"strings"
	"syscall"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Linux's first and last real-time signals as user space numbers them:
// glibc keeps 32 and 33 for itself, so SIGRTMIN is 34.
const (
	sigRTMin = 34
	sigRTMax = 64
)

// signals are the standard Linux signal names (signal(7)), with the aliases
// Docker and CRI accept.
var signals = map[string]syscall.Signal{
	"ABRT": 6, "ALRM": 14, "BUS": 7, "CHLD": 17, "CLD": 17, "CONT": 18,
	"FPE": 8, "HUP": 1, "ILL": 4, "INT": 2, "IO": 29, "IOT": 6, "KILL": 9,
	"PIPE": 13, "POLL": 29, "PROF": 27, "PWR": 30, "QUIT": 3, "SEGV": 11,
	"STKFLT": 16, "STOP": 19, "SYS": 31, "TERM": 15, "TRAP": 5, "TSTP": 20,
	"TTIN": 21, "TTOU": 22, "URG": 23, "USR1": 10, "USR2": 12, "VTALRM": 26,
	"WINCH": 28, "XCPU": 24, "XFSZ": 25,
}

// StopSignal returns the signal StopContainer sends first: the container's
// stop_signal (CRI, KEP-4960) when set, else the image's STOPSIGNAL, else
// SIGTERM. An unparsable image signal is an error wrapping
// ErrInvalidArgument, reported at create time rather than at stop time.
func StopSignal(cfg *criapi.ContainerConfig, img ImageConfig) (syscall.Signal, error) {
	if s := cfg.GetStopSignal(); s != criapi.Signal_SIGNAL_RUNTIME_DEFAULT {
		name, ok := criapi.Signal_name[int32(s)]
		if !ok {
			return 0, invalidf("unknown stop signal %d", s)
		}
		// SIGNAL_SIGRTMINPLUS3 → SIGRTMIN+3, SIGNAL_SIGRTMAXMINUS2 → SIGRTMAX-2.
		name = strings.TrimPrefix(name, "SIGNAL_")
		name = strings.NewReplacer("PLUS", "+", "MINUS", "-").Replace(name)
		return parseSignal(name)
	}
	if img.StopSignal == "" {
		return syscall.SIGTERM, nil
	}
	return parseSignal(img.StopSignal)
}

// parseSignal reads "SIGTERM", "TERM", "term", "15", "SIGRTMIN+3" or
// "RTMAX-1", as moby's signal.ParseSignal does.
func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > sigRTMax {
			return 0, invalidf("signal %q out of range", s)
		}
		return syscall.Signal(n), nil
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if sig, ok := signals[name]; ok {
		return sig, nil
	}
	for _, rt := range []struct {
		prefix string
		base   int
		sign   byte
	}{{"RTMIN", sigRTMin, '+'}, {"RTMAX", sigRTMax, '-'}} {
		rest, ok := strings.CutPrefix(name, rt.prefix)
		if !ok {
			continue
		}
		if rest == "" {
			return syscall.Signal(rt.base), nil
		}
		if rest[0] != rt.sign {
			break
		}
		off, err := strconv.Atoi(rest[1:])
		if err != nil || off < 0 || off > sigRTMax-sigRTMin {
			break
		}
		if rt.sign == '+' {
			return syscall.Signal(rt.base + off), nil
		}
		return syscall.Signal(rt.base - off), nil
	}
	return 0, invalidf("unknown signal %q", s)
}
