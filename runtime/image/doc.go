// Package image pulls images from OCI and Docker v2 registries, keeps them in
// a content-addressed store under crib's root, and unpacks their layers once
// per chain ID into directories usable as overlayfs lower dirs.
//
// Every blob is verified against its digest before it is committed, partial
// downloads and unpacks live in temporary directories that a restart clears,
// and the image index is replaced atomically, so a crash or a corrupt blob
// never leaves a half image. Layers that containers use (Pins, read from
// their records) outlive the removal of their image until the last such
// container goes. An Importer adds the images of archives (docker save's,
// OCI layouts; package archive reads them) to the same directory, beside
// the daemon or with none: whoever changes the index takes a file lock
// and reads the index again under it, and readers read it again when it
// changed (shared.go). It sees no CRI types and must not import cri,
// sandbox or runtime. Internal to crib; no API compatibility promised.
package image
