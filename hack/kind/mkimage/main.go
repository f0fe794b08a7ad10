// Command mkimage builds the container images a kind node preloads
// (hack/kind-image.sh) from files on this machine, with no registry and no
// Docker: the control plane's binaries built from their Go modules, CoreDNS,
// a pause program, kube-proxy over a Debian root with iptables. It writes
// one image as a Docker archive, the format `docker save` writes, which
// `crib image import` and containerd's `ctr images import` both read.
//
//	mkimage -o OUT.tar -name REF [-base ROOTFS.tar] [-entrypoint JSON]
//	        [-cmd JSON] [-user U] [-workdir D] [-env K=V]...
//	        [-filecap DST=net_bind_service]... [SRC=DST]...
//
// Each SRC=DST copies a file of this machine to DST in the image (mode kept,
// owned by root); -base adds a root file system tar as the first layer;
// -filecap gives a copied file a file capability, as upstream images that
// run as non-root and bind low ports do (CoreDNS's /coredns).
package main

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	out := fs.String("o", "", "the Docker archive to write")
	ref := fs.String("name", "", "the image's name (registry/repository:tag)")
	base := fs.String("base", "", "a root file system tar, the first layer")
	entrypoint := fs.String("entrypoint", "", "the entrypoint, a JSON array")
	cmd := fs.String("cmd", "", "the command, a JSON array")
	user := fs.String("user", "", "the user the image runs as")
	workdir := fs.String("workdir", "", "the working directory")
	var env, filecaps listFlag
	fs.Var(&env, "env", "K=V, repeatable (PATH defaults to the usual)")
	fs.Var(&filecaps, "filecap", "DST=net_bind_service: a file capability for a copied file, repeatable")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || *ref == "" {
		return fmt.Errorf("-o and -name are required")
	}
	tag, err := name.NewTag(*ref)
	if err != nil {
		return fmt.Errorf("-name %q: %w", *ref, err)
	}
	cfg := v1.Config{User: *user, WorkingDir: *workdir, Env: env}
	if !hasKey(env, "PATH") {
		cfg.Env = append(cfg.Env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	for flagName, v := range map[string]struct {
		raw string
		dst *[]string
	}{"-entrypoint": {*entrypoint, &cfg.Entrypoint}, "-cmd": {*cmd, &cfg.Cmd}} {
		if v.raw == "" {
			continue
		}
		if err := json.Unmarshal([]byte(v.raw), v.dst); err != nil {
			return fmt.Errorf("%s %q is not a JSON array of strings: %w", flagName, v.raw, err)
		}
	}

	var layers []v1.Layer
	if *base != "" {
		l, err := tarball.LayerFromFile(*base)
		if err != nil {
			return fmt.Errorf("base %s: %w", *base, err)
		}
		layers = append(layers, l)
	}
	if fs.NArg() > 0 {
		caps, err := parseFileCaps(filecaps)
		if err != nil {
			return err
		}
		b, err := filesLayer(fs.Args(), caps)
		if err != nil {
			return err
		}
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
		if err != nil {
			return err
		}
		layers = append(layers, l)
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.Config = cfg
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	tmp := *out + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", *out, err)
	}
	return os.Rename(tmp, *out)
}

func hasKey(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}

// capBits are the capabilities -filecap knows (linux/capability.h).
var capBits = map[string]uint{"net_bind_service": 10, "net_raw": 13, "net_admin": 12}

// parseFileCaps turns DST=CAP[,CAP] into each DST's security.capability
// value: VFS_CAP_REVISION_2 with the effective flag, the capabilities
// permitted, none inheritable.
func parseFileCaps(specs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, spec := range specs {
		dst, names, ok := strings.Cut(spec, "=")
		if !ok || !strings.HasPrefix(dst, "/") {
			return nil, fmt.Errorf("-filecap %q: want /DST=CAP[,CAP]", spec)
		}
		var permitted uint32
		for _, n := range strings.Split(names, ",") {
			bit, known := capBits[strings.TrimPrefix(strings.ToLower(n), "cap_")]
			if !known {
				return nil, fmt.Errorf("-filecap %q: unknown capability %q", spec, n)
			}
			permitted |= 1 << bit
		}
		v := make([]byte, 20)
		binary.LittleEndian.PutUint32(v[0:], 0x02000000|0x000001) // revision 2, effective
		binary.LittleEndian.PutUint32(v[4:], permitted)
		out[strings.TrimPrefix(path.Clean(dst), "/")] = string(v)
	}
	return out, nil
}

// filesLayer tars SRC=DST pairs, with every parent directory of each DST,
// and caps' file capabilities on the files they name.
func filesLayer(pairs []string, caps map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	epoch := time.Unix(0, 0)
	for _, p := range pairs {
		src, dst, ok := strings.Cut(p, "=")
		if !ok || src == "" || !strings.HasPrefix(dst, "/") {
			return nil, fmt.Errorf("%q: want SRC=/DST", p)
		}
		dst = strings.TrimPrefix(path.Clean(dst), "/")
		var parents []string
		for d := path.Dir(dst); d != "." && !dirs[d]; d = path.Dir(d) {
			parents = append(parents, d)
			dirs[d] = true
		}
		for i := len(parents) - 1; i >= 0; i-- {
			mode := int64(0o755)
			if parents[i] == "tmp" {
				mode = 0o1777
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: parents[i] + "/", Mode: mode, ModTime: epoch}); err != nil {
				return nil, err
			}
		}
		fi, err := os.Stat(src)
		if err != nil {
			return nil, err
		}
		if fi.IsDir() {
			// An empty directory in the image (such as /tmp).
			mode := int64(fi.Mode().Perm())
			if fi.Mode()&os.ModeSticky != 0 {
				mode |= 0o1000
			}
			dirs[dst] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dst + "/", Mode: mode, ModTime: epoch}); err != nil {
				return nil, err
			}
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: dst, Mode: int64(fi.Mode().Perm()), Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}
		if c, ok := caps[dst]; ok {
			hdr.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": c}
			delete(caps, dst)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	for dst := range caps {
		return nil, fmt.Errorf("-filecap /%s: no such file copied", dst)
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
