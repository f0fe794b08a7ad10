package shimapi

// The names in a pod's shim directory (<state>/shims/<first 16 hex of the
// pod id>) and a shim process's (<state>/shims/grp-<hex>) that both sides
// use: the daemon starts a shim process on its directory and dials it
// there, the process serves each of its pods in the pod's directory.
const (
	// SocketName is a pod's ttrpc socket (service Shim).
	SocketName = "shim.sock"
	// GroupSocketName is a shim process's ttrpc socket (service Group).
	GroupSocketName = "group.sock"
	// LogName is a shim process's own log (its stdout and stderr).
	LogName = "shim.log"
)

// EnvReadyFD names the fd on which a spawned shim reports, with one byte,
// that it serves its socket.
const EnvReadyFD = "_CRIB_SHIM_READY"
