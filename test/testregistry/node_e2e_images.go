package testregistry

import (
	"archive/tar"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The images the Kubernetes node e2e suite (k8s.io/kubernetes v1.37.2,
// test/utils/image/manifest.go) runs its pods in, by their upstream names,
// built like CritestImages: busybox-based stand-ins with the upstream
// images' users, entrypoints and files, and agnhost, the Kubernetes test
// program, built from the Kubernetes module by hack/clients.sh.
//
// Missing on purpose, so their pulls fail as the specs expect or as no
// offline build can avoid: the private and invalid registries' images,
// busybox by an upstream digest, and the node-perf, cadvisor, NPD, NFS and
// etcd images (only [Serial]/[Feature] specs run them).

// Repository paths on a mirror of registry.k8s.io.
const agnhostPath = E2EPath + "agnhost"

// NodeE2EImages builds the images the node e2e suite pulls, keyed by the
// repository path and tag a mirror serves each at.
func NodeE2EImages(t testing.TB) map[string]v1.Image {
	t.Helper()
	k := newImageKit(t)
	upstream := k.busybox137()
	busybox := k.busybox(v1.Config{}, upstream...)
	agnhostCfg, agnhostLayers := k.agnhost(upstream)
	agnhost := k.busybox(agnhostCfg, agnhostLayers...)
	// kitten and nautilus are agnhost serving their picture and data.json;
	// the specs that mount them as image volumes read data.json.
	picture := func(name string) v1.Image {
		cfg := agnhostCfg
		cfg.Cmd = []string{"test-webserver"}
		return k.busybox(cfg, append(slices.Clip(agnhostLayers), Layer(t, []File{
			{Name: name + ".jpg", Mode: 0o644, Data: []byte(name + "\n")},
			{Name: "data.json", Mode: 0o644, Data: []byte(`{"name": "` + name + `"}` + "\n")},
		}))...)
	}
	return map[string]v1.Image{
		agnhostPath + ":2.66.1":             agnhost,
		agnhostPath + ":2.55":               agnhost,
		E2EPath + "busybox:1.37.0-2":        busybox,
		E2EPath + "nginx:1.27.0-2":          k.nginx(80),
		E2EPath + "nginx:1.28.0-2":          k.nginx(80),
		E2EPath + "nonewprivs:1.4":          k.nonewprivs(),
		E2EPath + "nonroot:1.5":             k.busybox(v1.Config{User: "1234"}),
		E2EPath + "ipc-utils:1.4":           busybox,
		E2EPath + "kitten:1.8":              picture("kitten"),
		E2EPath + "nautilus:1.8":            picture("nautilus"),
		E2EPath + "perl:5.26":               k.perl(),
		"pause:3.10.2":                      k.pause(),
		E2EPath + "httpd:2.4.38-4":          k.busybox(v1.Config{Cmd: []string{"httpd", "-f", "-p", "80", "-h", "/var/www"}}),
		E2EPath + "volume/nfs:1.6.0":        busybox,
		E2EPath + "busybox:1.29-2":          busybox,
		E2EPath + "glibc-dns-testing:2.1.1": busybox,
	}
}

// busybox137 are the layers that make the busybox layer do what the
// upstream busybox 1.37 (and Alpine's, under agnhost) does and Debian's 1.35
// does not: its shell passes on environment variables whose names are no
// shell identifiers (envFrom makes "data-1"), so /bin/sh runs bash for such
// an environment and ash otherwise (internal/sh); and it has nmeter, which
// the container lifecycle specs read milliseconds with.
func (k *imageKit) busybox137() []v1.Layer {
	return []v1.Layer{
		k.onBase(append(hostProgram(k.t, "/bin/bash", "bin/bash"),
			File{Name: "bin/nmeter", Mode: 0o755, Data: goProgram(k.t, "github.com/crib-runtime/crib/test/testregistry/internal/nmeter")})),
		Layer(k.t, []File{{Name: "bin/sh", Mode: 0o755, Data: goProgram(k.t, "github.com/crib-runtime/crib/test/testregistry/internal/sh")}}),
	}
}

// agnhost is the config and the layers on busybox of the upstream agnhost
// image: the busybox 1.37 layers (the upstream image is Alpine's, with
// bash, which probe specs run), curl and nc, /agnhost as the entrypoint
// ("pause" by default), the account and group the image defines, and the /uploads
// directory its server writes to.
func (k *imageKit) agnhost(busybox137 []v1.Layer) (v1.Config, []v1.Layer) {
	bin := filepath.Join(RepoRoot(k.t), "_output", "clients", "agnhost")
	data, err := os.ReadFile(bin)
	if err != nil {
		k.t.Fatalf("agnhost is not built (hack/clients.sh agnhost): %v", err)
	}
	cfg := v1.Config{Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"},
		ExposedPorts: map[string]struct{}{"80/tcp": {}, "8080/tcp": {}, "8081/tcp": {}, "9376/tcp": {}, "5000/tcp": {}}}
	// curl: the hook specs' exec handlers call the server pod with it; nc
	// from netcat-openbsd (the upstream image's) speaks UDP, which the
	// networking specs send and busybox's nc cannot.
	tools := append(hostProgram(k.t, "/usr/bin/curl", "usr/bin/curl"),
		withLibraries(k.t, "usr/bin/nc", debFile(k.t, "netcat-openbsd", "bin/nc.openbsd"))...)
	// The upstream image's /localhost.crt and /localhost.key (agnhost's
	// porter files), which the https hook specs' server is started with.
	for _, f := range []string{"localhost.crt", "localhost.key"} {
		b, err := os.ReadFile(filepath.Join(kubernetesModule(k.t), "test/images/agnhost/porter", f))
		if err != nil {
			k.t.Fatal(err)
		}
		tools = append(tools, File{Name: f, Mode: 0o644, Data: b})
	}
	programs := k.onBase(append(tools,
		File{Name: "agnhost", Mode: 0o755, Data: data},
		File{Name: "agnhost-2", Typ: tar.TypeSymlink, Link: "agnhost"},
		File{Name: "uploads/", Mode: 0o755, Typ: tar.TypeDir}))
	accounts := Layer(k.t, withParents([]File{
		{Name: "etc/passwd", Mode: 0o644, Data: []byte(passwd + "user-defined-in-image:x:1000:1000:Linux User,,,:/home/user-defined-in-image:/bin/sh\n")},
		{Name: "etc/group", Mode: 0o644, Data: []byte(group + "user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n")},
		{Name: "home/user-defined-in-image/", Mode: 0o755, Typ: tar.TypeDir, Uid: 1000, Gid: 1000},
	}))
	return cfg, append(slices.Clip(busybox137), programs, accounts)
}

// kubernetesModule is the directory of the k8s.io/kubernetes module that
// hack/tools pins.
func kubernetesModule(t testing.TB) string {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "k8s.io/kubernetes")
	cmd.Dir = filepath.Join(RepoRoot(t), "hack", "tools")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("find the k8s.io/kubernetes module (hack/tools): %v", err)
	}
	return strings.TrimSpace(string(out))
}

// perl is busybox with Debian's perl interpreter (perl-base), for the specs
// that run perl one-liners.
func (k *imageKit) perl() v1.Image {
	return k.busybox(v1.Config{}, k.onBase(hostProgram(k.t, "/usr/bin/perl", "usr/bin/perl")))
}
