// Package nsproto encodes the bootstrap message a launcher writes to the
// nsexec constructor of "crib init", and reads and writes the sync messages
// that follow. Its constants are generated from nsexec/protocol.h, the one
// definition of the wire format (go generate; make verify checks they match).
//
// It imports only the standard library. Internal to crib; no API
// compatibility promised.
package nsproto

//go:generate go run gen.go ../protocol.h zconst.go
