package testregistry

import (
	"archive/tar"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The images critest (cri-tools v1.37, pkg/validate) pulls, by their upstream
// names, stand-ins built from Debian content and crib's own small Go
// programs. Each holds what the specs run in it, with the same users, groups
// and entrypoints as the upstream image (cri-tools' images/ and kubernetes'
// test/images/ say how those are built). A registry serves them under the
// upstream repository path, so a daemon whose "_default" mirror is that
// registry resolves the upstream names to them.

// E2EPath is the repository path of registry.k8s.io/e2e-test-images/... and
// CriToolsPath that of gcr.io/k8s-staging-cri-tools/... on a mirror.
const (
	E2EPath      = "e2e-test-images/"
	CriToolsPath = "k8s-staging-cri-tools/"
)

// PathEnv is the PATH of the busybox-based images, the upstream busybox
// image's.
const PathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// passwd and group are the upstream busybox image's accounts.
const (
	passwd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`
	group = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
staff:x:50:
users:x:100:
nogroup:x:65534:
`
)

// busyboxFiles is the root filesystem of the e2e busybox image: Debian's
// dynamically linked busybox (not busybox-static: that one's shell runs its
// applets before searching PATH, so a masked /bin/ls would still run), a
// hard link in /bin for each applet, and the tools critest runs that Debian's
// busybox lacks (pgrep from procps, ipcs from util-linux), with their
// libraries.
func busyboxFiles(t testing.TB) []File {
	t.Helper()
	bin := debFile(t, "busybox", "bin/busybox")
	files := []File{
		{Name: "bin/", Mode: 0o755, Typ: tar.TypeDir},
		{Name: "dev/", Mode: 0o755, Typ: tar.TypeDir},
		{Name: "etc/", Mode: 0o755, Typ: tar.TypeDir},
		{Name: "home/", Mode: 0o755, Typ: tar.TypeDir},
		{Name: "root/", Mode: 0o700, Typ: tar.TypeDir},
		{Name: "tmp/", Mode: 0o1777, Typ: tar.TypeDir},
		{Name: "usr/", Mode: 0o755, Typ: tar.TypeDir},
		{Name: "usr/sbin/", Mode: 0o755, Typ: tar.TypeDir},
		{Name: "var/", Mode: 0o755, Typ: tar.TypeDir},
		{Name: "var/www/", Mode: 0o755, Typ: tar.TypeDir},
		{Name: "etc/passwd", Mode: 0o644, Data: []byte(passwd)},
		{Name: "etc/group", Mode: 0o644, Data: []byte(group)},
	}
	files = append(files, withLibraries(t, "bin/busybox", bin)...)
	// Hard links, as in the upstream image: a runtime masks a path by
	// mounting over what it resolves to, so masking a symlinked /bin/ls
	// would mask busybox itself. A hard link's header carries the file's
	// mode, as docker writes it: containerd applies it to the shared inode,
	// so a zero mode there would leave busybox unexecutable.
	for _, a := range listApplets(t, bin) {
		files = append(files, File{Name: "bin/" + a, Mode: 0o755, Typ: tar.TypeLink, Link: "bin/busybox"})
	}
	have := map[string]bool{}
	for _, f := range files {
		have[f.Name] = true
	}
	for _, p := range []string{"/usr/bin/pgrep", "/usr/bin/ipcs"} {
		for _, f := range hostProgram(t, p, strings.TrimPrefix(p, "/")) {
			if !have[f.Name] {
				have[f.Name] = true
				files = append(files, f)
			}
		}
	}
	return withParents(files)
}

// listApplets lists the applets of a busybox binary by running it.
func listApplets(t testing.TB, bin []byte) []string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "busybox")
	if err := os.WriteFile(p, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(p, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	var applets []string
	for _, a := range strings.Fields(string(out)) {
		if a != "busybox" {
			applets = append(applets, a)
		}
	}
	return applets
}

// CritestImages builds the images critest pulls, keyed by the repository
// path and tag a mirror serves each at ("e2e-test-images/busybox:1.29-2" for
// registry.k8s.io/e2e-test-images/busybox:1.29-2).
//
// gcr.io/k8s-staging-cri-tools/test-image-digest is missing: critest pulls
// it by an upstream manifest digest that no image built here can have.
func CritestImages(t testing.TB) map[string]v1.Image {
	t.Helper()
	k := newImageKit(t)
	// httpd:2.4.39-4 is Apache upstream; busybox's httpd serves the page
	// here. Apache names itself in its start-up log, which critest's log
	// spec looks for; the script says the same of this server.
	httpd := k.busybox(v1.Config{Cmd: []string{"httpd-foreground"}, ExposedPorts: map[string]struct{}{"80/tcp": {}}},
		k.onBase([]File{
			{Name: "usr/local/bin/httpd-foreground", Mode: 0o755, Data: []byte(httpdForeground)},
			{Name: "usr/local/apache2/htdocs/index.html", Mode: 0o644, Data: []byte("<html><body><h1>It works!</h1></body></html>\n")},
		}))
	nnp := k.nonewprivs()
	pause := k.pause()
	// A busybox image with one more file, named after it (cri-tools'
	// images/image-test: ADD ${TEST} ${TEST}).
	marked := func(name string) v1.Image {
		return k.busybox(v1.Config{}, Layer(t, []File{{Name: name, Mode: 0o644}}))
	}
	sameImage := marked("same-image")
	predefined := k.busybox(v1.Config{User: "1000"}, Layer(t, withParents([]File{
		{Name: "etc/passwd", Mode: 0o644, Data: []byte(passwd + "default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n")},
		{Name: "etc/group", Mode: 0o644, Data: []byte(group + "default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n")},
		{Name: "home/default-user/", Mode: 0o755, Typ: tar.TypeDir, Uid: 1000, Gid: 1000},
	})))

	images := map[string]v1.Image{
		E2EPath + "busybox:1.29-2": k.busybox(v1.Config{}),
		E2EPath + "nginx:1.14-2":   k.nginx(80),
		E2EPath + "httpd:2.4.39-4": httpd,
		E2EPath + "nonewprivs:1.3": nnp,
		"pause:3.9":                pause, // registry.k8s.io/pause:3.9 and k8s.gcr.io/pause:3.9
		CriToolsPath + "hostnet-nginx-" + goruntime.GOARCH + ":latest": k.nginx(12003),
		CriToolsPath + "test-image-user-uid:latest":                    k.busybox(v1.Config{User: "1002"}),
		CriToolsPath + "test-image-user-username:latest":               k.busybox(v1.Config{User: "www-data"}),
		CriToolsPath + "test-image-user-uid-group:latest":              k.busybox(v1.Config{User: "1003:1004"}),
		CriToolsPath + "test-image-user-username-group:latest":         k.busybox(v1.Config{User: "www-data:1004"}),
		CriToolsPath + "test-image-predefined-group:latest":            predefined,
		CriToolsPath + "test-image-latest:latest":                      marked("test-image-latest"),
		CriToolsPath + "test-image-tag:test":                           marked("test"),
		CriToolsPath + "test-image-tag:all":                            marked("all"),
	}
	for _, n := range []string{"1", "2", "3"} {
		images[CriToolsPath+"test-image-"+n+":latest"] = marked("test-image-" + n)
		images[CriToolsPath+"test-image-tags:"+n] = sameImage
	}
	return images
}

// imageKit builds the busybox-based images that critest's and the node e2e
// suite's share: the busybox layer is made once.
type imageKit struct {
	t      testing.TB
	bb     v1.Layer
	inBase map[string]bool
}

func newImageKit(t testing.TB) *imageKit {
	base := busyboxFiles(t)
	k := &imageKit{t: t, bb: Layer(t, base), inBase: map[string]bool{}}
	for _, f := range base {
		k.inBase[f.Name] = true
	}
	return k
}

// busybox is the busybox image with cfg (sh unless it names a command) and
// more layers on top.
func (k *imageKit) busybox(cfg v1.Config, more ...v1.Layer) v1.Image {
	cfg.Env = append([]string{PathEnv}, cfg.Env...)
	if cfg.Cmd == nil && cfg.Entrypoint == nil {
		cfg.Cmd = []string{"sh"}
	}
	return ImageOf(k.t, cfg, append([]v1.Layer{k.bb}, more...)...)
}

// onBase is a layer of files, without those the busybox layer already has
// (the C library, mostly).
func (k *imageKit) onBase(files []File) v1.Layer {
	var out []File
	for _, f := range withParents(files) {
		if !k.inBase[f.Name] {
			out = append(out, f)
		}
	}
	return Layer(k.t, out)
}

// nginx is Debian's nginx serving a page on port.
func (k *imageKit) nginx(port int) v1.Image {
	files := withLibraries(k.t, "usr/sbin/nginx", debFile(k.t, "nginx", "usr/sbin/nginx"))
	files = append(files,
		File{Name: "etc/nginx/nginx.conf", Mode: 0o644, Data: []byte(nginxConf(port))},
		File{Name: "usr/share/nginx/html/index.html", Mode: 0o644, Data: []byte("<html><body><h1>Welcome to nginx!</h1></body></html>\n")},
		File{Name: "var/log/nginx/", Mode: 0o755, Typ: tar.TypeDir},
		File{Name: "var/lib/nginx/", Mode: 0o755, Typ: tar.TypeDir},
		File{Name: "var/run/", Mode: 0o755, Typ: tar.TypeDir})
	// The upstream image's: nginx as pid 1 in the foreground ("nginx:
	// master process" is what the PID namespace specs look for), and
	// SIGQUIT for a graceful stop.
	return k.busybox(v1.Config{Cmd: []string{"nginx", "-g", "daemon off;"}, StopSignal: "SIGQUIT",
		ExposedPorts: map[string]struct{}{fmt.Sprintf("%d/tcp", port): {}}}, k.onBase(files))
}

// nonewprivs: a set-user-ID root program that prints its effective uid.
func (k *imageKit) nonewprivs() v1.Image {
	return k.busybox(v1.Config{Cmd: []string{"nnp"}}, k.onBase([]File{
		{Name: "usr/local/bin/nnp", Mode: 0o4755, Data: goProgram(k.t, "github.com/crib-runtime/crib/test/testregistry/internal/nnp")},
	}))
}

// pause is the pod sandbox image: a pause program run as 65535.
func (k *imageKit) pause() v1.Image { return Pause(k.t) }

// Pause is the stand-in for registry.k8s.io/pause: a static program that
// sleeps until a signal, run as 65535:65535 like the upstream image.
func Pause(t testing.TB) v1.Image {
	t.Helper()
	return ImageOf(t, v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"}, Layer(t, []File{
		{Name: "pause", Mode: 0o755, Data: goProgram(t, "github.com/crib-runtime/crib/test/testregistry/internal/pause")},
	}))
}

// E2EBusybox is the stand-in for registry.k8s.io/e2e-test-images/busybox:1.29-2,
// critest's default container image, for other tests that want a busybox
// with the upstream image's tools and accounts.
func E2EBusybox(t testing.TB) v1.Image {
	t.Helper()
	return ImageOf(t, v1.Config{Cmd: []string{"sh"}, Env: []string{PathEnv}}, Layer(t, busyboxFiles(t)))
}

// PushCritestImages pushes CritestImages to r under their mirror paths.
func (r *Registry) PushCritestImages(t testing.TB) {
	t.Helper()
	for ref, img := range CritestImages(t) {
		r.Push(t, ref, img)
	}
}

// httpdForeground stands in for the Apache image's httpd-foreground.
const httpdForeground = `#!/bin/sh
# busybox httpd in the foreground, logging each request to stderr.
echo "httpd: serving /usr/local/apache2/htdocs on port 80" >&2
exec httpd -f -vv -p 80 -h /usr/local/apache2/htdocs
`

// nginxConf serves /usr/share/nginx/html on port with the paths Debian's
// nginx was built for; the pid file is where the upstream image has it.
func nginxConf(port int) string {
	return fmt.Sprintf(`user www-data;
worker_processes 1;
pid /var/run/nginx.pid;
error_log stderr notice;
events {
    worker_connections 64;
}
http {
    default_type text/html;
    access_log off;
    server {
        listen %d;
        location / {
            root /usr/share/nginx/html;
            index index.html;
        }
    }
}
`, port)
}
