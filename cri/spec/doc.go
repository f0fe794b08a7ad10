// Package spec translates CRI container and sandbox configuration, together
// with an image's config, into OCI runtime-spec documents.
//
// Its functions are pure (no I/O, no global state) and tested with tables and
// golden JSON. It may import cri-api and runtime-spec; it must not import
// sandbox, runtime or anything below them, with one exception:
// runtime/initmsg, a leaf of constants and message types, for the spec
// extension only crib's init reads (initmsg.ImageSubPathOption).
// Internal to crib; no API compatibility promised.
package spec
