package shimapi

// The names in a shim's directory (<state>/shims/<first 16 hex of the pod
// id>) that both sides use: the daemon starts the shim there and dials it,
// the shim serves there.
const (
	// SocketName is the shim's ttrpc socket.
	SocketName = "shim.sock"
	// LogName is the shim's own log (its stdout and stderr), appended to
	// by every shim the pod had.
	LogName = "shim.log"
)

// EnvReadyFD names the fd on which a spawned shim reports, with one byte,
// that it serves its socket.
const EnvReadyFD = "_CRIB_SHIM_READY"
