package testregistry

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/crib-runtime/crib/internal/testutil"
)

// rootfs unpacks img's flattened filesystem into a new directory (GNU tar
// keeps modes, owners and symlinks as the layers say).
func rootfs(t *testing.T, img v1.Image) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("tar", "-x", "-p", "--numeric-owner", "-C", dir)
	cmd.Stdin = mutate.Extract(img)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("untar: %v\n%s", err, out)
	}
	return dir
}

// chrootRun runs a shell command in dir as root and returns its output.
func chrootRun(t *testing.T, dir, script string) (string, error) {
	t.Helper()
	out, err := exec.Command("chroot", dir, "/bin/sh", "-c", script).CombinedOutput()
	return string(out), err
}

// The critest images are only useful if they do what critest's specs run in
// them; these are the behaviours a Debian package could silently change.
func TestCritestImagesRun(t *testing.T) {
	testutil.RequireRoot(t)
	images := CritestImages(t)
	bb := rootfs(t, images[E2EPath+"busybox:1.29-2"])
	// The upstream busybox image's shell searches PATH, so a masked /bin/ls
	// is what runs (critest's MaskedPaths spec); busybox-static's runs its
	// applet instead.
	if err := exec.Command("mount", "--bind", "/dev/null", filepath.Join(bb, "bin/ls")).Run(); err != nil {
		t.Fatal(err)
	}
	out, err := chrootRun(t, bb, "ls")
	_ = exec.Command("umount", filepath.Join(bb, "bin/ls")).Run()
	if err == nil || !strings.Contains(out, "ls: Permission denied") {
		t.Errorf("ls masked by /dev/null: %v, %q; want the shell's Permission denied", err, out)
	}
	// Every command critest runs in its default image.
	for _, c := range []string{"echo -n hello", "sleep 0", "pgrep -x no-such-process || true", "top --help 2>&1 | grep -qi usage",
		"ipcs -m", "pidof no-such-process || true", "id -G", "brctl --help 2>&1 | grep -q brctl",
		"netstat -ln >/dev/null 2>&1 || true", "hostname", "dd if=/etc/passwd of=/tmp/passwd bs=1M",
		"mkdir -p /tmp/x && touch /tmp/x/f && ls -A /tmp/x", "seq 1 2 >/dev/null && sync", "cat /etc/passwd >/dev/null",
		"grep -q root /etc/group", "mount --help 2>&1 | grep -qi usage", "wget --help 2>&1 | grep -qi usage", "chmod --help 2>&1 | grep -qi usage"} {
		if out, err := chrootRun(t, bb, c); err != nil {
			t.Errorf("%s in busybox: %v\n%s", c, err, out)
		}
	}
	if out, _ := exec.Command("chroot", "--userspec=65534:65534", bb, "id", "-nu").CombinedOutput(); string(out) != "nobody\n" {
		t.Errorf("id -nu as uid 65534 = %q, want nobody", out)
	}
	// nginx starts with its configuration (-t parses it and opens its files).
	ng := rootfs(t, images[E2EPath+"nginx:1.14-2"])
	if out, err := chrootRun(t, ng, "nginx -t"); err != nil {
		t.Errorf("nginx -t: %v\n%s", err, out)
	}
	nnp := rootfs(t, images[E2EPath+"nonewprivs:1.3"])
	if out, err := exec.Command("chroot", "--userspec=1000:1000", nnp, "nnp").CombinedOutput(); err != nil || string(out) != "Effective uid: 0\n" {
		t.Errorf("set-uid nnp as uid 1000: %v, %q; want Effective uid: 0", err, out)
	}
	for _, ref := range []string{"test-image-tags:1", "test-image-tags:2"} {
		d1, _ := images[CriToolsPath+ref].Digest()
		d2, _ := images[CriToolsPath+"test-image-tags:3"].Digest()
		if d1 != d2 {
			t.Errorf("%s and test-image-tags:3 differ; critest wants one image", ref)
		}
	}
	d1, _ := images[CriToolsPath+"test-image-1:latest"].Digest()
	d2, _ := images[CriToolsPath+"test-image-2:latest"].Digest()
	if d1 == d2 {
		t.Errorf("test-image-1 and test-image-2 are the same image; critest wants three")
	}
}

// What the node e2e specs run in their busybox and agnhost images.
func TestNodeE2EImagesRun(t *testing.T) {
	testutil.RequireRoot(t)
	if _, err := os.Stat(filepath.Join(RepoRoot(t), "_output", "clients", "agnhost")); err != nil {
		testutil.SkipOrFail(t, "agnhost is not built: run hack/clients.sh agnhost")
		return
	}
	images := NodeE2EImages(t)
	bb := rootfs(t, images[E2EPath+"busybox:1.37.0-2"])
	for _, c := range []struct{ script, env, want string }{
		// envFrom's variables keep names that are no shell identifiers.
		{"env", "data-1=value-1", `(?m)^data-1=value-1$`},
		// ash's message, which the read-only root filesystem spec wants.
		{"echo test > /no/file", "", `^/bin/sh: can't create /no/file: `},
		// The container lifecycle specs' timestamps, which they parse as
		// RFC 3339.
		{"date -u +%FT$(nmeter -d0 '%3t' | head -n1)Z", "", `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\n$`},
	} {
		cmd := exec.Command("chroot", bb, "/bin/sh", "-c", c.script)
		cmd.Env = []string{"PATH=/bin:/usr/bin", c.env}
		out, err := cmd.CombinedOutput()
		if !regexp.MustCompile(c.want).Match(out) || err != nil && !strings.Contains(c.script, "/no/") {
			t.Errorf("%s in busybox: %v, %q; want it to match %s", c.script, err, out, c.want)
		}
	}
	ag := rootfs(t, images[agnhostPath+":2.66.1"])
	for _, c := range []string{"/bin/bash -c true", "/agnhost --help >/dev/null", "id user-defined-in-image", "nmeter -d0 %3t | head -n1", "curl --version", "nc -h 2>&1 | grep -q -- -u", "test -s /localhost.crt -a -s /localhost.key"} {
		if out, err := chrootRun(t, ag, c); err != nil {
			t.Errorf("%s in agnhost: %v\n%s", c, err, out)
		}
	}
}
