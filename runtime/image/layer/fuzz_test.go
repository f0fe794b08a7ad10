package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"strings"
	"testing"
)

// FuzzApply checks that Apply never panics and never creates or changes
// anything outside its dir, whatever the layer.
//
// Random bytes rarely make a tar, and a tar rarely makes an interesting
// path, so an input starting with '#' is a script instead: one entry per
// line, "<type> <name>[ <link target>]", types d f l (symlink) h (hard link)
// c p (fifo); it is built into a valid tar. Anything else is the raw tar.
//
// The check looks at the layer dir's parent, where relative escapes land
// first. A bug could reach further, so fuzz as root only where it cannot
// hurt, in a mount namespace with a read-only / and a tmpfs for temp files:
//
//	go test -c -o /tmp/layer.test ./runtime/image/layer
//	unshare -m sh -c 'mount --make-rprivate / && mount -o remount,bind,ro / &&
//	  mount -t tmpfs tmpfs /mnt && cd /mnt && TMPDIR=/mnt /tmp/layer.test \
//	  -test.fuzz=FuzzApply -test.fuzztime=60s -test.fuzzcachedir=/mnt/cache'
func FuzzApply(f *testing.F) {
	for _, seed := range []string{
		"#\nd a/\nf a/b\nl c ../../..\nf c/d\nh e a/b",
		"#\nl a /etc\nf a/passwd\nd a/\nf a/x",
		"#\nl a ..\nl b a/..\nd b/up/\nf b/up/x\nh h b/up/x",
		"#\nf .wh.x\nf d/.wh..wh..opq\nd d/\nf .wh..wh.plnk/1\nf d/.wh.d",
		"#\nf x\nd x/\nf x\nl x /\nc x/y\np x/z\nh x/w ../x",
		"#\nd ./\nf /abs\nh ../out abs\nf a/../../b",
	} {
		f.Add([]byte(seed))
	}
	f.Add(buildTar(f, fileEnt("f", "content"), dirEnt("d/"), symEnt("d/l", "../f"), linkEnt("h", "d/l")))

	f.Fuzz(func(t *testing.T, data []byte) {
		layer := data
		if len(data) > 0 && data[0] == '#' {
			layer = scriptTar(data[1:])
		}
		s := newSandbox(t)
		_, _ = Apply(context.Background(), s.dir, bytes.NewReader(layer), Limits{Bytes: 1 << 20, Entries: 1000})
		s.checkOutside(t)
	})
}

// scriptTar builds a tar from a FuzzApply script, skipping lines the tar
// writer rejects.
func scriptTar(script []byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for line := range strings.SplitSeq(string(script), "\n") {
		fields := strings.SplitN(line, " ", 3)
		if len(fields) < 2 {
			continue
		}
		h := tar.Header{Name: fields[1], Mode: 0o755, ModTime: epoch}
		if len(fields) == 3 {
			h.Linkname = fields[2]
		}
		switch fields[0] {
		case "d":
			h.Typeflag = tar.TypeDir
		case "f":
			h.Typeflag, h.Size = tar.TypeReg, int64(len(h.Name))
		case "l":
			h.Typeflag = tar.TypeSymlink
		case "h":
			h.Typeflag = tar.TypeLink
		case "c":
			h.Typeflag, h.Devmajor, h.Devminor = tar.TypeChar, 1, 3
		case "p":
			h.Typeflag = tar.TypeFifo
		default:
			continue
		}
		if tw.WriteHeader(&h) != nil {
			continue
		}
		if h.Typeflag == tar.TypeReg {
			_, _ = tw.Write([]byte(h.Name))
		}
	}
	_ = tw.Close()
	return buf.Bytes()
}
