// Package archive reads the image archives `crib image import` loads:
// docker save's format (docker-archive: manifest.json, image configs and
// layer tars), and OCI image layouts (oci-layout, index.json, blobs/) as a
// directory or as a tar (an OCI archive). A tar may be gzip-compressed and
// read from a stream.
//
// An archive is hostile input. A tar is read once, front to back, and
// each regular file is spooled into a file the reader names itself: no
// name in the archive ever becomes a path on the host. Names in manifests
// and the tar's own links are resolved among the archive's entries, and
// one that is absolute or leads out of the archive is refused. A layout
// directory is read with every path resolved by the kernel inside it
// (openat2 RESOLVE_IN_ROOT), and only regular files are opened. Every blob
// is checked against the digest and size that name it before it is handed
// out. Layers' diff IDs are checked by the image store as it unpacks them,
// as for pulls.
//
// What an archive may cost is bounded as well: the bytes written to files
// (Limits.Bytes; sparse tar entries, which Go's reader expands to their
// declared size, are refused), the documents read into memory (each read
// once, maxDocuments together), the images listed, an image's layers and
// the length of names. Every copy stops when its context ends.
//
// It imports no crib package but internal/resolve. Internal to crib; no
// API compatibility promised.
package archive
